"""Delivery and engagement events from email service providers, as django-anymail's
tracking webhooks normalise them (``/webhooks/anymail/<esp>/tracking/``).

The ``anymail`` delivery backend stores the ESP's id of each message on it
(``Message.esp_message_id``); an event is tied to its message by that id and goes through
the same services as what comes back by mail or through our own endpoints, so the
suppression policy, the report counters and the outgoing webhooks cannot tell them apart:

- bounced: a bounce (hard, unless the receiving server's reply quoted by the ESP carries
  a transient status such as 4.2.2 mailbox full); deferred: a soft bounce;
- complained: a complaint; unsubscribed: an unsubscribe;
- opened / clicked: opens and clicks, through the hit writer (machine detection included);
- rejected / failed: the message is marked failed with the ESP's reason; a rejection
  because the ESP knows the address is dead (its own bounce list, an invalid address)
  is a hard bounce as well, as a synchronous 5.1.x refusal is;
- delivered: nothing to record. "Delivered" in our reports is "sent minus bounced", and
  the message was marked sent (and the outgoing "delivered" webhook queued) when the ESP
  accepted it; queued, sent and the rest are likewise ignored.

ESPs retry a webhook until it is answered 2xx, so each event is recorded once: its
receipt (the ESP's event id, or for ESPs without one the event's own fields) is written
in the transaction that records it. An event for a message we do not know is logged and
answered 200 all the same, or the ESP would retry it for days.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import urlsplit

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from django.db import transaction
from django.urls import Resolver404, resolve
from django.utils import timezone

from campaigns.models import CampaignLink, Message
from tracking import bounces, tokens
from tracking.models import Event
from tracking.services import (
    Hit,
    bounce_record,
    complaint_record,
    contact_unsubscribe,
    hits_write,
    receipt_claim,
    receipt_key,
)

logger = logging.getLogger(__name__)

# Rejections that mean the address itself is bad, not that the ESP had a problem.
_DEAD_ADDRESS = {RejectReason.BOUNCED, RejectReason.INVALID}
_DIAGNOSTIC_MAX = 1000
_HANDLED = {
    EventType.BOUNCED,
    EventType.DEFERRED,
    EventType.COMPLAINED,
    EventType.UNSUBSCRIBED,
    EventType.OPENED,
    EventType.CLICKED,
    EventType.REJECTED,
    EventType.FAILED,
}


def _identity(event: AnymailTrackingEvent) -> str:
    if event.event_id:
        return f"id|{event.event_id}"
    # Postmark (opens, clicks, deliveries) and Unisender Go send no event id; a retried
    # call repeats the same fields, a new event differs at least in its time.
    at = event.timestamp.isoformat() if event.timestamp else ""
    fields = (event.event_type, event.message_id, at, event.recipient, event.click_url)
    return "fields|" + "|".join(str(f or "") for f in fields)


def _diagnostic(event: AnymailTrackingEvent) -> str:
    parts = [str(p).strip() for p in (event.description, event.mta_response) if p]
    return " — ".join(dict.fromkeys(p for p in parts if p))[:_DIAGNOSTIC_MAX]


def _reply_code(event: AnymailTrackingEvent) -> int | None:
    # Mailgun gives the receiving server's reply code beside its text, which Anymail
    # does not normalise; other ESPs quote it in the text.
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    status = (esp_event.get("event-data") or {}).get("delivery-status") or {}
    code = status.get("code") if isinstance(status, dict) else None
    return code if isinstance(code, int) and 200 <= code < 600 else None


def _bounce_report(event: AnymailTrackingEvent, *, soft: bool) -> bounces.Report:
    diagnostic = _diagnostic(event)
    status, smtp_code = bounces.status_from_text(str(event.mta_response or diagnostic))
    smtp_code = smtp_code or _reply_code(event)
    severity = bounces.SOFT if soft else (bounces.severity_for(status, smtp_code) or bounces.HARD)
    return bounces.Report(
        kind=bounces.KIND_BOUNCE,
        severity=severity,
        status=status,
        smtp_code=smtp_code,
        diagnostic=diagnostic,
        recipient=event.recipient or "",
    )


def _at(event: AnymailTrackingEvent) -> datetime:
    at = event.timestamp or timezone.now()
    return at if timezone.is_aware(at) else at.replace(tzinfo=UTC)


def _link_index(message: Message, url: str | None) -> int | None:
    """The campaign link an ESP's click names: our own click URL (when the ESP tracked a
    link we had already rewritten) or the stored target itself."""
    if not url:
        return None
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        match = None
    if match is not None and match.url_name == "track-click":
        try:
            message_id, index = tokens.read_token("click", match.kwargs["token"])
        except tokens.BadToken:
            return None
        return index if message_id == message.pk else None
    return (
        CampaignLink.objects.filter(campaign_id=message.campaign_id, url=url)
        .values_list("index", flat=True)
        .first()
    )


def _hit(kind: str, message: Message, event: AnymailTrackingEvent) -> str:
    index = None
    if kind == Event.Kind.CLICK:
        index = _link_index(message, event.click_url)
        if index is None:
            return "unknown link"
    # What the ESP saw of the request: no method or IP address, so only the user agent
    # and the timing take part in telling a machine from a person.
    hit = Hit(
        kind=kind,
        message_id=message.pk,
        link_index=index,
        at=_at(event),
        user_agent=(event.user_agent or "")[:500],
    )
    return kind if hits_write([hit]) else "not tracked"


def _fail(message: Message, event: AnymailTrackingEvent) -> str:
    diagnostic = _diagnostic(event) or str(event.reject_reason or event.event_type)
    status, smtp_code = bounces.status_from_text(diagnostic)
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.FAILED,
        last_reply=diagnostic[:2000],
        smtp_code=smtp_code,
        enhanced_status=status[:16],
    )
    if event.event_type == EventType.REJECTED and event.reject_reason in _DEAD_ADDRESS:
        report = _bounce_report(event, soft=False)
        bounce_record(message, report)
        return f"failed, bounce {report.severity}"
    return "failed"


def esp_event_record(event: AnymailTrackingEvent, esp_name: str) -> str:
    """Record one normalised ESP event; returns what was done (for the log and tests).

    Idempotent per event (see the module docstring). One transaction: the receipt and
    everything the event changes commit together. Raises only for database errors, which
    the webhook answers with a 500 so that the ESP tries again.
    """
    kind = event.event_type
    if kind not in _HANDLED:
        return f"ignored {kind}"
    message = (
        Message.objects.select_related("campaign").filter(esp_message_id=event.message_id).first()
        if event.message_id
        else None
    )
    if message is None:
        logger.info("%s %s event for unknown message %r", esp_name, kind, event.message_id)
        return "unknown message"
    source = "esp-" + "".join(c for c in esp_name.lower() if c.isalnum())
    with transaction.atomic():
        if not receipt_claim(receipt_key(source, _identity(event))):
            return "duplicate"
        if kind in (EventType.BOUNCED, EventType.DEFERRED):
            report = _bounce_report(event, soft=kind == EventType.DEFERRED)
            outcome = f"bounce {bounce_record(message, report).severity}"
        elif kind == EventType.COMPLAINED:
            report = bounces.Report(
                kind=bounces.KIND_COMPLAINT,
                diagnostic=_diagnostic(event) or f"{esp_name} complaint",
                feedback_type="abuse",
                recipient=event.recipient or "",
            )
            outcome = "complaint" if complaint_record(message, report) else "complaint again"
        elif kind == EventType.UNSUBSCRIBED:
            contact_unsubscribe(message)
            outcome = "unsubscribed"
        elif kind == EventType.OPENED:
            outcome = _hit(Event.Kind.OPEN, message, event)
        elif kind == EventType.CLICKED:
            outcome = _hit(Event.Kind.CLICK, message, event)
        else:
            outcome = _fail(message, event)
    logger.info("%s %s event for message %s: %s", esp_name, kind, message.pk, outcome)
    return outcome
