"""Exports (a list or a segment as CSV; one person's data as JSON) and erasure."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import FormView

from contacts import privacy, selectors
from contacts.forms import ContactExportForm
from contacts.models import Contact, Subscription
from contacts.services import privacy as privacy_service


class ContactExportView(FormView):
    """GET with the form's fields downloads the CSV; without them shows the form."""

    template_name = "contacts/export.html"
    form_class = ContactExportForm

    def get(self, request, *args, **kwargs):
        if "download" not in request.GET:
            return super().get(request, *args, **kwargs)
        form = ContactExportForm(request.GET)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        data = form.cleaned_data
        if data["mailing_list"]:
            contacts = Contact.objects.filter(
                subscriptions__mailing_list=data["mailing_list"],
                subscriptions__status=Subscription.Status.SUBSCRIBED,
            )
            name = data["mailing_list"].name
        else:
            contacts = selectors.segment_contacts(data["segment"].rules)
            name = data["segment"].name
        columns = privacy.export_columns(data["fields"])
        response = StreamingHttpResponse(
            privacy.contacts_csv(contacts, columns), content_type="text/csv; charset=utf-8"
        )
        safe = "".join(ch if ch.isalnum() else "-" for ch in name)[:60] or "contacts"
        response["Content-Disposition"] = (
            f'attachment; filename="{safe}-{timezone.now():%Y%m%d}.csv"'
        )
        return response


class ContactDataView(View):
    """Everything held on one contact, as a JSON download."""

    def get(self, request, pk):
        contact = get_object_or_404(Contact, pk=pk)
        body = json.dumps(privacy.contact_data_export(contact), ensure_ascii=False, indent=2)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="contact-{contact.pk}.json"'
        return response


class ContactEraseView(View):
    def post(self, request, pk):
        contact = get_object_or_404(Contact, pk=pk)
        privacy_service.contact_erase(contact)
        messages.success(
            request,
            _("The contact's personal data was erased; the address cannot be imported again."),
        )
        return redirect("contacts:detail", pk=contact.pk)
