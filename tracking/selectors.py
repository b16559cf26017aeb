"""Reads for reports: what happened to a campaign's messages.

Everything here reads the counters that tracking.aggregates keeps while events are
written (a campaign's totals are a sum over its hourly rows), so a report costs the same
for a hundred recipients as for a million. Only "recipients", "sent" and "failed" come
from the messages themselves, counted once in a while (services.message_stats_refresh)
and stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.models import Campaign, CampaignLink, Message
from tracking.models import (
    CampaignHourly,
    CampaignMessageStat,
    ClientStat,
    DomainStat,
    Event,
    MessageActivity,
)

HOURLY_FIELDS = (
    "opens",
    "opens_unique",
    "opens_machine",
    "opens_unique_all",
    "clicks",
    "clicks_unique",
    "clicks_machine",
    "clicks_unique_all",
    "unsubscribes",
    "complaints",
    "bounces_hard",
    "bounces_soft",
)

# What the recipients list can be filtered by: name → MessageActivity condition.
RECIPIENT_FILTERS = {
    "opened": Q(opened_at__isnull=False),
    "clicked": Q(clicked_at__isnull=False),
    "unsubscribed": Q(unsubscribed_at__isnull=False),
    "bounced": Q(bounced_at__isnull=False),
    "complained": Q(complained_at__isnull=False),
    "machine": Q(opened_any_at__isnull=False, opened_at__isnull=True)
    | Q(clicked_any_at__isnull=False, clicked_at__isnull=True),
}


# Delivered messages (sent, never bounced) that no person opened or clicked: the people to
# send again to. Most of them have no activity row, so this list reads the messages
# (campaign_not_opened), not MessageActivity.
NOT_OPENED = "not_opened"
# Every list the report offers ("" is anyone with any event).
RECIPIENT_LISTS = ("", *RECIPIENT_FILTERS, NOT_OPENED)


# The segment conditions (contacts.segments, ANDed, each with the campaign as its value and
# "campaign" as its operator unless it says otherwise) that pick the same people as each
# list, so a list can be saved as a live segment. A list missing here has no "Save as
# segment"; tests check that none is missing.
RECIPIENT_SEGMENT_CONDITIONS: dict[str, list[dict[str, Any]]] = {
    "": [{"field": "activity"}],
    "opened": [{"field": "opened"}],
    "clicked": [{"field": "clicked"}],
    "unsubscribed": [{"field": "unsubscribed"}],
    "bounced": [{"field": "bounced"}],
    "complained": [{"field": "complained"}],
    "machine": [{"field": "machine_only"}],
    NOT_OPENED: [
        {"field": "sent"},
        {"field": "opened", "op": "not_campaign"},
        {"field": "clicked", "op": "not_campaign"},
        {"field": "bounced", "op": "not_campaign"},
    ],
}


def campaign_recipients_rules(campaign: Campaign, what: str) -> dict[str, Any] | None:
    """Segment rules matching the contacts of the report's list ``what``, or None when
    that list cannot be expressed as a segment. The rules name the campaign, so the
    segment follows later opens, clicks and bounces."""
    conditions = RECIPIENT_SEGMENT_CONDITIONS.get(what)
    if conditions is None:
        return None
    return {
        "op": "and",
        "rules": [{"op": "campaign", **c, "value": campaign.pk} for c in conditions],
    }


def _hourly_totals(campaign_id: int) -> dict[str, int]:
    sums = CampaignHourly.objects.filter(campaign_id=campaign_id).aggregate(
        **{name: Coalesce(Sum(name), 0) for name in HOURLY_FIELDS}
    )
    return {name: int(value) for name, value in sums.items()}


# While a campaign sends, its stored message counts are used for at most this long; a
# finished campaign's are counted once more after it finished, then again at most this
# often (a deleted contact takes its messages with it).
MESSAGE_RECOUNT_SENDING = timedelta(seconds=30)
MESSAGE_RECOUNT_FINISHED = timedelta(hours=1)


def campaign_message_counts(campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Count the messages of these campaigns: recipients, sent and failed, per campaign.

    One GROUP BY over the (campaign, status) index, read without the table (an index-only
    scan): tens of milliseconds per hundred thousand messages, hence stored."""
    counts: dict[int, dict[str, int]] = {
        pk: {"recipients": 0, "sent": 0, "failed": 0} for pk in campaign_ids
    }
    rows = (
        Message.objects.filter(campaign_id__in=list(counts))
        .values_list("campaign_id", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    for campaign_id, status, n in rows:
        row = counts[campaign_id]
        row["recipients"] += n
        if status == Message.Status.SENT:
            row["sent"] = n
        elif status == Message.Status.FAILED:
            row["failed"] = n
    return counts


def message_stats_stale(campaign: Campaign, stat: CampaignMessageStat | None, *, now) -> bool:
    """Whether ``stat`` (the campaign's stored message counts, or None) must be counted
    again before it is shown."""
    if stat is None:
        return True
    if campaign.status in (Campaign.Status.SENDING, Campaign.Status.PAUSED):
        return now - stat.counted_at > MESSAGE_RECOUNT_SENDING
    if campaign.finished_at is not None and stat.counted_at <= campaign.finished_at:
        return True
    return now - stat.counted_at > MESSAGE_RECOUNT_FINISHED


def _stored_message_counts(campaigns: Iterable[Campaign]) -> dict[int, dict[str, int]]:
    """The stored message counts of those campaigns that have fresh ones."""
    campaigns = {c.pk: c for c in campaigns}
    now = timezone.now()
    return {
        stat.campaign_id: {"recipients": stat.recipients, "sent": stat.sent, "failed": stat.failed}
        for stat in CampaignMessageStat.objects.filter(campaign_id__in=list(campaigns))
        if not message_stats_stale(campaigns[stat.campaign_id], stat, now=now)
    }


def message_counts(campaigns: Iterable[Campaign]) -> dict[int, dict[str, int]]:
    """Recipients, sent and failed per campaign: stored counts where they are fresh
    (``services.message_stats_refresh`` keeps them), counted for the others."""
    campaigns = list(campaigns)
    counts = _stored_message_counts(campaigns)
    missing = [c.pk for c in campaigns if c.pk not in counts]
    if missing:
        counts.update(campaign_message_counts(missing))
    return counts


def campaign_stats(campaign: Campaign) -> dict[str, Any]:
    """The campaign's headline numbers.

    ``opens_*`` and ``clicks_*`` count people only; the ``*_all`` keys include machine
    opens and clicks (Apple Mail Privacy Protection, scanners, bots). Unique counts are
    per message. ``delivered`` is sent minus the messages that bounced.
    """
    messages = message_counts([campaign])[campaign.pk]
    h = _hourly_totals(campaign.pk)
    bounced = h["bounces_hard"] + h["bounces_soft"]
    return {
        **messages,
        "delivered": max(0, messages["sent"] - bounced),
        "opens_total": h["opens"],
        "opens_unique": h["opens_unique"],
        "clicks_total": h["clicks"],
        "clicks_unique": h["clicks_unique"],
        "opens_total_all": h["opens"] + h["opens_machine"],
        "opens_unique_all": h["opens_unique_all"],
        "clicks_total_all": h["clicks"] + h["clicks_machine"],
        "clicks_unique_all": h["clicks_unique_all"],
        "unsubscribes": h["unsubscribes"],
        "bounces_hard": h["bounces_hard"],
        "bounces_soft": h["bounces_soft"],
        "complaints": h["complaints"],
    }


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def campaign_funnel(stats: dict[str, Any]) -> dict[str, Any]:
    """Rates for the funnel: opens and clicks over delivered messages, click-to-open over
    openers; the same with machines included, to show where they differ."""
    delivered = stats["delivered"]
    return {
        "open_rate": _rate(stats["opens_unique"], delivered),
        "click_rate": _rate(stats["clicks_unique"], delivered),
        "click_to_open": _rate(stats["clicks_unique"], stats["opens_unique"]),
        "open_rate_all": _rate(stats["opens_unique_all"], delivered),
        "click_rate_all": _rate(stats["clicks_unique_all"], delivered),
        "bounce_rate": _rate(stats["bounces_hard"] + stats["bounces_soft"], stats["sent"]),
        "unsubscribe_rate": _rate(stats["unsubscribes"], delivered),
        "complaint_rate": _rate(stats["complaints"], delivered),
        "delivery_rate": _rate(delivered, stats["sent"]),
    }


def campaign_link_rows(campaign: Campaign) -> list[dict[str, Any]]:
    """Clicks per tracked link, in link order, from the precomputed link counters: by people
    (total and unique by message) and by machines."""
    rows = (
        CampaignLink.objects.filter(campaign=campaign)
        .annotate(
            clicks_total=Coalesce(F("stat__clicks"), 0),
            clicks_unique=Coalesce(F("stat__clicks_unique"), 0),
            clicks_machine=Coalesce(F("stat__clicks_machine"), 0),
        )
        .order_by("index")
    )
    return [
        {
            "index": r.index,
            "url": r.url,
            "clicks_total": r.clicks_total,
            "clicks_unique": r.clicks_unique,
            "clicks_machine": r.clicks_machine,
        }
        for r in rows
    ]


def campaign_link_stats(campaign: Campaign) -> list[dict[str, Any]]:
    """Clicks per link by people only: the API's stable shape (no machine column)."""
    return [
        {key: row[key] for key in ("index", "url", "clicks_total", "clicks_unique")}
        for row in campaign_link_rows(campaign)
    ]


def campaign_timeline(campaign: Campaign, *, max_hours: int = 24 * 14) -> dict[str, list]:
    """Opens and clicks per hour since sending started (hour 0 is the start's hour), people
    and machines apart, every hour present so a chart's axis is even."""
    rows = list(CampaignHourly.objects.filter(campaign=campaign).order_by("hour"))
    start = campaign.started_at or (rows[0].hour if rows else None)
    if start is None:
        return {"hours": [], "opens": [], "clicks": [], "opens_machine": [], "clicks_machine": []}
    start = start.replace(minute=0, second=0, microsecond=0)
    by_hour: dict[int, CampaignHourly] = {}
    for row in rows:
        offset = int((row.hour - start).total_seconds() // 3600)
        if 0 <= offset < max_hours:
            by_hour[offset] = row
    last = max(by_hour) if by_hour else 0
    hours = list(range(max(last + 1, 24)))
    pick = lambda attr: [getattr(by_hour[h], attr) if h in by_hour else 0 for h in hours]  # noqa: E731
    return {
        "hours": hours,
        "opens": pick("opens"),
        "clicks": pick("clicks"),
        "opens_machine": pick("opens_machine"),
        "clicks_machine": pick("clicks_machine"),
    }


def campaign_domains(campaign: Campaign, *, limit: int = 20) -> list[DomainStat]:
    """The recipient domains with the most recipients (or engagement), with rates."""
    rows = list(
        DomainStat.objects.filter(campaign=campaign).order_by("-recipients", "-opened", "domain")[
            :limit
        ]
    )
    for row in rows:
        row.open_rate = _rate(row.opened, row.recipients)
        row.click_rate = _rate(row.clicked, row.recipients)
    return rows


def campaign_clients(campaign: Campaign) -> dict[str, list[dict[str, Any]]]:
    """People who opened, by mail client and by device."""
    rows = ClientStat.objects.filter(campaign=campaign)
    clients = rows.values("client").annotate(opened=Sum("opened")).order_by("-opened", "client")
    devices = rows.values("device").annotate(opened=Sum("opened")).order_by("-opened", "device")
    return {"clients": list(clients), "devices": list(devices)}


def campaign_recipients(campaign: Campaign, what: str) -> QuerySet[MessageActivity]:
    """Recipients who did ``what`` (a RECIPIENT_FILTERS key), newest first; unknown
    filters give every recipient with any activity."""
    rows = MessageActivity.objects.filter(campaign=campaign).select_related("message")
    condition = RECIPIENT_FILTERS.get(what)
    if condition is not None:
        rows = rows.filter(condition)
    return rows.order_by("-message_id")


@dataclass
class RecipientsPage:
    """One page of a recipients list, newest first. ``newer`` and ``older`` are the cursors
    to page on from (``?after=`` and ``?before=``: message ids, or contact ids for the
    "Not opened" list), None where the list ends."""

    rows: list[MessageActivity]
    newer: int | None
    older: int | None


def campaign_recipients_page(
    campaign: Campaign,
    what: str,
    *,
    before: int | None = None,
    after: int | None = None,
    size: int = 50,
) -> RecipientsPage:
    """The page of the report's list ``what`` just older than cursor ``before``, or just
    newer than cursor ``after``, or the newest page (see RecipientsPage).

    Keyset pages: each is one range of the (campaign, message) indexes, so the thousandth
    page of a million costs what the first does, and no page counts the whole list (an
    offset page did both: a COUNT(*) and a scan of every row before it). A cursor past
    either end gives the newest page."""
    if what == NOT_OPENED:
        # Loaded in a second query by id, as below; a message without one gets a blank.
        messages = campaign_not_opened(campaign).prefetch_related("activity")
        rows, newer, older = _keyset(messages, "contact_id", before, after, size)
        return RecipientsPage(rows=[_activity_of(m) for m in rows], newer=newer, older=older)
    # The page's messages in a second query by id: joined, PostgreSQL merges the page with
    # the message table walked from its first row, which deep in a big campaign is most
    # of the table.
    activities = campaign_recipients(campaign, what).select_related(None)
    rows, newer, older = _keyset(
        activities.prefetch_related("message"), "message_id", before, after, size
    )
    return RecipientsPage(rows=rows, newer=newer, older=older)


def _keyset(
    rows_qs: QuerySet, key: str, before: int | None, after: int | None, size: int
) -> tuple[list, int | None, int | None]:
    """(rows, newer cursor, older cursor) of one page of ``rows_qs`` (ordered by -key)."""
    rows: list = []
    if after is not None:
        rows = list(rows_qs.filter(**{f"{key}__gt": after}).order_by(key)[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
    elif before is not None:
        rows = list(rows_qs.filter(**{f"{key}__lt": before})[: size + 1])
        more_older = len(rows) > size
        rows = rows[:size]
    if not rows:
        after = before = None
        rows = list(rows_qs[: size + 1])
        more_older = len(rows) > size
        rows = rows[:size]
    if not rows:
        return [], None, None
    first, last = getattr(rows[0], key), getattr(rows[-1], key)
    if after is not None:
        newer = first if more_newer else None
        older = last if _any_beyond(rows_qs, key, last, older=True) else None
    else:
        older = last if more_older else None
        newer = (
            first if before is not None and _any_beyond(rows_qs, key, first, older=False) else None
        )
    return rows, newer, older


def _any_beyond(rows_qs: QuerySet, key: str, cursor: int, *, older: bool) -> bool:
    """Whether ``rows_qs`` has a row older (or newer) than ``cursor``.

    Asked as "the next row in key order" rather than EXISTS: without the order, PostgreSQL
    may merge the messages with the activity table walked from the campaign's first row,
    hundreds of milliseconds deep in a million."""
    beyond = rows_qs.filter(**{f"{key}__lt" if older else f"{key}__gt": cursor})
    ordered = beyond.order_by(f"-{key}" if older else key).values_list(key, flat=True)
    return bool(list(ordered[:1]))


def campaign_not_opened(campaign: Campaign) -> QuerySet[Message]:
    """The campaign's delivered messages (sent, never bounced) that no person opened or
    clicked, newest contacts first: RECIPIENT_SEGMENT_CONDITIONS[NOT_OPENED] as messages.
    A click counts as reading, since it is one whose images were blocked.

    Ordered (and paged) by contact, not message: the (campaign, contact) unique index
    ranges over this campaign alone, where the message id's primary key, walked from the
    newest message, would step over every later campaign's messages first."""
    read_or_bounced = MessageActivity.objects.filter(message_id=OuterRef("pk")).filter(
        Q(opened_at__isnull=False) | Q(clicked_at__isnull=False) | Q(bounced_at__isnull=False)
    )
    return (
        Message.objects.filter(campaign=campaign, status=Message.Status.SENT)
        .filter(~Exists(read_or_bounced))
        .order_by("-contact_id")
    )


def _activity_of(message: Message) -> MessageActivity:
    """The message's activity row (prefetched), or a blank one: a list row either way."""
    try:
        activity = message.activity
    except MessageActivity.DoesNotExist:
        activity = MessageActivity(message_id=message.pk, campaign_id=message.campaign_id)
    activity.message = message
    return activity


def campaign_recipients_rows(campaign: Campaign, what: str, *, chunk_size: int = 2000):
    """Every row of the report's list ``what``, newest first, streamed (for the export)."""
    if what == NOT_OPENED:
        messages = campaign_not_opened(campaign).prefetch_related("activity")
        return (_activity_of(m) for m in messages.iterator(chunk_size=chunk_size))
    return campaign_recipients(campaign, what).iterator(chunk_size=chunk_size)


def campaign_recipients_count(campaign: Campaign, what: str) -> int | None:
    """How many recipients ``campaign_recipients(campaign, what)`` lists, from the
    counters (each counts a message once, as the list does); None for the lists that
    have no counter of their own (any activity, machine only)."""
    fields = {
        "opened": ["opens_unique"],
        "clicked": ["clicks_unique"],
        "unsubscribed": ["unsubscribes"],
        "bounced": ["bounces_hard", "bounces_soft"],
        "complained": ["complaints"],
    }.get(what)
    if fields is None:
        return None
    totals = _hourly_totals(campaign.pk)
    return sum(totals[name] for name in fields)


def bounce_events(
    *, campaign_id: int | None = None, contact_id: int | None = None, limit: int = 50
) -> list[Event]:
    """The latest bounces and complaints of a campaign or a contact, newest first, with
    what the receiving side said (code and diagnostic)."""
    events = Event.objects.filter(kind__in=[Event.Kind.BOUNCE, Event.Kind.COMPLAINT])
    if campaign_id is not None:
        events = events.filter(campaign_id=campaign_id)
    if contact_id is not None:
        events = events.filter(message__contact_id=contact_id)
    return list(events.select_related("message", "campaign").order_by("-created_at", "-id")[:limit])


def message_bounces(message_ids: Iterable[int]) -> dict[int, Event]:
    """Per message, the bounce the report goes by (its latest hard bounce, else its latest
    soft one), with the receiving side's code and diagnostic. One query, for a page of rows."""
    events = Event.objects.filter(kind=Event.Kind.BOUNCE, message_id__in=list(message_ids))
    chosen: dict[int, Event] = {}
    # "hard" sorts before "soft": the first event of each message is the one to show.
    for event in events.order_by("message_id", "severity", "-created_at", "-id"):
        chosen.setdefault(event.message_id, event)
    return chosen


def campaigns_overview() -> QuerySet[Campaign]:
    """Campaigns that have been sent or are sending, newest first, for the index. Their
    counters are added to the page shown by campaigns_overview_counts."""
    return Campaign.objects.exclude(status=Campaign.Status.DRAFT).order_by("-started_at", "-id")


def campaigns_overview_counts(campaigns: Iterable[Campaign]) -> list[Campaign]:
    """Set ``sent_count``, ``opens_unique`` and ``clicks_unique`` on a page of campaigns,
    from their stored counters (message_counts counts the campaigns without fresh ones).

    Annotating the whole overview instead joined every message of every campaign and ran
    the counter subqueries once per message row: minutes for a campaign of a million."""
    campaigns = list(campaigns)
    ids = [c.pk for c in campaigns]
    sent = {pk: row["sent"] for pk, row in message_counts(campaigns).items()}
    sums = {
        row["campaign_id"]: row
        for row in CampaignHourly.objects.filter(campaign_id__in=ids)
        .values("campaign_id")
        .annotate(opens=Sum("opens_unique"), clicks=Sum("clicks_unique"))
    }
    for campaign in campaigns:
        row = sums.get(campaign.pk, {})
        campaign.sent_count = sent.get(campaign.pk, 0)
        campaign.opens_unique = row.get("opens") or 0
        campaign.clicks_unique = row.get("clicks") or 0
    return campaigns


def dashboard_trends(*, campaigns: int = 20, since: datetime | None = None) -> dict[str, list]:
    """Open, click, bounce and unsubscribe rates of the latest sent campaigns, oldest
    first, for the dashboard's trend chart. Sent counts use the campaigns' recipient
    counts (stored at start) so no message table is scanned."""
    recent = Campaign.objects.exclude(status=Campaign.Status.DRAFT).exclude(started_at=None)
    if since is not None:
        recent = recent.filter(started_at__gte=since)
    ids = list(recent.order_by("-started_at").values_list("id", flat=True)[:campaigns])
    sums = {
        row["campaign_id"]: row
        for row in CampaignHourly.objects.filter(campaign_id__in=ids)
        .values("campaign_id")
        .annotate(
            o=Sum("opens_unique"),
            c=Sum("clicks_unique"),
            u=Sum("unsubscribes"),
            b=Sum(F("bounces_hard") + F("bounces_soft")),
        )
    }
    out: dict[str, list] = {
        "labels": [],
        "open_rate": [],
        "click_rate": [],
        "bounce_rate": [],
        "unsubscribe_rate": [],
    }
    for c in Campaign.objects.filter(id__in=ids).order_by("started_at"):
        row = sums.get(c.pk, {})
        whole = c.recipients_count
        out["labels"].append(f"{c.started_at:%Y-%m-%d} {c.name}"[:40])
        out["open_rate"].append(_rate(row.get("o") or 0, whole))
        out["click_rate"].append(_rate(row.get("c") or 0, whole))
        out["bounce_rate"].append(_rate(row.get("b") or 0, whole))
        out["unsubscribe_rate"].append(_rate(row.get("u") or 0, whole))
    return out


def domain_stats_stale(campaign: Campaign, *, now: datetime, max_age: timedelta) -> bool:
    """Whether the recipients-per-domain counts need counting (again)."""
    counted = (
        DomainStat.objects.filter(campaign=campaign, counted_at__isnull=False)
        .order_by("counted_at")
        .values_list("counted_at", flat=True)
        .first()
    )
    if counted is None:
        return True
    if campaign.status == Campaign.Status.SENDING:
        return now - counted > max_age
    return campaign.finished_at is not None and counted < campaign.finished_at
