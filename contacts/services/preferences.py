"""The preference centre's writes: a person changing their own subscriptions and name.

These run for the person named by a signed link, not for a marketer, so they may do what
the marketer-facing services refuse: switch back on a subscription the person ended
themselves. They never touch a list the person was never on.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from contacts.models import Contact, Subscription, Suppression
from contacts.services.contacts import NAME_MAX_LENGTH
from contacts.services.suppression import suppression_add_many


def preferences_update(
    contact: Contact, *, first_name: str, last_name: str, list_ids: Iterable[int]
) -> None:
    """Set the name and which of the person's lists they stay subscribed to.

    Lists outside the person's own subscriptions are ignored, so a forged form cannot
    subscribe them to anything new.
    """
    wanted = set(list_ids)
    with transaction.atomic():
        Contact.objects.filter(pk=contact.pk).update(
            first_name=first_name.strip()[:NAME_MAX_LENGTH],
            last_name=last_name.strip()[:NAME_MAX_LENGTH],
        )
        mine = Subscription.objects.filter(contact=contact)
        mine.filter(mailing_list_id__in=wanted).exclude(
            status=Subscription.Status.SUBSCRIBED
        ).update(status=Subscription.Status.SUBSCRIBED)
        mine.exclude(mailing_list_id__in=wanted).filter(
            status=Subscription.Status.SUBSCRIBED
        ).update(status=Subscription.Status.UNSUBSCRIBED)
    contact.refresh_from_db()


def contact_unsubscribe_everything(contact: Contact) -> None:
    """End every subscription, mark the contact unsubscribed and put the address on the
    suppression list, so no later import or form brings it back. Idempotent."""
    with transaction.atomic():
        Subscription.objects.filter(contact=contact).update(status=Subscription.Status.UNSUBSCRIBED)
        # A bounced or complained status says more than "unsubscribed"; keep it.
        Contact.objects.filter(pk=contact.pk, status=Contact.Status.ACTIVE).update(
            status=Contact.Status.UNSUBSCRIBED
        )
        suppression_add_many([contact.email], reason=Suppression.Reason.UNSUBSCRIBE)
    contact.refresh_from_db()
