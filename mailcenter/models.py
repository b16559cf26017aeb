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


class Sender(models.Model):
    """A named sender defined in Settings → Senders, beside those of ``MAILCENTER_SENDERS``.

    Campaigns name a sender by ``alias``. The password and API key are stored encrypted
    (``mailcenter.crypto``) and are write-only: no page, API response or log shows them, and
    ``__str__``/``__repr__`` leave them out. ``mailcenter.senders`` turns a row into the same
    ``{"BACKEND": ..., "OPTIONS": {...}}`` shape the settings use.
    """

    class Backend(models.TextChoices):
        SMTP = "smtp", _("SMTP relay")
        MX = "mx", _("Direct delivery (MX)")
        ANYMAIL = "anymail", _("Email service provider (Anymail)")
        OUTBOX = "outbox", _("Outbox (keep messages here)")

    class Security(models.TextChoices):
        STARTTLS = "starttls", _("STARTTLS (required)")
        TLS = "tls", _("TLS from the start (SMTPS)")
        OPPORTUNISTIC = "opportunistic", _("STARTTLS when offered")
        NONE = "none", _("None (plaintext)")

    alias = models.SlugField(_("name"), max_length=100, unique=True)
    backend = models.CharField(
        _("backend"), max_length=20, choices=Backend.choices, default=Backend.SMTP
    )
    host = models.CharField(_("host"), max_length=253, blank=True)
    port = models.PositiveIntegerField(_("port"), null=True, blank=True)
    security = models.CharField(
        _("security"), max_length=20, choices=Security.choices, default=Security.STARTTLS
    )
    username = models.CharField(_("user name"), max_length=254, blank=True)
    password_encrypted = models.TextField(blank=True, editable=False)
    timeout = models.FloatField(_("timeout (seconds)"), default=30)
    verify_tls = models.BooleanField(_("verify the TLS certificate"), default=True)
    local_hostname = models.CharField(_("EHLO name"), max_length=253, blank=True)
    esp = models.CharField(_("ESP"), max_length=200, blank=True)
    api_key_encrypted = models.TextField(blank=True, editable=False)
    # Throttling, as the ``rate`` and ``concurrency`` options of a configured sender.
    rate = models.FloatField(_("messages per second"), null=True, blank=True)
    concurrency = models.PositiveIntegerField(_("batches at once"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["alias"]

    def __str__(self) -> str:
        return self.alias

    def __repr__(self) -> str:
        return f"<Sender {self.pk} {self.alias} {self.backend}>"
