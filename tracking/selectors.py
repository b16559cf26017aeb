"""Reads for reports: what happened to a campaign's messages."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from campaigns.models import Campaign, CampaignLink, Message
from tracking.models import Event


def campaign_stats(campaign: Campaign) -> dict[str, Any]:
    """The campaign's headline numbers, each from one aggregate query over its rows."""
    messages = Message.objects.filter(campaign=campaign).aggregate(
        recipients=Count("id"),
        sent=Count("id", filter=Q(status=Message.Status.SENT)),
        failed=Count("id", filter=Q(status=Message.Status.FAILED)),
    )
    events = Event.objects.filter(campaign=campaign).aggregate(
        opens_total=Count("id", filter=Q(kind=Event.Kind.OPEN)),
        opens_unique=Count("message", filter=Q(kind=Event.Kind.OPEN), distinct=True),
        clicks_total=Count("id", filter=Q(kind=Event.Kind.CLICK)),
        clicks_unique=Count("message", filter=Q(kind=Event.Kind.CLICK), distinct=True),
        unsubscribes=Count("message", filter=Q(kind=Event.Kind.UNSUBSCRIBE), distinct=True),
    )
    return {**messages, **events}


def campaign_link_stats(campaign: Campaign) -> list[dict[str, Any]]:
    """Clicks per tracked link, total and unique (by message), in link order."""
    rows = (
        CampaignLink.objects.filter(campaign=campaign)
        .annotate(
            clicks_total=Count("event", filter=Q(event__kind=Event.Kind.CLICK)),
            clicks_unique=Count(
                "event__message", filter=Q(event__kind=Event.Kind.CLICK), distinct=True
            ),
        )
        .order_by("index")
    )
    return [
        {
            "index": r.index,
            "url": r.url,
            "clicks_total": r.clicks_total,
            "clicks_unique": r.clicks_unique,
        }
        for r in rows
    ]


def campaigns_overview():
    """Campaigns that have been sent or are sending, with their counters for the index."""
    return (
        Campaign.objects.exclude(status=Campaign.Status.DRAFT)
        .annotate(
            sent_count=Count(
                "messages", filter=Q(messages__status=Message.Status.SENT), distinct=True
            ),
            opens_unique=Count(
                "events__message", filter=Q(events__kind=Event.Kind.OPEN), distinct=True
            ),
            clicks_unique=Count(
                "events__message", filter=Q(events__kind=Event.Kind.CLICK), distinct=True
            ),
        )
        .order_by("-started_at", "-id")
    )
