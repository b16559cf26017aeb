"""Custom field pages (Settings → Custom fields)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import FormView

from contacts.forms import (
    CustomFieldForm,
)
from contacts.models import (
    CustomField,
)
from contacts.services import fields as fields_service
from contacts.views.common import add_errors


class CustomFieldListView(FormView):
    """All custom fields, and the form that defines a new one."""

    template_name = "contacts/customfield_list.html"
    form_class = CustomFieldForm

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["fields"] = CustomField.objects.order_by("label", "id")
        return context

    def form_valid(self, form):
        try:
            field = fields_service.custom_field_create(**form.cleaned_data)
        except ValidationError as exc:
            add_errors(form, exc)
            return self.form_invalid(form)
        messages.success(
            self.request, _("The field “%(label)s” was added.") % {"label": field.label}
        )
        return redirect("contacts:fields")

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)


class CustomFieldUpdateView(FormView):
    template_name = "contacts/customfield_form.html"
    form_class = CustomFieldForm

    def dispatch(self, request, *args, **kwargs):
        self.field = get_object_or_404(CustomField, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "instance": self.field}

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "field": self.field}

    def form_valid(self, form):
        data = {k: v for k, v in form.cleaned_data.items() if k != "key"}
        try:
            fields_service.custom_field_update(self.field, **data)
        except ValidationError as exc:
            add_errors(form, exc)
            return self.form_invalid(form)
        messages.success(self.request, _("The field was saved."))
        return redirect("contacts:fields")

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)


class CustomFieldDeleteView(View):
    """POST only (the list's delete button asks for confirmation)."""

    def post(self, request, pk):
        field = get_object_or_404(CustomField, pk=pk)
        fields_service.custom_field_delete(field)
        messages.success(
            request,
            _("The field “%(label)s” was deleted; contacts keep their values.")
            % {"label": field.label},
        )
        return redirect("contacts:fields")
