"""Keep the report counters (tracking.models: MessageActivity, CampaignHourly, LinkStat,
DomainStat, ClientStat) in step with the events, in the same transaction as the events
themselves. Called by the services that write events; never by views.

Each event changes its message's MessageActivity; whether it is the message's first open
or click (human, or any) decides which unique counters move. Counters are bumped with
``F() + n`` so concurrent writers add up; the activity rows are locked while they change.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from tracking.models import (
    CampaignHourly,
    ClientStat,
    DomainStat,
    Event,
    LinkStat,
    MessageActivity,
)
from tracking.useragents import parse_user_agent


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


def activities_for(messages: dict[int, Any]) -> dict[int, MessageActivity]:
    """Lock and return the activity rows of these messages, creating the missing ones
    (unsaved). ``messages`` maps id → Message (with campaign_id and email)."""
    existing = {
        a.message_id: a
        for a in MessageActivity.objects.select_for_update().filter(message_id__in=list(messages))
    }
    for message_id, message in messages.items():
        if message_id not in existing:
            activity = MessageActivity(
                message_id=message_id,
                campaign_id=message.campaign_id,
                domain=domain_of(message.email),
            )
            activity._state.adding = True
            existing[message_id] = activity
    return existing


def aggregates_apply(events: list[Event], activities: dict[int, MessageActivity]) -> None:
    """Fold ``events`` (saved or not, in time order) into ``activities`` and the counters,
    and save both. Call inside a transaction, with ``activities`` from activities_for()."""
    hourly: dict[tuple[int, datetime], Counter] = defaultdict(Counter)
    links: dict[tuple[int, int], Counter] = defaultdict(Counter)
    domains: dict[tuple[int, str], Counter] = defaultdict(Counter)
    clients: Counter = Counter()
    seen_links = _links_clicked_before(events)
    changed: set[int] = set()
    for event in events:
        activity = activities[event.message_id]
        at = event.created_at
        bucket = hourly[(event.campaign_id, hour_of(at))]
        domain_key = (event.campaign_id, activity.domain)
        changed.add(event.message_id)
        if event.kind == Event.Kind.OPEN:
            bucket["opens_machine" if event.is_machine else "opens"] += 1
            if activity.opened_any_at is None:
                activity.opened_any_at = at
                bucket["opens_unique_all"] += 1
            if not event.is_machine:
                activity.opens += 1
                if activity.opened_at is None:
                    activity.opened_at = at
                    bucket["opens_unique"] += 1
                    domains[domain_key]["opened"] += 1
                    activity.client, activity.device = parse_user_agent(event.user_agent)
                    clients[(event.campaign_id, activity.client, activity.device)] += 1
        elif event.kind == Event.Kind.CLICK:
            bucket["clicks_machine" if event.is_machine else "clicks"] += 1
            if activity.clicked_any_at is None:
                activity.clicked_any_at = at
                bucket["clicks_unique_all"] += 1
            link_key = (event.link_id, event.campaign_id)
            if event.is_machine:
                links[link_key]["clicks_machine"] += 1
            else:
                activity.clicks += 1
                links[link_key]["clicks"] += 1
                seen = seen_links.setdefault(event.message_id, set())
                if event.link_id not in seen:
                    seen.add(event.link_id)
                    links[link_key]["clicks_unique"] += 1
                if activity.clicked_at is None:
                    activity.clicked_at = at
                    bucket["clicks_unique"] += 1
                    domains[domain_key]["clicked"] += 1
        elif event.kind == Event.Kind.UNSUBSCRIBE:
            if activity.unsubscribed_at is None:
                activity.unsubscribed_at = at
                bucket["unsubscribes"] += 1
        elif event.kind == Event.Kind.COMPLAINT:
            if activity.complained_at is None:
                activity.complained_at = at
                bucket["complaints"] += 1
                domains[domain_key]["complained"] += 1
        elif event.kind == Event.Kind.BOUNCE:
            first = activity.bounced_at is None
            hard_now = event.severity == Event.Severity.HARD and activity.bounce_severity != "hard"
            if first or hard_now:
                # A message counts once: as hard if it ever bounced hard, else soft. The
                # soft count moves out of the hour it was counted in, so no row goes below 0.
                if not first:
                    hourly[(event.campaign_id, hour_of(activity.bounced_at))]["bounces_soft"] -= 1
                else:
                    domains[domain_key]["bounced"] += 1
                    activity.bounced_at = at
                activity.bounce_severity = event.severity
                bucket["bounces_hard" if event.severity == "hard" else "bounces_soft"] += 1
    _save_activities([activities[m] for m in changed])
    for (campaign_id, hour), counts in hourly.items():
        _bump(CampaignHourly, {"campaign_id": campaign_id, "hour": hour}, counts)
    for (link_id, campaign_id), counts in links.items():
        if link_id is not None:
            _bump(LinkStat, {"link_id": link_id}, counts, {"campaign_id": campaign_id})
    for (campaign_id, domain), counts in domains.items():
        _bump(DomainStat, {"campaign_id": campaign_id, "domain": domain}, counts)
    for (campaign_id, client, device), count in clients.items():
        _bump(
            ClientStat,
            {"campaign_id": campaign_id, "client": client, "device": device},
            Counter(opened=count),
        )


def _links_clicked_before(events: list[Event]) -> dict[int, set[int]]:
    """Links each message's people clicked before these events, in one query.

    The events were just inserted, so earlier clicks are those with a smaller id: ids
    grow, and a concurrent writer's clicks on the same messages wait for the activity
    rows this transaction holds."""
    clicked = {e.message_id for e in events if e.kind == Event.Kind.CLICK and not e.is_machine}
    if not clicked:
        return {}
    earlier = Event.objects.filter(
        message_id__in=clicked, kind=Event.Kind.CLICK, is_machine=False, link__isnull=False
    )
    ids = [e.pk for e in events if e.pk is not None]
    if ids:
        earlier = earlier.filter(pk__lt=min(ids))
    seen: dict[int, set[int]] = {}
    for message_id, link_id in earlier.values_list("message_id", "link_id").distinct():
        seen.setdefault(message_id, set()).add(link_id)
    return seen


def _save_activities(rows: list[MessageActivity]) -> None:
    new = [r for r in rows if r._state.adding]
    old = [r for r in rows if not r._state.adding]
    if new:
        MessageActivity.objects.bulk_create(new)
        for row in new:
            row._state.adding = False
    if old:
        fields = [
            f.name
            for f in MessageActivity._meta.concrete_fields
            if not f.primary_key and f.name not in ("campaign", "domain")
        ]
        for start in range(0, len(old), _UPDATE_CHUNK):
            _update_rows(MessageActivity, old[start : start + _UPDATE_CHUNK], fields)


# Rows per UPDATE statement: 13 values a row stays far below every backend's parameter cap.
_UPDATE_CHUNK = 1000


def _update_rows(model, rows: list[Any], fields: list[str]) -> None:
    """Write ``fields`` of ``rows`` (saved instances) in one UPDATE … FROM a list of rows.

    Django's bulk_update builds a CASE WHEN per field per row: for a writer batch of a few
    thousand activities that is seconds of Python compiling expressions, which under a
    click storm starves the web workers of CPU. PostgreSQL updates from unnested arrays and
    SQLite (3.33+) from a VALUES list: a join for the database, next to nothing for Python.
    """
    vendor = connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        model.objects.bulk_update(rows, fields)
        return
    meta = model._meta
    pk = meta.pk
    columns = [pk, *(meta.get_field(name) for name in fields)]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    prepared = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for row in rows]
        for field in columns
    ]
    if vendor == "postgresql":
        # One array per column, unnested: a handful of parameters whatever the batch size,
        # typed by their casts (NULLs included), so the driver has almost nothing to bind.
        names = [quote(field.column) for field in columns]
        arrays = ", ".join(f"CAST(%s AS {field.cast_db_type(connection)}[])" for field in columns)
        source = f"unnest({arrays}) AS v({', '.join(names)})"
        params: list[Any] = prepared
    else:
        names = [f"column{i}" for i in range(1, len(columns) + 1)]
        cell = "(" + ", ".join("%s" for _ in columns) + ")"
        source = f"(VALUES {', '.join(cell for _ in rows)}) AS v"
        params = [value for values in zip(*prepared, strict=True) for value in values]
    assignments = ", ".join(
        f"{quote(field.column)} = v.{name}"
        for field, name in zip(columns[1:], names[1:], strict=True)
    )
    sql = (
        f"UPDATE {table} SET {assignments} FROM {source} "  # noqa: S608
        f"WHERE {table}.{quote(pk.column)} = v.{names[0]}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _bump(model, key: dict[str, Any], counts: Counter, extra: dict | None = None) -> None:
    """Add ``counts`` to the row named by ``key``, creating it when missing."""
    counts = Counter({k: v for k, v in counts.items() if v})
    if not counts:
        return
    updates = {field: F(field) + value for field, value in counts.items()}
    if model.objects.filter(**key).update(**updates):
        return
    try:
        with transaction.atomic():  # a savepoint: a concurrent creator may win the race
            model.objects.create(**key, **(extra or {}), **counts)
    except IntegrityError:
        model.objects.filter(**key).update(**updates)
