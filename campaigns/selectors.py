"""Reads about campaigns and their recipients."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from campaigns import rendering
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


PREVIEW_CONTACTS_LIMIT = 50
PREVIEW_SAMPLE_EMAIL = "preview@example.com"


def campaign_preview_contacts(
    campaign: Campaign, query: str = "", limit: int = PREVIEW_CONTACTS_LIMIT
) -> list[Contact]:
    """The first ``limit`` recipients (by id) whose address contains ``query``."""
    audience = campaign_audience(campaign)
    if query:
        audience = audience.filter(email__icontains=query)
    return list(audience.order_by("id")[:limit])


def campaign_preview_contact(campaign: Campaign, contact_id: object) -> Contact | None:
    """The recipient with this id, or None when the id is malformed or not in the audience.

    Takes the raw query-string value so callers need not guard against junk themselves.
    """
    try:
        pk = int(str(contact_id))
    except (TypeError, ValueError):
        return None
    return campaign_audience(campaign).filter(pk=pk).first()


def campaign_preview(campaign: Campaign, contact: Contact | None) -> rendering.RenderedMessage:
    """Render the campaign as ``contact`` would get it, untracked: links go to their targets.

    Without a contact the first recipient stands in, or a blank one when there is none.
    Raises ``rendering.TemplateError`` when the content does not compile.
    """
    if contact is None:
        contact = campaign_audience(campaign).order_by("id").first()
    context = (
        rendering.contact_context(
            contact.email, contact.first_name, contact.last_name, contact.attributes
        )
        if contact is not None
        else rendering.contact_context(PREVIEW_SAMPLE_EMAIL)
    )
    compiled = rendering.compile_campaign(campaign, track=False)
    return rendering.render_message(compiled, context, message_id=None)
