"""Forms for the contacts pages: they check input; the services do the writes."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from contacts import conf, services
from contacts.models import Contact, MailingList


class ContactFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=254)
    list = forms.ModelChoiceField(
        label=_("List"),
        queryset=MailingList.objects.order_by("name"),
        required=False,
        empty_label=_("All lists"),
    )
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[("", _("All statuses")), *Contact.Status.choices],
        required=False,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["q"].widget = forms.SearchInput(
            attrs={"placeholder": _("Search email or name")}
        )


class MailingListForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "style": "min-height:4rem"}),
    )


class ContactForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    attributes = forms.CharField(
        label=_("Attributes"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text=_('A JSON object, for example {"city": "Lisbon", "plan": "pro"}.'),
    )

    def clean_attributes(self) -> dict[str, Any]:
        raw = self.cleaned_data["attributes"].strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ValidationError(_("This is not valid JSON: %(error)s") % {"error": exc}) from None
        if not isinstance(value, dict):
            raise ValidationError(_('Attributes must be a JSON object, like {"city": "Lisbon"}.'))
        return value


class ContactImportForm(forms.Form):
    mailing_list = forms.ModelChoiceField(
        label=_("Import into the list"),
        queryset=MailingList.objects.order_by("name"),
        required=False,
        empty_label=_("— choose a list —"),
    )
    new_list_name = forms.CharField(
        label=_("or create a new list named"), max_length=200, required=False
    )
    file = forms.FileField(label=_("CSV file"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.attrs["accept"] = ".csv,.txt,.tsv,text/csv,text/plain"
        self.fields["file"].help_text = _(
            "A CSV file with a header row, up to %(limit)s. The email column is required "
            "(“email”, “e-mail” or “Email Address”); “First Name” / “Last Name” (or “name”) "
            "fill the names; every other column is kept as an attribute. Commas, semicolons, "
            "tabs or pipes; UTF-8 or UTF-16 text."
        ) % {"limit": filesizeformat(conf.import_max_bytes())}

    def clean_file(self) -> Any:
        uploaded = self.cleaned_data["file"]
        services.contact_import_validate_file(uploaded)
        return uploaded

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        chosen = cleaned.get("mailing_list")
        name = (cleaned.get("new_list_name") or "").strip()
        if chosen and name:
            raise ValidationError(_("Choose an existing list or type a new list name, not both."))
        if not chosen and not name and "mailing_list" not in self.errors:
            raise ValidationError(_("Choose a list to import into, or type a name for a new one."))
        cleaned["new_list_name"] = name
        return cleaned
