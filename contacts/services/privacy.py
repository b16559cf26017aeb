"""Erasure: removing a person's data on request, remembering only that they asked."""

from __future__ import annotations

from django.db import transaction

from contacts import selectors
from contacts.models import Contact, Suppression


def contact_erase(contact: Contact) -> None:
    """Remove the person's personal data and keep a hash of the address on the
    suppression list, so no import or form brings them back.

    The contact row stays, anonymised, because the campaigns' messages and reports point
    at it: the address becomes ``erased-<id>@erased.invalid``, names, attributes,
    subscriptions and consents go, and the address, IP and browser recorded on their
    messages and events are blanked. Idempotent.
    """
    from campaigns.models import Message
    from tracking.models import Event

    address_hash = selectors.email_hash(contact.email)
    with transaction.atomic():
        if not contact.email.endswith("@erased.invalid"):
            Suppression.objects.get_or_create(
                kind=Suppression.Kind.HASH,
                value=address_hash,
                defaults={"reason": Suppression.Reason.ERASED},
            )
        # The plain address may also be listed (an unsubscribe); the hash replaces it.
        Suppression.objects.filter(
            kind=Suppression.Kind.EMAIL, value=contact.email.lower()
        ).delete()
        placeholder = f"erased-{contact.pk}@erased.invalid"
        contact.subscriptions.all().delete()
        contact.consents.all().delete()
        Message.objects.filter(contact=contact).update(email=placeholder)
        Event.objects.filter(message__contact=contact).update(ip=None, user_agent="")
        contact.email = placeholder
        contact.first_name = ""
        contact.last_name = ""
        contact.attributes = {}
        contact.status = Contact.Status.UNSUBSCRIBED
        contact.save()
