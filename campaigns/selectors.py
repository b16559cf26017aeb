"""Reads about campaigns and their recipients."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from campaigns.models import Campaign, Message
from contacts.models import Contact, Subscription


def campaign_audience(campaign: Campaign) -> QuerySet[Contact]:
    """Active contacts subscribed to any of the campaign's lists; suppressed ones excluded."""
    list_ids = list(campaign.lists.values_list("id", flat=True))
    return Contact.objects.filter(
        status=Contact.Status.ACTIVE,
        id__in=Subscription.objects.filter(
            mailing_list_id__in=list_ids, status=Subscription.Status.SUBSCRIBED
        ).values("contact_id"),
    )


def campaign_audience_count(campaign: Campaign) -> int:
    if campaign.status != Campaign.Status.DRAFT:
        return campaign.recipients_count
    return campaign_audience(campaign).count()


def campaign_progress(campaign: Campaign) -> dict[str, int | str]:
    """Counts by message status, for the live progress bar."""
    counts = dict(
        Message.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in ("sent", "failed", "skipped"))
    return {
        "status": campaign.status,
        "total": total,
        "done": done,
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "deferred": counts.get("deferred", 0),
        "queued": counts.get("queued", 0) + counts.get("sending", 0),
        "skipped": counts.get("skipped", 0),
        "percent": round(100 * done / total) if total else 0,
    }
