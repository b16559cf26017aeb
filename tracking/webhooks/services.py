"""Outgoing webhooks: register endpoints, queue deliveries with the events, send them.

Deliveries are rows created in the same transaction as the events they announce (one
bulk insert per batch of events), so an event that is rolled back announces nothing and
one that is committed is never forgotten. Sending follows the campaigns' rule: claim due
rows in one short transaction, POST outside any transaction, record the outcome in a
second short one that only touches rows still under the claim.

Each POST carries ``X-Mailcenter-Timestamp`` (Unix seconds) and
``X-Mailcenter-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the
endpoint's secret>``; a receiver recomputes it and rejects old timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tracking import conf
from tracking.models import Event, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

DELIVERED = "delivered"
BOUNCED = "bounced"
OPENED = "opened"
CLICKED = "clicked"
UNSUBSCRIBED = "unsubscribed"
COMPLAINED = "complained"
SUBSCRIBED = "subscribed"
TEST = "test"
EVENTS = [
    (DELIVERED, gettext_lazy("Delivered (accepted by the receiving server)")),
    (BOUNCED, gettext_lazy("Bounced")),
    (OPENED, gettext_lazy("Opened")),
    (CLICKED, gettext_lazy("Clicked")),
    (UNSUBSCRIBED, gettext_lazy("Unsubscribed")),
    (COMPLAINED, gettext_lazy("Complained")),
    (SUBSCRIBED, gettext_lazy("Subscribed")),
]
EVENT_NAMES = [name for name, _label in EVENTS]
_FROM_KIND = {
    Event.Kind.OPEN: OPENED,
    Event.Kind.CLICK: CLICKED,
    Event.Kind.UNSUBSCRIBE: UNSUBSCRIBED,
    Event.Kind.BOUNCE: BOUNCED,
    Event.Kind.COMPLAINT: COMPLAINED,
}
# A claim older than this belongs to a worker that died (its POST is long timed out).
CLAIM_TIMEOUT = timedelta(minutes=5)
# Claimed at a time: even if every endpoint times out, the batch is sent well within the
# claim timeout, so no other worker takes it over and posts it twice.
CLAIM_BATCH = 10
USER_AGENT = "Mailcenter-Webhooks/1"


class WebhookError(ValueError):
    """Bad input from the operator; the message says what to fix."""


# --- Settings (MAILCENTER_WEBHOOK_*; tests shorten them) ----------------------------------


def timeout_seconds() -> float:
    """Seconds to wait for an endpoint's answer (``MAILCENTER_WEBHOOK_TIMEOUT``)."""
    return float(conf._value("MAILCENTER_WEBHOOK_TIMEOUT", "10"))


def backoff_base_seconds() -> int:
    """First retry delay; it doubles per attempt (``MAILCENTER_WEBHOOK_BACKOFF``)."""
    return max(1, conf._int("MAILCENTER_WEBHOOK_BACKOFF", 60))


def backoff_max_seconds() -> int:
    """Longest retry delay (``MAILCENTER_WEBHOOK_BACKOFF_MAX``), a day by default."""
    return max(1, conf._int("MAILCENTER_WEBHOOK_BACKOFF_MAX", 24 * 3600))


def max_attempts() -> int:
    """Attempts before a delivery is given up (``MAILCENTER_WEBHOOK_MAX_ATTEMPTS``)."""
    return max(1, conf._int("MAILCENTER_WEBHOOK_MAX_ATTEMPTS", 10))


def retry_delay(attempts: int) -> timedelta:
    """Delay after the ``attempts``-th failed attempt: base, doubling, capped."""
    seconds = backoff_base_seconds() * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, backoff_max_seconds()))


# --- Endpoints ----------------------------------------------------------------------------


def _url_clean(url: str) -> str:
    url = (url or "").strip()
    if any(c in url for c in "\r\n\t\x00 "):
        raise WebhookError(_("The URL must not contain spaces or line breaks."))
    if not url:
        raise WebhookError(_("Enter the endpoint's URL."))
    if len(url) > 2000:
        raise WebhookError(_("The URL is too long (2000 characters at most)."))
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise WebhookError(_("This is not a valid URL.")) from None
    if parts.scheme not in ("http", "https"):
        raise WebhookError(_("Only http:// and https:// URLs can receive webhooks."))
    if not parts.hostname:
        raise WebhookError(_("The URL needs a host name."))
    if parts.username or parts.password:
        raise WebhookError(_("Put no user name or password in the URL; deliveries are signed."))
    return url


def _events_clean(events: Iterable[str]) -> list[str]:
    chosen = [name for name in EVENT_NAMES if name in set(events)]
    unknown = set(events) - set(EVENT_NAMES)
    if unknown:
        raise WebhookError(_("Unknown event: %(name)s.") % {"name": sorted(unknown)[0]})
    if not chosen:
        raise WebhookError(_("Choose at least one event."))
    return chosen


def secret_generate() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def endpoint_create(url: str, events: Iterable[str]) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret, which is shown once."""
    secret = secret_generate()
    endpoint = WebhookEndpoint.objects.create(
        url=_url_clean(url), events=_events_clean(list(events)), secret=secret
    )
    return endpoint, secret


def endpoint_secret_rotate(endpoint: WebhookEndpoint) -> str:
    """Give the endpoint a new secret (the old one stops working at once); returns it."""
    endpoint.secret = secret_generate()
    endpoint.save(update_fields=["secret"])
    return endpoint.secret


def endpoint_set_enabled(endpoint: WebhookEndpoint, enabled: bool) -> None:
    """Disable or enable. A disabled endpoint gets no new deliveries, and its pending
    ones are not sent (they wait, and go out if it is enabled again)."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=enabled)
    endpoint.enabled = enabled


def endpoint_delete(endpoint: WebhookEndpoint) -> None:
    endpoint.delete()  # its deliveries go with it


def endpoint_deliveries(endpoint: WebhookEndpoint, limit: int = 100) -> list[WebhookDelivery]:
    return list(endpoint.deliveries.order_by("-id")[:limit])


# --- Queueing (called inside the transaction that stores the events) ----------------------


def _endpoints_for(event: str) -> list[int]:
    # JSON containment is not portable (SQLite); the endpoint table is a handful of rows.
    return [
        pk
        for pk, events in WebhookEndpoint.objects.filter(enabled=True).values_list("id", "events")
        if event in (events or [])
    ]


def _iso(at: datetime | None) -> str:
    return (at or timezone.now()).astimezone(UTC).isoformat().replace("+00:00", "Z")


def payloads_enqueue(event: str, payloads: list[dict]) -> int:
    """Create one delivery per (subscribed endpoint, payload) in one bulk insert, and send
    them once the caller's transaction commits. Returns the number created."""
    if not payloads:
        return 0
    endpoint_ids = _endpoints_for(event)
    if not endpoint_ids:
        return 0
    now = timezone.now()
    rows = [
        WebhookDelivery(
            endpoint_id=pk, event=event, payload={"event": event, **p}, next_attempt_at=now
        )
        for pk in endpoint_ids
        for p in payloads
    ]
    WebhookDelivery.objects.bulk_create(rows, batch_size=1000)
    _send_soon()
    return len(rows)


def _send_soon() -> None:
    from tracking.webhooks.tasks import webhooks_deliver_task

    transaction.on_commit(lambda: webhooks_deliver_task.delay())


def events_enqueue(events: list[Event], emails: dict[int, str]) -> int:
    """Queue the deliveries for freshly written tracking events; ``emails`` maps message
    ids to recipient addresses (the writer already has the messages)."""
    by_kind: dict[str, list[dict]] = {}
    for e in events:
        name = _FROM_KIND.get(e.kind)
        if name is None:
            continue
        payload = {
            "occurred_at": _iso(e.created_at),
            "campaign_id": e.campaign_id,
            "message_id": e.message_id,
            "email": emails.get(e.message_id, ""),
        }
        if e.kind in (Event.Kind.OPEN, Event.Kind.CLICK):
            payload["machine"] = e.is_machine
            if e.link_id is not None:
                payload["url"] = e.link.url if e.link else None
        if e.kind == Event.Kind.BOUNCE:
            payload.update(severity=e.severity, status=e.status_code, diagnostic=e.diagnostic)
        if e.kind == Event.Kind.COMPLAINT:
            payload["diagnostic"] = e.diagnostic
        by_kind.setdefault(name, []).append(payload)
    return sum(payloads_enqueue(name, items) for name, items in by_kind.items())


def delivered_enqueue(message_ids: list[int]) -> int:
    """Queue "delivered" for a batch of messages the server accepted, inside the
    transaction that records them as sent: one query for the endpoints, and only when some
    endpoint wants the event, one for the messages and one bulk insert."""
    if not message_ids or not _endpoints_for(DELIVERED):
        return 0
    from campaigns.models import Message

    with transaction.atomic():
        rows = Message.objects.filter(id__in=message_ids, status=Message.Status.SENT).values_list(
            "id", "campaign_id", "email", "sent_at"
        )
        return payloads_enqueue(
            DELIVERED,
            [
                {"occurred_at": _iso(at), "campaign_id": c, "message_id": m, "email": email}
                for m, c, email, at in rows
            ],
        )


def subscribed_enqueue(contact_id: int, email: str, list_ids: list[int], at: datetime) -> int:
    """Queue "subscribed" for a confirmed sign-up."""
    return payloads_enqueue(
        SUBSCRIBED,
        [
            {
                "occurred_at": _iso(at),
                "campaign_id": None,
                "message_id": None,
                "email": email,
                "contact_id": contact_id,
                "list_ids": list(list_ids),
            }
        ],
    )


# --- Sending ------------------------------------------------------------------------------


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would lose its body (or go somewhere unexpected): a failure.
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post(url: str, secret: str, payload: dict) -> tuple[int | None, str]:
    """POST the signed payload; returns (HTTP status or None, error text or "")."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    stamp = str(int(time.time()))
    request = urllib.request.Request(  # noqa: S310 - the scheme was checked at registration
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Mailcenter-Timestamp": stamp,
            "X-Mailcenter-Signature": signature(secret, stamp, body),
        },
    )
    try:
        with _opener.open(request, timeout=timeout_seconds()) as response:
            response.read(1024)
            return response.status, ""
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, f"HTTP {exc.code} {exc.reason}"[:500]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, str(reason)[:500] or exc.__class__.__name__


def deliveries_claim(now: datetime, size: int) -> tuple[str, list[WebhookDelivery]]:
    """Atomically claim up to ``size`` due deliveries of enabled endpoints (pending and
    due, or claimed by a worker that died). Safe with concurrent workers."""
    token = uuid.uuid4().hex
    due = Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=WebhookDelivery.Status.SENDING, claimed_at__lt=now - CLAIM_TIMEOUT
    )
    due &= Q(endpoint__enabled=True)
    with transaction.atomic():
        candidates = WebhookDelivery.objects.filter(due).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        ids = list(candidates.values_list("id", flat=True)[:size])
        if not ids:
            return token, []
        WebhookDelivery.objects.filter(due, id__in=ids).update(
            status=WebhookDelivery.Status.SENDING,
            claim_token=token,
            claimed_at=now,
            attempts=F("attempts") + 1,
        )
    claimed = WebhookDelivery.objects.filter(
        claim_token=token, status=WebhookDelivery.Status.SENDING
    ).select_related("endpoint")
    return token, list(claimed)


def _result_record(
    delivery: WebhookDelivery, token: str, code: int | None, error: str, now: datetime
) -> None:
    ok = code is not None and 200 <= code < 300
    fields: dict = {"response_code": code, "last_error": error, "claim_token": ""}
    if ok:
        fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now, last_error="")
        fields["next_attempt_at"] = None
    elif delivery.attempts >= max_attempts():
        fields.update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None)
    else:
        fields.update(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at=now + retry_delay(delivery.attempts),
        )
    WebhookDelivery.objects.filter(pk=delivery.pk, claim_token=token).update(**fields)
    for name, value in fields.items():
        setattr(delivery, name, value)


def deliveries_send_due(now: datetime | None = None, limit: int = 200) -> int:
    """Send the deliveries due at ``now``; returns how many were attempted. Call it
    outside any transaction (the task does): no transaction is held across a POST.

    ``now`` decides what is due and when retries fall (tests pass it to skip the wait);
    the signature's timestamp is always the real clock.
    """
    done = 0
    while done < limit:
        at = now or timezone.now()
        token, batch = deliveries_claim(at, min(CLAIM_BATCH, limit - done))
        if not batch:
            break
        for delivery in batch:
            code, error = post(delivery.endpoint.url, delivery.endpoint.secret, delivery.payload)
            _result_record(delivery, token, code, error, now or timezone.now())
            if error:
                logger.info("webhook %s to %s: %s", delivery.pk, delivery.endpoint.url, error)
        done += len(batch)
    return done


def endpoint_send_test(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a "test" event to the endpoint now (even when disabled), recorded in its
    history like any delivery; it is not retried."""
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event=TEST,
        payload={
            "event": TEST,
            "occurred_at": _iso(now),
            "campaign_id": None,
            "message_id": None,
            "email": "test@example.com",
        },
        status=WebhookDelivery.Status.SENDING,
        attempts=1,
        claim_token=uuid.uuid4().hex,
        claimed_at=now,
    )
    code, error = post(endpoint.url, endpoint.secret, delivery.payload)
    ok = code is not None and 200 <= code < 300
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.DELIVERED if ok else WebhookDelivery.Status.FAILED,
        response_code=code,
        last_error=error,
        claim_token="",
        delivered_at=now if ok else None,
    )
    delivery.refresh_from_db()
    return delivery
