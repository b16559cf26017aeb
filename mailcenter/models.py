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
