"""The suppression list pages."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import ListView

from contacts import selectors
from contacts.forms import (
    SuppressionForm,
    SuppressionImportForm,
)
from contacts.models import (
    Contact,
    Suppression,
)
from contacts.services import suppression as suppression_service
from contacts.views.common import PAGE_SIZE, ForgivingPaginationMixin, add_errors


class SuppressionListView(ForgivingPaginationMixin, ListView):
    template_name = "contacts/suppression_list.html"
    paginate_by = PAGE_SIZE
    context_object_name = "entries"

    def get_queryset(self):
        return selectors.suppression_list(query=self.request.GET.get("q", ""))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["q"] = self.request.GET.get("q", "")
        context.setdefault("form", SuppressionForm())
        context.setdefault("import_form", SuppressionImportForm())
        counts = selectors.suppression_status_counts()
        context["status_counts"] = [
            (status, label, counts.get(status, 0))
            for status, label in Contact.Status.choices
            if status != Contact.Status.ACTIVE
        ]
        return context


class SuppressionAddView(View):
    def post(self, request):
        form = SuppressionForm(request.POST)
        if form.is_valid():
            try:
                entry = suppression_service.suppression_add(**form.cleaned_data)
            except ValidationError as exc:
                add_errors(form, exc)
            else:
                messages.success(
                    request, _("“%(value)s” is on the suppression list.") % {"value": entry.value}
                )
                return redirect("contacts:suppressions")
        view = SuppressionListView(request=request, kwargs={}, args=())
        view.object_list = view.get_queryset()
        context = view.get_context_data(form=form)
        return view.render_to_response(context, status=400)


class SuppressionImportView(View):
    def post(self, request):
        form = SuppressionImportForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                result = suppression_service.suppression_import(form.cleaned_data["file"])
            except ValidationError as exc:
                form.add_error("file", exc)
            else:
                messages.success(
                    request,
                    _(
                        "%(added)s added, %(already)s already on the list, %(invalid)s not an "
                        "address or domain."
                    )
                    % {"added": result.added, "already": result.already, "invalid": result.invalid},
                )
                if result.invalid_samples:
                    messages.warning(
                        request,
                        _("Not added: %(values)s") % {"values": ", ".join(result.invalid_samples)},
                    )
                return redirect("contacts:suppressions")
        view = SuppressionListView(request=request, kwargs={}, args=())
        view.object_list = view.get_queryset()
        context = view.get_context_data(import_form=form)
        return view.render_to_response(context, status=400)


class SuppressionDeleteView(View):
    def post(self, request, pk):
        entry = get_object_or_404(Suppression, pk=pk)
        suppression_service.suppression_remove(entry)
        messages.success(
            request,
            _("“%(value)s” was removed from the suppression list.") % {"value": entry.value},
        )
        return redirect("contacts:suppressions")
