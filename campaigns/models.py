from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact, MailingList


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SENDING = "sending", _("Sending")
        PAUSED = "paused", _("Paused")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")

    name = models.CharField(_("name"), max_length=200)
    subject = models.CharField(_("subject"), max_length=500)
    from_name = models.CharField(_("from name"), max_length=200, blank=True)
    from_email = models.EmailField(_("from address"))
    reply_to = models.EmailField(_("reply-to"), blank=True)
    html = models.TextField(_("HTML body"))
    lists = models.ManyToManyField(MailingList, related_name="campaigns", verbose_name=_("lists"))
    sender = models.CharField(_("sender"), max_length=100, default="default")
    track_opens = models.BooleanField(_("track opens"), default=True)
    track_clicks = models.BooleanField(_("track clicks"), default=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    recipients_count = models.PositiveIntegerField(default=0)
    # Why sending stopped by itself (too many failures); empty for a pause by hand.
    pause_reason = models.TextField(_("pause reason"), blank=True)
    # The auto-pause only looks at attempts made after this (the start, or the last resume),
    # so that resuming is not undone at once by the failures that caused the pause.
    failure_window_start = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")

    def __str__(self) -> str:
        return self.name


class CampaignLink(models.Model):
    """A tracked link: click URLs name (message, index) and the target is looked up here."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    index = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)

    class Meta:
        ordering = ["campaign", "index"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "index"], name="campaignlink_unique"),
        ]

    def __str__(self) -> str:
        return self.url


class Message(models.Model):
    """One recipient of one campaign; its status is the truth about whether it was sent."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DEFERRED = "deferred", _("Deferred")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")

    # The unique (campaign, contact) constraint indexes the campaign for every lookup; its
    # own index would only be one more to write per message at start and per status change.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="messages")
    email = models.EmailField(max_length=254)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    claim_token = models.CharField(max_length=32, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    smtp_code = models.PositiveSmallIntegerField(null=True, blank=True)
    enhanced_status = models.CharField(max_length=16, blank=True)
    last_reply = models.TextField(blank=True)
    # When the first attempt was made: a deferred message gives up a maximum age after it.
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    # The reply of every attempt that did not succeed, oldest first, as {"at": ISO time,
    # "code": int | None, "reply": str}; capped (the first entry and the latest ones are
    # kept). The successful attempt is last_reply / smtp_code / sent_at, so that marking a
    # batch sent stays one set-based UPDATE. A JSON column rather than a table: written in
    # the same statement that records the result (no INSERT per attempt), read only with
    # its message, and bounded.
    attempt_log = models.JSONField(default=list, blank=True)
    # The ESP's id for the message (anymail backend), which its webhooks name it by.
    esp_message_id = models.CharField(max_length=255, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "contact"], name="message_unique"),
        ]
        indexes = [
            models.Index(fields=["campaign", "status"]),
            models.Index(fields=["claim_token"]),
            models.Index(fields=["campaign", "claimed_at"]),
            # What messages_claim asks for: a campaign's due messages in id order. Without
            # it PostgreSQL walks the primary key past every message already sent, ~30 ms a
            # claim halfway through a 100,000-recipient campaign (quadratic over the send).
            models.Index(
                fields=["campaign", "id"],
                condition=models.Q(status__in=["queued", "deferred"]),
                name="message_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} → {self.email}"


class ThrottleLock(models.Model):
    """One row per throttle key (``sender:default``, ``domain:gmail.com``), locked while
    the database rate limiter reads and updates that key's entries
    (``mailcenter.delivery.throttle.DatabaseLimiter``; Redis deployments never use it)."""

    key = models.CharField(max_length=300, primary_key=True)

    def __str__(self) -> str:
        return self.key


class ThrottleEntry(models.Model):
    """Messages counted in a sliding window (``count`` of them, leaving the window at
    ``expires_at``), or one slot held until released or ``expires_at``."""

    key = models.CharField(max_length=320)
    token = models.CharField(max_length=32)
    count = models.IntegerField(default=1)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["key", "expires_at"]),
            models.Index(fields=["token"]),
        ]

    def __str__(self) -> str:
        return f"{self.key} x{self.count}"
