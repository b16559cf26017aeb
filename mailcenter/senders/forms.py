"""The Settings → Senders form. Secrets are write-only: the inputs never render a value."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from mailcenter.models import Sender
from mailcenter.senders import services


class SenderForm(forms.Form):
    alias = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("What campaigns choose, e.g. “newsletter”. It cannot be changed later."),
    )
    backend = forms.ChoiceField(label=_("Backend"), choices=Sender.Backend.choices)
    host = forms.CharField(
        label=_("Host"),
        max_length=253,
        required=False,
        help_text=_("The SMTP relay, e.g. smtp.example.com."),
    )
    port = forms.IntegerField(
        label=_("Port"),
        required=False,
        min_value=1,
        max_value=65535,
        help_text=_("Empty: 587 (465 for TLS from the start; 25 for direct delivery)."),
    )
    security = forms.ChoiceField(
        label=_("Security"), choices=Sender.Security.choices, initial=Sender.Security.STARTTLS
    )
    verify_tls = forms.BooleanField(
        label=_("Verify the server's TLS certificate"), required=False, initial=True
    )
    username = forms.CharField(label=_("User name"), max_length=254, required=False)
    password = forms.CharField(
        label=_("Password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_password = forms.BooleanField(label=_("Clear the stored password"), required=False)
    timeout = forms.FloatField(label=_("Timeout (seconds)"), min_value=1, max_value=300, initial=30)
    local_hostname = forms.CharField(
        label=_("EHLO name"),
        max_length=253,
        required=False,
        help_text=_("The name this server gives itself; empty: the machine's host name."),
    )
    esp = forms.CharField(
        label=_("ESP"),
        max_length=200,
        required=False,
        help_text=_("For Anymail: unisender_go, mailgun, amazon_ses, postmark ..."),
    )
    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_api_key = forms.BooleanField(label=_("Clear the stored API key"), required=False)
    rate = forms.FloatField(
        label=_("Messages per second"),
        required=False,
        min_value=0,
        help_text=_("Empty: no limit. Shared by every worker, e.g. 10 or 0.5."),
    )
    concurrency = forms.IntegerField(
        label=_("Batches at once"),
        required=False,
        min_value=1,
        max_value=1000,
        help_text=_("Empty: as many as the workers run."),
    )

    def __init__(self, *args: Any, instance: Sender | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None:
            kwargs["initial"] = {
                "alias": instance.alias,
                **{name: getattr(instance, name) for name in services.FIELDS},
            }
        super().__init__(*args, **kwargs)
        if instance is not None:
            self.fields["alias"].disabled = True
            self.fields["alias"].help_text = _("Campaigns name the sender by it.")
            for name, attr in (
                ("password", "password_encrypted"),
                ("api_key", "api_key_encrypted"),
            ):
                if getattr(instance, attr):
                    self.fields[name].help_text = _("Set — leave empty to keep it.")
                    self.fields[name].widget.attrs["placeholder"] = _("set — leave empty to keep")
        if instance is None or not instance.password_encrypted:
            del self.fields["clear_password"]
        if instance is None or not instance.api_key_encrypted:
            del self.fields["clear_api_key"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            if self.instance is None:
                cleaned["alias"] = services.sender_check_alias(cleaned.get("alias", ""))
            cleaned.update(services.sender_check(cleaned))
            for name in ("password", "api_key"):
                if any(ch in (cleaned.get(name) or "") for ch in "\r\n"):
                    raise services.SenderError(_("A secret cannot contain line breaks."), name)
        except services.SenderError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        return cleaned

    def fields_data(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in services.FIELDS}
