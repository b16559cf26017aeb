"""Reads about campaigns and their recipients."""

from __future__ import annotations

from django.db.models import Count, F, Q, QuerySet

from campaigns import rendering
from campaigns.models import Campaign, Message
from contacts.models import Contact, Subscription
from contacts.selectors import contact_sendable_q


def campaign_audience(campaign: Campaign) -> QuerySet[Contact]:
    """Who the campaign goes to, as one query.

    Contacts subscribed to any of its lists or matching any of its segments, minus the
    subscribers of its excluded lists and the matches of its excluded segments, and never
    anyone suppressed (``contacts.selectors.contact_sendable_q``).
    """
    from contacts.segments import segment_q
    from contacts.services.fields import custom_fields_by_key

    def list_members(list_ids: list[int]) -> Q:
        return Q(
            id__in=Subscription.objects.filter(
                mailing_list_id__in=list_ids, status=Subscription.Status.SUBSCRIBED
            ).values("contact_id")
        )

    fields = custom_fields_by_key()
    included = list_members(list(campaign.lists.values_list("id", flat=True)))
    for rules in campaign.segments.values_list("rules", flat=True):
        included |= segment_q(rules, fields)
    audience = Contact.objects.filter(included).filter(contact_sendable_q())
    excluded_lists = list(campaign.excluded_lists.values_list("id", flat=True))
    if excluded_lists:
        audience = audience.exclude(list_members(excluded_lists))
    for rules in campaign.excluded_segments.values_list("rules", flat=True):
        # Through a subquery: NOT on a rule with missing values would also drop contacts
        # the rule does not match (SQL's NOT NULL is NULL).
        audience = audience.exclude(
            id__in=Contact.objects.filter(segment_q(rules, fields)).values("id")
        )
    return audience


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


def campaign_messages(campaign: Campaign, status: str = "", query: str = "") -> QuerySet[Message]:
    """The campaign's messages, optionally of one status and with an address containing
    ``query``; the ones tried most recently first (what an operator looks at while a
    campaign is being deferred or failing)."""
    messages = Message.objects.filter(campaign=campaign)
    if status in Message.Status.values:
        messages = messages.filter(status=status)
    if query:
        messages = messages.filter(email__icontains=query)
    return messages.order_by(F("claimed_at").desc(nulls_last=True), "id")


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
