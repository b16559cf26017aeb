"""Writes for tracking: events from the public endpoints, and unsubscribes."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignLink, Message
from contacts.models import Contact, Subscription
from tracking import aggregates, bounces, conf, machine
from tracking.models import DomainStat, Event, InboundReceipt
from tracking.webhooks import services as webhooks

logger = logging.getLogger(__name__)


def _client_ip(meta: dict) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is trivially forged unless a proxy we trust sets it.
    value = meta.get("REMOTE_ADDR") or None
    return value


@dataclass(frozen=True)
class Hit:
    """One request to the pixel or the redirect, as plain data: what a queue carries from
    the web process to the writer."""

    kind: str
    message_id: int
    link_index: int | None = None
    at: datetime | None = None
    method: str = "GET"
    user_agent: str = ""
    ip: str | None = None

    @classmethod
    def from_request(cls, kind: str, message_id: int, link_index: int | None, meta: dict) -> Hit:
        return cls(
            kind=kind,
            message_id=message_id,
            link_index=link_index,
            at=timezone.now(),
            method=meta.get("REQUEST_METHOD", "GET"),
            user_agent=(meta.get("HTTP_USER_AGENT") or "")[:500],
            ip=_client_ip(meta),
        )


def tracking_allowed(kind: str, campaign: Campaign) -> bool:
    """Opens and clicks are recorded only when tracking is on globally and for the
    campaign; unsubscribes and bounces are actions, always recorded."""
    if kind not in (Event.Kind.OPEN, Event.Kind.CLICK):
        return True
    if not conf.tracking_enabled():
        return False
    return campaign.track_opens if kind == Event.Kind.OPEN else campaign.track_clicks


def hits_write(hits: list[Hit]) -> list[Event]:
    """Turn opens and clicks into events, in bulk, and update the report counters.

    Hits for messages or links that no longer exist, and hits of campaigns that do not
    track (per campaign or globally), are dropped. Each is flagged as a machine's or not
    (tracking.machine) from the full request and the message's history, then its IP
    address is kept only as far as ``MAILCENTER_TRACKING_IP`` allows. One transaction;
    the messages' activity rows are locked, so concurrent writers count a first open once.
    """
    if not hits:
        return []
    hits = sorted(hits, key=lambda h: h.at or timezone.now())
    message_ids = {h.message_id for h in hits}
    window = conf.scanner_seconds()
    ip_mode = conf.ip_mode()
    for attempt in range(2):
        try:
            with transaction.atomic():
                # Only the columns used here: a select_related campaign would carry the
                # campaign's whole HTML once per message of the batch.
                messages = Message.objects.only("id", "campaign_id", "email", "sent_at").in_bulk(
                    message_ids
                )
                campaigns = Campaign.objects.only("id", "track_opens", "track_clicks").in_bulk(
                    {m.campaign_id for m in messages.values()}
                )
                links = {
                    (link.campaign_id, link.index): link
                    for link in CampaignLink.objects.filter(
                        campaign_id__in={m.campaign_id for m in messages.values()}
                    )
                }
                activities = aggregates.activities_for(messages)
                events: list[Event] = []
                human_open: dict[int, datetime | None] = {
                    mid: a.opened_at for mid, a in activities.items()
                }
                for hit in hits:
                    message = messages.get(hit.message_id)
                    if message is None or not tracking_allowed(
                        hit.kind, campaigns[message.campaign_id]
                    ):
                        continue
                    link = None
                    if hit.kind == Event.Kind.CLICK:
                        link = links.get((message.campaign_id, hit.link_index))
                        if link is None:
                            continue
                    at = hit.at or timezone.now()
                    since = (at - message.sent_at).total_seconds() if message.sent_at else None
                    opened = human_open.get(message.pk)
                    reason = machine.machine_reason(
                        hit.kind,
                        method=hit.method,
                        user_agent=hit.user_agent,
                        ip=hit.ip,
                        seconds_since_sent=since,
                        human_open_before=opened is not None and opened <= at,
                        scanner_seconds=window,
                    )
                    if hit.kind == Event.Kind.OPEN and not reason and opened is None:
                        human_open[message.pk] = at
                    events.append(
                        Event(
                            kind=hit.kind,
                            campaign_id=message.campaign_id,
                            message_id=message.pk,
                            link=link,
                            created_at=at,
                            ip=machine.truncate_ip(hit.ip, ip_mode),
                            user_agent=hit.user_agent[:500],
                            is_machine=bool(reason),
                            machine_reason=reason,
                        )
                    )
                events = Event.objects.bulk_create(events)
                aggregates.aggregates_apply(events, activities)
                webhooks.events_enqueue(events, {pk: m.email for pk, m in messages.items()})
                return events
        except IntegrityError:
            # Two writers created the same message's activity row at once; the second
            # tries again and finds it.
            if attempt:
                raise
    return []


def event_record(
    kind: str,
    message: Message,
    *,
    link: CampaignLink | None = None,
    meta: dict | None = None,
) -> Event | None:
    """Record one open or click of ``message`` from a request's META, at once.

    Returns None (and records nothing) when tracking is off for it.
    """
    hit = Hit.from_request(kind, message.pk, link.index if link else None, meta or {})
    events = hits_write([hit])
    return events[0] if events else None


def _single_event(kind: str, message: Message, **fields) -> Event:
    """Write one unsubscribe, bounce or complaint event and fold it into the counters;
    call inside the caller's transaction."""
    event = Event.objects.create(
        kind=kind, campaign_id=message.campaign_id, message_id=message.pk, **fields
    )
    activities = aggregates.activities_for({message.pk: message})
    aggregates.aggregates_apply([event], activities)
    webhooks.events_enqueue([event], {message.pk: message.email})
    return event


def contact_unsubscribe(message: Message, *, meta: dict | None = None) -> bool:
    """Unsubscribe the message's contact from everything; idempotent.

    The contact's status becomes ``unsubscribed`` (which suppresses every later campaign,
    whatever its lists) and each subscription is marked unsubscribed. Returns False when
    the contact was already unsubscribed, so the event is recorded once.
    """
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=message.contact_id)
        if contact.status == Contact.Status.UNSUBSCRIBED:
            return False
        if contact.status == Contact.Status.ACTIVE:
            contact.status = Contact.Status.UNSUBSCRIBED
            contact.save(update_fields=["status", "updated_at"])
        Subscription.objects.filter(contact=contact).update(
            status=Subscription.Status.UNSUBSCRIBED, updated_at=timezone.now()
        )
        already = Event.objects.filter(message=message, kind=Event.Kind.UNSUBSCRIBE).exists()
        if not already:
            meta = meta or {}
            _single_event(
                Event.Kind.UNSUBSCRIBE,
                message,
                ip=machine.truncate_ip(_client_ip(meta), conf.ip_mode()),
                user_agent=(meta.get("HTTP_USER_AGENT") or "")[:500],
            )
    return True


def _unsubscribe_all(contact: Contact) -> None:
    Subscription.objects.filter(contact=contact).update(
        status=Subscription.Status.UNSUBSCRIBED, updated_at=timezone.now()
    )


def bounce_record(message: Message, report: bounces.Report) -> Event:
    """Record a bounce of ``message`` and apply the suppression policy.

    A hard bounce sets the contact's status to ``bounced`` at once; a soft one does so
    when the contact has had ``conf.soft_bounce_limit()`` soft bounces (this one included)
    within ``conf.soft_bounce_window_days()``. Only an active contact changes status: an
    unsubscribed or complained one is already suppressed. The contact row is locked so
    two bounces arriving together count correctly.
    """
    severity = report.severity or Event.Severity.HARD
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=message.contact_id)
        event = _single_event(
            Event.Kind.BOUNCE,
            message,
            severity=severity,
            status_code=report.status[:16],
            smtp_code=report.smtp_code,
            diagnostic=report.diagnostic,
        )
        suppress = severity == Event.Severity.HARD
        if not suppress:
            since = timezone.now() - timedelta(days=conf.soft_bounce_window_days())
            soft = Event.objects.filter(
                kind=Event.Kind.BOUNCE,
                severity=Event.Severity.SOFT,
                message__contact_id=contact.pk,
                created_at__gte=since,
            ).count()
            suppress = soft >= conf.soft_bounce_limit()
        if suppress and contact.status == Contact.Status.ACTIVE:
            contact.status = Contact.Status.BOUNCED
            contact.save(update_fields=["status", "updated_at"])
    return event


def complaint_record(message: Message, report: bounces.Report) -> Event | None:
    """Record a spam complaint about ``message``: the contact becomes ``complained`` (which
    outranks unsubscribed or bounced) and leaves every list. Idempotent per message:
    a second report of the same complaint records nothing and returns None."""
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=message.contact_id)
        if Event.objects.filter(message=message, kind=Event.Kind.COMPLAINT).exists():
            return None
        event = _single_event(
            Event.Kind.COMPLAINT,
            message,
            diagnostic=report.diagnostic or report.feedback_type,
        )
        if contact.status != Contact.Status.COMPLAINED:
            contact.status = Contact.Status.COMPLAINED
            contact.save(update_fields=["status", "updated_at"])
        _unsubscribe_all(contact)
    return event


def inbound_mail_process(
    rcpts: list[str], data: bytes, *, domain: str | None = None
) -> list[tuple[str, str]]:
    """Act on one message received at our VERP / unsubscribe addresses.

    For each envelope recipient that names one of our messages: mail to the unsubscribe
    address unsubscribes the contact; mail to the return path is parsed (tracking.bounces)
    and recorded as a bounce or complaint. Auto-replies, delivery confirmations and mail
    that cannot be understood are logged and otherwise ignored: guessing would suppress
    good addresses. Returns (recipient, outcome) pairs, outcome being what was done.
    """
    from tracking.inbound import PURPOSE_UNSUBSCRIBE, address_parse

    outcomes: list[tuple[str, str]] = []
    report: bounces.Report | None = None
    for rcpt in rcpts:
        target = address_parse(rcpt, domain)
        message = (
            Message.objects.filter(pk=target.message_id).first() if target is not None else None
        )
        if message is None:
            outcomes.append((rcpt, "unknown recipient"))
            continue
        if target.purpose == PURPOSE_UNSUBSCRIBE:
            contact_unsubscribe(message)
            outcomes.append((rcpt, "unsubscribed"))
            continue
        if report is None:
            report = bounces.parse(data)
        if report.is_complaint:
            complaint_record(message, report)
            outcomes.append((rcpt, "complaint"))
        elif report.is_bounce:
            event = bounce_record(message, report)
            outcomes.append((rcpt, f"bounce {event.severity} {event.status_code}".strip()))
        else:
            outcomes.append((rcpt, report.kind))
        logger.info("inbound mail for message %s: %s", message.pk, outcomes[-1][1])
    return outcomes


def receipt_key(source: str, identity: str) -> str:
    """The InboundReceipt key of one report: its source and a digest of what identifies
    it there (a Message-ID, an ESP's event id), so any length of id fits the column."""
    return f"{source}:{hashlib.sha256(identity.encode('utf-8', 'replace')).hexdigest()}"


def receipt_claim(key: str) -> bool:
    """Record that the report ``key`` is being acted on; False when it already was.

    Call inside the transaction that records the report's events: a rollback releases
    the key, a commit makes every later delivery of the same report a no-op. A second
    writer inserting the same key waits for the first and then gets False.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("receipt_claim must run inside the transaction of its events")
    _receipt, created = InboundReceipt.objects.get_or_create(key=key)
    return created


def domain_stats_refresh(campaign: Campaign) -> None:
    """Count the campaign's recipients per domain once (one GROUP BY over its messages)
    and store them beside the engagement counters the event writers keep."""
    from django.db.models.functions import Lower, StrIndex, Substr

    counts = (
        Message.objects.filter(campaign=campaign)
        .annotate(domain=Lower(Substr("email", StrIndex("email", models.Value("@")) + 1)))
        .values("domain")
        .annotate(n=models.Count("id"))
    )
    now = timezone.now()
    for row in counts:
        updated = DomainStat.objects.filter(campaign=campaign, domain=row["domain"]).update(
            recipients=row["n"], counted_at=now
        )
        if not updated:
            try:
                with transaction.atomic():
                    DomainStat.objects.create(
                        campaign=campaign,
                        domain=row["domain"],
                        recipients=row["n"],
                        counted_at=now,
                    )
            except IntegrityError:
                DomainStat.objects.filter(campaign=campaign, domain=row["domain"]).update(
                    recipients=row["n"], counted_at=now
                )


def message_stats_refresh(campaigns: Iterable[Campaign], *, now: datetime | None = None) -> None:
    """Count the messages (recipients, sent, failed) of those campaigns whose stored counts
    are stale (selectors.message_stats_stale) again, in one grouped query, and store them.

    Two viewers recounting at once both write what they counted: the later write wins."""
    from tracking import selectors
    from tracking.models import CampaignMessageStat

    now = now or timezone.now()
    campaigns = {c.pk: c for c in campaigns}
    stored = {s.campaign_id: s for s in CampaignMessageStat.objects.filter(pk__in=list(campaigns))}
    stale = [
        pk
        for pk, campaign in campaigns.items()
        if selectors.message_stats_stale(campaign, stored.get(pk), now=now)
    ]
    if not stale:
        return
    CampaignMessageStat.objects.bulk_create(
        [
            CampaignMessageStat(campaign_id=pk, counted_at=now, **counts)
            for pk, counts in selectors.campaign_message_counts(stale).items()
        ],
        update_conflicts=True,
        unique_fields=["campaign"],
        update_fields=["recipients", "sent", "failed", "counted_at"],
    )


def report_aggregates_rebuild(campaign_id: int, *, chunk: int = 5000) -> int:
    """Recompute a campaign's report counters from its events (after an upgrade that
    added them, or to repair them); returns the number of events folded in. Locks
    nothing beyond the rows it rewrites; run it while no events arrive for the campaign."""
    from tracking.models import CampaignHourly, ClientStat, LinkStat, MessageActivity

    with transaction.atomic():
        for model in (CampaignHourly, ClientStat, LinkStat, MessageActivity):
            model.objects.filter(campaign_id=campaign_id).delete()
        DomainStat.objects.filter(campaign_id=campaign_id).update(
            opened=0, clicked=0, bounced=0, complained=0
        )
        done = 0
        last_id = 0
        while True:
            events = list(
                Event.objects.filter(campaign_id=campaign_id, id__gt=last_id).order_by("id")[:chunk]
            )
            if not events:
                return done
            messages = Message.objects.in_bulk({e.message_id for e in events})
            events.sort(key=lambda e: (e.created_at, e.id))
            aggregates.aggregates_apply(events, aggregates.activities_for(messages))
            done += len(events)
            last_id = max(e.id for e in events)
