"""Pages for contacts, lists and imports: read through selectors, write through services."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import DetailView, FormView, ListView
from django.views.generic.detail import SingleObjectMixin

from contacts import conf, privacy, selectors, services
from contacts.forms import (
    ContactFilterForm,
    ContactForm,
    ContactImportForm,
    ContactImportMappingForm,
    MailingListForm,
)
from contacts.models import (
    Contact,
    ContactImport,
    MailingList,
)
from contacts.views.common import PAGE_SIZE, ForgivingPaginationMixin, csv_safe


class ContactListView(ForgivingPaginationMixin, ListView):
    template_name = "contacts/contact_list.html"
    paginate_by = PAGE_SIZE
    context_object_name = "contacts"

    def get_queryset(self):
        self.filter_form = ContactFilterForm(self.request.GET or None)
        filters = self.filter_form.cleaned_data if self.filter_form.is_valid() else {}
        return selectors.contact_list(
            query=filters.get("q", ""),
            mailing_list=filters.get("list"),
            status=filters.get("status") or None,
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["filter_form"] = self.filter_form
        context["filtered"] = any(self.request.GET.get(k) for k in ("q", "list", "status"))
        return context


class ContactDetailView(DetailView):
    model = Contact
    template_name = "contacts/contact_detail.html"
    context_object_name = "contact"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        contact = self.object
        context.setdefault("form", ContactForm(contact=contact))
        context["subscriptions"] = selectors.contact_subscriptions(contact)
        context["timeline"] = privacy.contact_timeline(contact)
        return context

    def post(self, request, *args, **kwargs):
        self.object = self.get_object()
        form = ContactForm(request.POST)
        if form.is_valid():
            try:
                services.contact_update(self.object, **form.cleaned_data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("The contact was saved."))
                return redirect("contacts:detail", pk=self.object.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class MailingListListView(ForgivingPaginationMixin, ListView):
    template_name = "contacts/mailinglist_list.html"
    paginate_by = PAGE_SIZE
    context_object_name = "lists"

    def get_queryset(self):
        return selectors.mailing_list_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["form"] = MailingListForm()
        return context


class MailingListCreateView(FormView):
    template_name = "contacts/mailinglist_form.html"
    form_class = MailingListForm

    def form_valid(self, form):
        try:
            mailing_list = services.mailing_list_create(**form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
            return self.form_invalid(form)
        messages.success(
            self.request, _("The list “%(name)s” was created.") % {"name": mailing_list.name}
        )
        return redirect("contacts:list-detail", pk=mailing_list.pk)

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)


class MailingListDetailView(ForgivingPaginationMixin, SingleObjectMixin, ListView):
    template_name = "contacts/mailinglist_detail.html"
    paginate_by = PAGE_SIZE

    def get(self, request, *args, **kwargs):
        self.object = self.get_object(queryset=MailingList.objects.all())
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.mailing_list_subscriptions(
            self.object, query=self.request.GET.get("q", "")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["mailing_list"] = self.object
        context["subscriptions"] = context["object_list"]
        context["q"] = self.request.GET.get("q", "")
        context["stats"] = selectors.mailing_list_stats(self.object)
        context["imports"] = selectors.contact_import_list(mailing_list=self.object)[:5]
        return context


class MailingListDeleteView(DetailView):
    """GET asks for confirmation (for browsers without script); POST deletes."""

    model = MailingList
    template_name = "contacts/mailinglist_confirm_delete.html"
    context_object_name = "mailing_list"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["stats"] = selectors.mailing_list_stats(self.object)
        return context

    def post(self, request, *args, **kwargs):
        mailing_list = self.get_object()
        name = mailing_list.name
        services.mailing_list_delete(mailing_list)
        messages.success(request, _("The list “%(name)s” was deleted.") % {"name": name})
        return redirect("contacts:lists")


class ContactImportCreateView(FormView):
    template_name = "contacts/import_form.html"
    form_class = ContactImportForm

    def get_initial(self):
        initial = super().get_initial()
        list_id = self.request.GET.get("list", "")
        if list_id.isdigit():
            initial["mailing_list"] = MailingList.objects.filter(pk=list_id).first()
        return initial

    def form_valid(self, form):
        data = form.cleaned_data
        # Every upload stops at the mapping page: the columns, the mode and the policy for
        # people who left are shown before anything is written.
        try:
            with transaction.atomic():
                mailing_list = data["mailing_list"] or services.mailing_list_create(
                    name=data["new_list_name"]
                )
                contact_import = services.contact_import_create(
                    mailing_list, data["file"], self.request.user, review=True
                )
        except ValidationError as exc:
            if hasattr(exc, "error_dict") and "name" in exc.error_dict:
                form.add_error("new_list_name", exc.error_dict["name"])
            else:
                form.add_error(None, exc)
            return self.form_invalid(form)
        return redirect("contacts:import-mapping", contact_import.pk)

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)


class ContactImportMappingView(View):
    """The mapping step: each column with sample values and what it should fill."""

    template_name = "contacts/import_mapping.html"

    def dispatch(self, request, *args, **kwargs):
        self.item = get_object_or_404(
            ContactImport.objects.select_related("mailing_list"), pk=kwargs["pk"]
        )
        if self.item.status != ContactImport.Status.MAPPING:
            return redirect("contacts:import-detail", self.item.pk)
        try:
            self.preview = services.contact_import_preview(self.item)
        except ValidationError as exc:
            context = {"item": self.item, "file_error": exc.messages[0]}
            return render(request, self.template_name, context, status=400)
        return super().dispatch(request, *args, **kwargs)

    def _form(self, data=None) -> ContactImportMappingForm:
        return ContactImportMappingForm(
            data, header=self.preview.header, samples=self.preview.samples
        )

    def get(self, request, pk):
        return render(request, self.template_name, {"item": self.item, "form": self._form()})

    def post(self, request, pk):
        form = self._form(request.POST)
        if form.is_valid():
            try:
                services.contact_import_confirm(
                    self.item,
                    form.mapping(),
                    mode=form.cleaned_data["mode"],
                    left_policy=form.cleaned_data["left_policy"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                return redirect("contacts:import-detail", pk)
        context = {"item": self.item, "form": form}
        return render(request, self.template_name, context, status=400)


class ContactImportDetailView(DetailView):
    model = ContactImport
    template_name = "contacts/import_detail.html"
    context_object_name = "item"

    def get(self, request, *args, **kwargs):
        self.object = self.get_object()
        if self.object.status == ContactImport.Status.MAPPING:
            return redirect("contacts:import-mapping", self.object.pk)
        return self.render_to_response(self.get_context_data(object=self.object))

    def get_queryset(self):
        return ContactImport.objects.select_related("mailing_list", "created_by")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["progress"] = selectors.contact_import_progress(self.object)
        context["refused_rows_truncated"] = self.object.refused > len(self.object.refused_rows)
        context["skipped_rows_truncated"] = (
            len(self.object.skipped_rows) >= conf.import_refused_rows_kept()
        )
        return context


class ContactImportCancelView(View):
    """Cancel an import: at once when waiting, at the next batch when running."""

    def post(self, request, pk):
        contact_import = get_object_or_404(ContactImport, pk=pk)
        try:
            services.contact_import_cancel(contact_import)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            messages.success(
                request,
                _(
                    "The import is being cancelled. Rows already written stay imported; "
                    "importing the same file again later is safe."
                ),
            )
        return redirect("contacts:import-detail", pk)


class ContactImportProgressView(View):
    def get(self, request, pk):
        contact_import = get_object_or_404(
            ContactImport.objects.defer("refused_rows", "skipped_rows"), pk=pk
        )
        return JsonResponse(selectors.contact_import_progress(contact_import))


class ContactImportRefusedCsvView(View):
    """The refused rows as CSV, opened safely by spreadsheets (BOM for Excel, no formulas)."""

    def get(self, request, pk):
        contact_import = get_object_or_404(ContactImport, pk=pk)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="import-{contact_import.pk}-refused.csv"'
        )
        response.write("\ufeff")
        writer = csv.writer(response)
        writer.writerow([_("Row"), _("Email"), _("Reason")])
        for item in contact_import.refused_rows:
            writer.writerow(
                [
                    csv_safe(item.get("row", "")),
                    csv_safe(item.get("email", "")),
                    csv_safe(item.get("reason", "")),
                ]
            )
        # Skipped rows with a reason (left before, unknown in update-only mode) follow, and
        # people who left whose details were updated (they were not subscribed either).
        for item in contact_import.skipped_rows:
            if item.get("updated"):
                reason = _("updated: %(reason)s") % {"reason": item.get("reason", "")}
            else:
                reason = _("skipped: %(reason)s") % {"reason": item.get("reason", "")}
            writer.writerow(
                [
                    csv_safe(item.get("row", "")),
                    csv_safe(item.get("email", "")),
                    csv_safe(reason),
                ]
            )
        return response
