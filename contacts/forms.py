"""Forms for the contacts pages: they check input; the services do the writes."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from contacts import conf, services
from contacts.models import (
    Contact,
    ContactImport,
    CustomField,
    MailingList,
    Segment,
    SignupForm,
    Suppression,
)
from contacts.services import fields as fields_service


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


CUSTOM_PREFIX = "cf_"


def custom_form_field(field: CustomField) -> forms.Field:
    """The input for one custom field; the value is typed by ``custom_value_clean``."""
    common = {"label": field.label, "required": False}
    if field.type == CustomField.Type.DATE:
        return forms.CharField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if field.type == CustomField.Type.BOOLEAN:
        return forms.ChoiceField(
            choices=[("", "—"), ("true", _("Yes")), ("false", _("No"))], **common
        )
    if field.type == CustomField.Type.CHOICE:
        return forms.ChoiceField(choices=[("", "—"), *[(o, o) for o in field.options]], **common)
    if field.type == CustomField.Type.NUMBER:
        return forms.CharField(widget=forms.TextInput(attrs={"inputmode": "decimal"}), **common)
    return forms.CharField(max_length=fields_service.TEXT_MAX_LENGTH, **common)


def custom_form_initial(field: CustomField, value: Any) -> Any:
    if value is None:
        return ""
    if field.type == CustomField.Type.BOOLEAN and isinstance(value, bool):
        return "true" if value else "false"
    return value


class ContactForm(forms.Form):
    """Names, one input per custom field, and other attributes as JSON.

    ``cleaned_data["attributes"]`` holds all of them merged, typed, ready for the service.
    """

    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    attributes = forms.CharField(
        label=_("Other attributes"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=_('A JSON object, for example {"city": "Lisbon", "plan": "pro"}.'),
    )

    def __init__(self, *args: Any, contact: Contact | None = None, **kwargs: Any) -> None:
        self.custom_fields = list(CustomField.objects.order_by("label", "id"))
        if contact is not None:
            attributes = contact.attributes if isinstance(contact.attributes, dict) else {}
            keys = {f.key for f in self.custom_fields}
            other = {k: v for k, v in attributes.items() if k not in keys}
            initial = {
                "first_name": contact.first_name,
                "last_name": contact.last_name,
                "attributes": json.dumps(other, ensure_ascii=False, indent=2) if other else "",
            }
            for field in self.custom_fields:
                initial[CUSTOM_PREFIX + field.key] = custom_form_initial(
                    field, attributes.get(field.key)
                )
            kwargs["initial"] = {**initial, **(kwargs.get("initial") or {})}
        super().__init__(*args, **kwargs)
        for field in self.custom_fields:
            self.fields[CUSTOM_PREFIX + field.key] = custom_form_field(field)
        # Custom fields first, the free-form JSON last.
        self.order_fields(
            ["first_name", "last_name", *[CUSTOM_PREFIX + f.key for f in self.custom_fields]]
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

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        attributes = dict(cleaned.get("attributes") or {})
        for field in self.custom_fields:
            name = CUSTOM_PREFIX + field.key
            raw = cleaned.pop(name, None)
            if name in self.errors:
                continue
            try:
                value = fields_service.custom_value_clean(field, raw)
            except ValidationError as exc:
                self.add_error(name, exc)
                continue
            # The field's input wins over a same-named key typed into the JSON.
            attributes.pop(field.key, None)
            if value is not None:
                attributes[field.key] = value
        cleaned["attributes"] = attributes
        return cleaned


class CustomFieldForm(forms.Form):
    label = forms.CharField(label=_("Label"), max_length=100)
    key = forms.CharField(
        label=_("Key"),
        max_length=50,
        help_text=_("Used in messages as {{ contact.attributes.KEY }}; cannot change later."),
    )
    type = forms.ChoiceField(label=_("Type"), choices=CustomField.Type.choices)
    options = forms.CharField(
        label=_("Options"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("For a choice: one option per line."),
    )

    def __init__(self, *args: Any, instance: CustomField | None = None, **kwargs: Any) -> None:
        if instance is not None:
            kwargs["initial"] = {
                "label": instance.label,
                "key": instance.key,
                "type": instance.type,
                "options": "\n".join(str(o) for o in instance.options),
                **(kwargs.get("initial") or {}),
            }
        super().__init__(*args, **kwargs)
        if instance is not None:
            self.fields["key"].disabled = True

    def clean_options(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["options"].splitlines() if line.strip()]


class ContactImportForm(forms.Form):
    """The upload step; what each column holds and the mode are chosen on the next page."""

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
            "A CSV file with a header row, up to %(limit)s. Commas, semicolons, tabs or "
            "pipes; UTF-8, UTF-16, Windows-1251 or Latin-1 text. On the next page you see "
            "each column with sample values and choose what it holds."
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


class ContactImportMappingForm(forms.Form):
    """One select per CSV column, pre-filled with the guess, the import's mode and what to
    do with contacts who unsubscribed before.

    A column mapped to a new field also has a name and a type for that field
    (``col_N_key``, ``col_N_type``); the mapping it builds is the service's
    (``new:KEY:TYPE``), so the page and the API and the command check it the same way.
    """

    mode = forms.ChoiceField(
        label=_("Contacts already in Mailcenter"),
        choices=ContactImport.Mode.choices,
        initial=ContactImport.Mode.ADD_UPDATE,
        required=False,
        widget=forms.RadioSelect,
        help_text=_(
            "“Add new contacts only” leaves the names and fields of known contacts as they "
            "are; “Update existing contacts only” creates no contact and skips unknown "
            "addresses. In every mode known, active contacts join the list."
        ),
    )
    left_policy = forms.ChoiceField(
        label=_("Contacts who unsubscribed before"),
        choices=ContactImport.LeftPolicy.choices,
        initial=ContactImport.LeftPolicy.SKIP,
        required=False,
        widget=forms.RadioSelect,
        help_text=_(
            "People who unsubscribed, bounced or complained are never subscribed again by an "
            "import. “Update their details” changes their names and fields as for any other "
            "known contact in the chosen mode, and nothing else: they stay unsubscribed and "
            "do not join the list."
        ),
    )

    def __init__(
        self,
        *args: Any,
        header: tuple[str, ...],
        samples: tuple[tuple[str, ...], ...],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header = header
        from contacts.services import imports

        guesses = imports.contact_import_guess_mapping(header)
        existing = [
            (imports.FIELD_PREFIX + field.key, f"{field.label} ({field.get_type_display()})")
            for field in CustomField.objects.order_by("label")
        ]
        type_choices = [
            (value, label)
            for value, label in CustomField.Type.choices
            if value in imports.NEW_FIELD_TYPES
        ]
        self.columns: list[dict[str, Any]] = []
        for index, name in enumerate(header):
            choices: list[Any] = [
                (imports.TARGET_EMAIL, _("Email address")),
                (imports.TARGET_FIRST_NAME, _("First name")),
                (imports.TARGET_LAST_NAME, _("Last name")),
            ]
            if existing:
                choices.append((_("Existing field"), existing))
            choices += [
                (imports.TARGET_NEW_FIELD, _("A new field")),
                (imports.TARGET_IGNORE, _("Ignore this column")),
            ]
            column = name.strip() or _("Column %(number)s") % {"number": index + 1}
            key = f"col_{index}"
            self.fields[key] = forms.ChoiceField(
                label=column, choices=choices, initial=guesses[index]
            )
            self.fields[f"{key}_key"] = forms.CharField(
                label=_("New field name for “%(column)s”") % {"column": column},
                # No max_length here: the service explains a bad name in words, and only
                # for a column that is really mapped to a new field.
                required=False,
                initial=imports.new_field_key(name, index),
                help_text=_("Lower-case letters, digits and underscores."),
            )
            # A select, but checked by the service (like the name) and only when used.
            self.fields[f"{key}_type"] = forms.CharField(
                label=_("New field type for “%(column)s”") % {"column": column},
                widget=forms.Select(choices=type_choices),
                initial=CustomField.Type.TEXT,
                required=False,
            )
            self.columns.append(
                {
                    "field": key,
                    "samples": [row[index] for row in samples if index < len(row) and row[index]],
                }
            )

    def mapping(self) -> list[str]:
        from contacts.services import imports

        targets = []
        for index, name in enumerate(self.header):
            target = self.cleaned_data[f"col_{index}"]
            if target == imports.TARGET_NEW_FIELD:
                key = (self.cleaned_data.get(f"col_{index}_key") or "").strip()
                field_type = self.cleaned_data.get(f"col_{index}_type") or CustomField.Type.TEXT
                target = imports.new_field_target(
                    key or imports.new_field_key(name, index), field_type
                )
            targets.append(target)
        return targets

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        cleaned["mode"] = cleaned.get("mode") or ContactImport.Mode.ADD_UPDATE
        cleaned["left_policy"] = cleaned.get("left_policy") or ContactImport.LeftPolicy.SKIP
        if not self.errors:
            from contacts.services import imports

            imports.contact_import_mapping_clean(self.header, self.mapping())
        return cleaned

    def bound_columns(self) -> list[dict[str, Any]]:
        return [
            {
                **column,
                "bound": self[column["field"]],
                "key": self[f"{column['field']}_key"],
                "type": self[f"{column['field']}_type"],
            }
            for column in self.columns
        ]


class SegmentForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    # The rule builder keeps this up to date; without script it can be edited as JSON.
    rules = forms.CharField(
        label=_("Rules (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
    )

    def clean_rules(self) -> Any:
        raw = self.cleaned_data["rules"].strip()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValidationError(_("This is not valid JSON: %(error)s") % {"error": exc}) from None


class CampaignAudienceForm(forms.Form):
    """The segments a campaign goes to (besides its lists) and what it leaves out."""

    segments = forms.ModelMultipleChoiceField(
        label=_("Also send to these segments"),
        queryset=Segment.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    excluded_lists = forms.ModelMultipleChoiceField(
        label=_("Leave out the subscribers of these lists"),
        queryset=MailingList.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    excluded_segments = forms.ModelMultipleChoiceField(
        label=_("Leave out these segments"),
        queryset=Segment.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    @staticmethod
    def initial_for(campaign: Any) -> dict[str, Any]:
        return {
            "segments": list(campaign.segments.values_list("pk", flat=True)),
            "excluded_lists": list(campaign.excluded_lists.values_list("pk", flat=True)),
            "excluded_segments": list(campaign.excluded_segments.values_list("pk", flat=True)),
        }


class SuppressionForm(forms.Form):
    value = forms.CharField(
        label=_("Address or domain"),
        max_length=254,
        help_text=_("An address (ann@example.com) or a whole domain (example.com)."),
    )
    reason = forms.ChoiceField(
        label=_("Reason"), choices=Suppression.Reason.choices, initial=Suppression.Reason.MANUAL
    )


class SuppressionImportForm(forms.Form):
    file = forms.FileField(
        label=_("File of addresses"),
        help_text=_(
            "A CSV or text file with one address or domain per line (the first column is "
            "read; a header row is skipped)."
        ),
    )


class PreferencesForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    lists = forms.TypedMultipleChoiceField(
        label=_("Your subscriptions"),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, subscriptions: Any = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lists"].choices = [
            (s.mailing_list_id, s.mailing_list.name) for s in subscriptions
        ]


class SignupFormForm(forms.Form):
    """The marketer's settings of a subscription form."""

    name = forms.CharField(label=_("Name"), max_length=200, help_text=_("For you only."))
    lists = forms.ModelMultipleChoiceField(
        label=_("Subscribes to"),
        queryset=MailingList.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple,
    )
    fields = forms.MultipleChoiceField(
        label=_("Fields asked for besides the email address"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    title = forms.CharField(label=_("Title"), max_length=200, required=False)
    intro = forms.CharField(
        label=_("Introduction"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    button_label = forms.CharField(
        label=_("Button label"), max_length=100, required=False, initial=_("Subscribe")
    )
    success_message = forms.CharField(
        label=_("Message after signing up"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    consent_text = forms.CharField(
        label=_("Consent text"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=SignupForm._meta.get_field("consent_text").help_text,
    )
    double_opt_in = forms.BooleanField(
        label=_("Double opt-in: confirm by email before anything is sent"),
        required=False,
        initial=True,
    )

    def __init__(self, *args: Any, instance: SignupForm | None = None, **kwargs: Any) -> None:
        if instance is not None:
            kwargs["initial"] = {
                "name": instance.name,
                "lists": list(instance.lists.values_list("pk", flat=True)),
                "fields": instance.fields,
                "title": instance.title,
                "intro": instance.intro,
                "button_label": instance.button_label,
                "success_message": instance.success_message,
                "consent_text": instance.consent_text,
                "double_opt_in": instance.double_opt_in,
                **(kwargs.get("initial") or {}),
            }
        super().__init__(*args, **kwargs)
        self.fields["fields"].choices = [
            ("first_name", _("First name")),
            ("last_name", _("Last name")),
            *CustomField.objects.order_by("label").values_list("key", "label"),
        ]


class PublicSignupForm(forms.Form):
    """What a visitor fills in: built from a SignupForm's settings. Values are checked by
    ``signup_clean``; this only draws the inputs."""

    email = forms.EmailField(label=_("Email"), max_length=254)

    def __init__(self, *args: Any, signup_form: SignupForm, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signup_form = signup_form
        names = {"first_name": _("First name"), "last_name": _("Last name")}
        custom = {f.key: f for f in CustomField.objects.filter(key__in=signup_form.fields)}
        for key in signup_form.fields:
            if key in names:
                self.fields[key] = forms.CharField(label=names[key], max_length=150, required=False)
            elif key in custom:
                self.fields[key] = custom_form_field(custom[key])
        if signup_form.consent_text:
            self.fields["consent"] = forms.BooleanField(
                label=signup_form.consent_text, required=True
            )


class ContactExportForm(forms.Form):
    """Which contacts (a list or a segment) and which columns to export."""

    mailing_list = forms.ModelChoiceField(
        label=_("List"),
        queryset=MailingList.objects.order_by("name"),
        required=False,
        empty_label=_("— none —"),
    )
    segment = forms.ModelChoiceField(
        label=_("or segment"),
        queryset=Segment.objects.order_by("name"),
        required=False,
        empty_label=_("— none —"),
    )
    fields = forms.MultipleChoiceField(
        label=_("Columns besides the email address"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["fields"].choices = [
            ("first_name", _("First name")),
            ("last_name", _("Last name")),
            ("status", _("Status")),
            ("created_at", _("Added")),
            *[
                (f"custom.{key}", label)
                for key, label in CustomField.objects.order_by("label").values_list("key", "label")
            ],
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if bool(cleaned.get("mailing_list")) == bool(cleaned.get("segment")):
            raise ValidationError(_("Choose either a list or a segment to export."))
        return cleaned
