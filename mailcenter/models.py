from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class OutboxMessage(models.Model):
    """A message the ``outbox`` backend kept instead of sending: the embedded default."""

    sender = models.CharField(max_length=100)
    recipient = models.CharField(max_length=320)
    return_path = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    raw = models.BinaryField()
    message_ref = models.CharField(
        max_length=64, blank=True, help_text=_("Our message id, when the mail was a campaign's.")
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.subject}"


class UserSettings(models.Model):
    """Per-user preferences; times are stored in UTC and shown in ``time_zone``."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mailcenter_settings"
    )
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)

    def __str__(self) -> str:
        return f"settings of {self.user_id}"


class SendingDomain(models.Model):
    """A domain campaigns are sent from, with the DKIM keys that sign its mail."""

    domain = models.CharField(_("domain"), max_length=253, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain


class DkimKey(models.Model):
    """One DKIM key pair of a sending domain.

    The private key is stored encrypted (see ``mailcenter.domains.keys``) and is never shown
    again after it is generated; ``__str__``/``__repr__`` leave it out so it cannot end up in a
    log line. At most one key per domain and algorithm is active: it signs the domain's mail.
    """

    class Algorithm(models.TextChoices):
        RSA_SHA256 = "rsa-sha256", _("RSA 2048 (rsa-sha256)")
        ED25519_SHA256 = "ed25519-sha256", _("Ed25519 (ed25519-sha256)")

    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="keys")
    selector = models.CharField(_("selector"), max_length=63)
    algorithm = models.CharField(
        _("algorithm"), max_length=20, choices=Algorithm.choices, default=Algorithm.RSA_SHA256
    )
    private_key_encrypted = models.TextField(editable=False)
    public_key = models.TextField(help_text=_("Base64, as published in the p= tag."))
    active = models.BooleanField(_("active"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dkimkey_unique_selector"),
            models.UniqueConstraint(
                fields=["domain", "algorithm"],
                condition=models.Q(active=True),
                name="dkimkey_one_active_per_algorithm",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey ({self.algorithm})"

    def __repr__(self) -> str:
        return f"<DkimKey {self.pk} {self.selector} {self.algorithm} active={self.active}>"
