"""Writes for tracking: events from the public endpoints, and unsubscribes."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from campaigns.models import CampaignLink, Message
from contacts.models import Contact, Subscription
from tracking.models import Event


def _client_ip(meta: dict) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is trivially forged unless a proxy we trust sets it.
    value = meta.get("REMOTE_ADDR") or None
    return value


def event_record(
    kind: str,
    message: Message,
    *,
    link: CampaignLink | None = None,
    meta: dict | None = None,
) -> Event:
    meta = meta or {}
    return Event.objects.create(
        kind=kind,
        campaign_id=message.campaign_id,
        message=message,
        link=link,
        ip=_client_ip(meta),
        user_agent=(meta.get("HTTP_USER_AGENT") or "")[:500],
    )


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
            event_record(Event.Kind.UNSUBSCRIBE, message, meta=meta)
    return True
