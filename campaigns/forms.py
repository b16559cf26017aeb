"""Forms for the campaign pages. They check input for the user; services decide and write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from campaigns import rendering
from campaigns.models import Campaign
from contacts.models import MailingList
from mailcenter.delivery import sender_names

EMAIL_ERRORS = {"invalid": _("Enter an email address, like news@example.com.")}


def _single_line(value: str, message: str) -> str:
    # These values become mail headers: a line break would let the text add headers.
    if "\r" in value or "\n" in value:
        raise forms.ValidationError(message, code="multiline")
    return value


class CampaignForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=200,
        help_text=_("For you only; recipients never see it."),
    )
    subject = forms.CharField(
        label=_("Subject"),
        max_length=500,
        # Not stripped: a trailing line break must be refused, not silently removed.
        strip=False,
        help_text=_("Variables work here too, e.g. {{ contact.first_name }}."),
    )
    from_name = forms.CharField(label=_("From name"), max_length=200, required=False, strip=False)
    from_email = forms.EmailField(label=_("From address"), error_messages=EMAIL_ERRORS)
    reply_to = forms.EmailField(
        label=_("Reply-to"),
        required=False,
        error_messages=EMAIL_ERRORS,
        help_text=_("Leave empty to receive replies at the from address."),
    )
    html = forms.CharField(
        label=_("HTML body"),
        strip=False,
        widget=forms.Textarea(attrs={"rows": 20, "spellcheck": "false"}),
    )
    lists = forms.ModelMultipleChoiceField(
        label=_("Lists"),
        queryset=MailingList.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": _("Choose at least one list."),
            "invalid_choice": _("That list no longer exists; choose another."),
            "invalid_pk_value": _("That list no longer exists; choose another."),
        },
    )
    sender = forms.ChoiceField(
        label=_("Sender"),
        help_text=_("The configured delivery route this campaign is sent through."),
    )
    track_opens = forms.BooleanField(
        label=_("Track opens"),
        required=False,
        initial=True,
        help_text=_("Adds an invisible image that reports when the message is opened."),
    )
    track_clicks = forms.BooleanField(
        label=_("Track clicks"),
        required=False,
        initial=True,
        help_text=_("Sends links through Mailcenter to count clicks per link."),
    )

    def __init__(self, *args: Any, instance: Campaign | None = None, **kwargs: Any) -> None:
        if instance is not None:
            kwargs["initial"] = {**campaign_initial(instance), **(kwargs.get("initial") or {})}
        super().__init__(*args, **kwargs)
        # With segments a campaign may have no list (they are set below the form).
        self.has_segments = instance is not None and instance.segments.exists()
        if self.has_segments:
            self.fields["lists"].required = False
        self.senders = sender_names()
        if len(self.senders) <= 1:
            # Nothing to choose: clean() fills in the only sender.
            del self.fields["sender"]
        else:
            self.fields["sender"].choices = [(name, name) for name in self.senders]

    def clean_subject(self) -> str:
        value = self.cleaned_data["subject"]
        _single_line(value, _("The subject must be a single line."))
        return value.strip()

    def clean_from_name(self) -> str:
        value = self.cleaned_data["from_name"]
        _single_line(value, _("The from name must be a single line."))
        return value.strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "sender" not in self.fields:
            cleaned["sender"] = self.senders[0] if self.senders else "default"
        html = cleaned.get("html")
        if html is None:
            return cleaned
        # A subject that failed its own checks is left out, so the body is still checked.
        subject = cleaned.get("subject", "")
        try:
            rendering.validate_content(subject, html)
        except rendering.TemplateError as exc:
            self.add_error(_template_error_field(subject), str(exc))
        return cleaned


def _template_error_field(subject: str) -> str:
    """Which field a TemplateError from validate_content(subject, html) belongs to."""
    try:
        rendering.validate_content(subject, "")
    except rendering.TemplateError:
        return "subject"
    return "html"


def campaign_initial(campaign: Campaign) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "subject": campaign.subject,
        "from_name": campaign.from_name,
        "from_email": campaign.from_email,
        "reply_to": campaign.reply_to,
        "html": campaign.html,
        "lists": list(campaign.lists.values_list("pk", flat=True)),
        "sender": campaign.sender,
        "track_opens": campaign.track_opens,
        "track_clicks": campaign.track_clicks,
    }


class SendTestForm(forms.Form):
    email = forms.EmailField(label=_("Send a test to"), error_messages=EMAIL_ERRORS)
