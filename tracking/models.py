from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Event(models.Model):
    class Kind(models.TextChoices):
        OPEN = "open", _("Open")
        CLICK = "click", _("Click")
        UNSUBSCRIBE = "unsubscribe", _("Unsubscribe")
        BOUNCE = "bounce", _("Bounce")
        COMPLAINT = "complaint", _("Complaint")

    class Severity(models.TextChoices):
        HARD = "hard", _("Hard")
        SOFT = "soft", _("Soft")

    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Indexed by the (campaign, kind) index below: a second index on the key alone would
    # only cost the writer another insertion per event.
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="events", db_index=False
    )
    message = models.ForeignKey(
        "campaigns.Message", on_delete=models.CASCADE, related_name="events"
    )
    link = models.ForeignKey(
        "campaigns.CampaignLink", null=True, blank=True, on_delete=models.CASCADE
    )
    # When it happened, which for a queued hit is earlier than when it was written.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    # Bounces and complaints: what the receiving side said.
    severity = models.CharField(max_length=4, choices=Severity.choices, blank=True)
    status_code = models.CharField(max_length=16, blank=True)  # enhanced status, e.g. 5.1.1
    smtp_code = models.PositiveSmallIntegerField(null=True, blank=True)
    diagnostic = models.TextField(blank=True)
    # Opens and clicks made by software (tracking.machine), kept out of headline figures.
    is_machine = models.BooleanField(default=False)
    machine_reason = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["campaign", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.message_id}"


class MessageActivity(models.Model):
    """What happened to one message, kept up to date as its events are written.

    It turns "is this the message's first open?" into a primary-key lookup instead of a
    scan of events, and it is the list of recipients who did each thing. Only messages
    with at least one event have a row. "Human" times leave machine events out.
    """

    message = models.OneToOneField(
        "campaigns.Message", primary_key=True, on_delete=models.CASCADE, related_name="activity"
    )
    # Indexed by the (campaign, …) indexes below.
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="activities", db_index=False
    )
    domain = models.CharField(max_length=255, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)  # first human open
    clicked_at = models.DateTimeField(null=True, blank=True)  # first human click
    opened_any_at = models.DateTimeField(null=True, blank=True)  # machines included
    clicked_any_at = models.DateTimeField(null=True, blank=True)
    opens = models.PositiveIntegerField(default=0)  # human
    clicks = models.PositiveIntegerField(default=0)  # human
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    bounce_severity = models.CharField(max_length=4, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    client = models.CharField(max_length=40, blank=True)  # of the first human open
    device = models.CharField(max_length=20, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["campaign", "opened_at"]),
            models.Index(fields=["campaign", "clicked_at"]),
            # The recipients list pages newest first by message id (keyset): one range of
            # this index per page, whatever the campaign's size.
            models.Index(fields=["campaign", "message"], name="activity_campaign_message"),
            # The rare lists (a few in a thousand recipients) would otherwise scan every
            # activity row of the campaign to fill a page; these stay small.
            models.Index(
                fields=["campaign", "message"],
                condition=models.Q(unsubscribed_at__isnull=False),
                name="activity_unsubscribed",
            ),
            models.Index(
                fields=["campaign", "message"],
                condition=models.Q(bounced_at__isnull=False),
                name="activity_bounced",
            ),
            models.Index(
                fields=["campaign", "message"],
                condition=models.Q(complained_at__isnull=False),
                name="activity_complained",
            ),
        ]

    def __str__(self) -> str:
        return f"activity of message {self.message_id}"


class CampaignMessageStat(models.Model):
    """A campaign's messages counted once: how many recipients, sent and failed.

    Counting a million messages takes a tenth of a second or more each time, and the
    report, its API and the dashboard all show these numbers, so
    ``services.message_stats_refresh`` stores them; ``selectors.message_stats_stale`` says
    when they must be counted again (while sending, at most every few seconds; once after
    the campaign finished; and now and then, as deleted contacts take their messages)."""

    campaign = models.OneToOneField(
        "campaigns.Campaign",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="message_stat",
    )
    recipients = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    counted_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"messages of campaign {self.campaign_id}"


class CampaignHourly(models.Model):
    """Per campaign and hour (UTC), counters bumped as events are written: the report's
    totals are a sum over a few hundred rows, never a scan of the events."""

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="hourly"
    )
    hour = models.DateTimeField()
    opens = models.PositiveIntegerField(default=0)
    opens_unique = models.PositiveIntegerField(default=0)
    opens_machine = models.PositiveIntegerField(default=0)
    opens_unique_all = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    clicks_unique = models.PositiveIntegerField(default=0)
    clicks_machine = models.PositiveIntegerField(default=0)
    clicks_unique_all = models.PositiveIntegerField(default=0)
    unsubscribes = models.PositiveIntegerField(default=0)
    complaints = models.PositiveIntegerField(default=0)
    bounces_hard = models.PositiveIntegerField(default=0)
    bounces_soft = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["campaign", "hour"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "hour"], name="campaignhourly_unique")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} @ {self.hour:%Y-%m-%d %H}h"


class LinkStat(models.Model):
    """Clicks per tracked link, bumped as click events are written."""

    link = models.OneToOneField(
        "campaigns.CampaignLink", primary_key=True, on_delete=models.CASCADE, related_name="stat"
    )
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE)
    clicks = models.PositiveIntegerField(default=0)  # human
    clicks_unique = models.PositiveIntegerField(default=0)  # human, one per message
    clicks_machine = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"clicks of link {self.link_id}"


class DomainStat(models.Model):
    """Per campaign and recipient domain: recipients (counted once by
    ``services.domain_stats_refresh``) and unique engagement (bumped as events are written)."""

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE)
    domain = models.CharField(max_length=255)
    recipients = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    clicked = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)
    counted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "domain"], name="domainstat_unique")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.domain}"


class ClientStat(models.Model):
    """Per campaign, mail client and device: people who opened (first human open)."""

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE)
    client = models.CharField(max_length=40)
    device = models.CharField(max_length=20)
    opened = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "client", "device"], name="clientstat_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.client} {self.device}"


class HitBatch(models.Model):
    """A batch of queued hits that has been written: the writer records its id in the
    same transaction as the batch's events, so a batch found again after a crash is
    written once, never twice."""

    id = models.CharField(primary_key=True, max_length=32)
    written_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.id


class WebhookEndpoint(models.Model):
    """A URL an operator registered to be told about events (see tracking.webhooks).

    The secret signs every delivery; it is shown once when generated and never again.
    """

    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)  # event names, see webhooks.services.EVENTS
    secret = models.CharField(max_length=128)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event to POST to one endpoint, and how that went. Created in the transaction
    that stores the event; sent by a task outside any transaction, retried with backoff."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=20)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["endpoint", "-id"]),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint_id} ({self.status})"


class InboundReceipt(models.Model):
    """A returned mail (from the bounce mailbox) or an ESP webhook event that has been
    acted on. Its key is written in the same transaction as the events it produced, so
    the same report delivered twice (a mailbox move lost in a crash, an ESP retrying a
    webhook) is recorded once."""

    key = models.CharField(primary_key=True, max_length=100)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.key
