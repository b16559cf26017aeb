"""Reads about contacts, lists and imports."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Lower

from contacts.models import Contact, ContactImport, MailingList, Subscription


def _search(query: str, prefix: str = "") -> Q:
    """Every word must appear in the address or a name, so "ann smith" finds Ann Smith."""
    condition = Q()
    for word in query.split():
        condition &= (
            Q(**{f"{prefix}email__icontains": word})
            | Q(**{f"{prefix}first_name__icontains": word})
            | Q(**{f"{prefix}last_name__icontains": word})
        )
    return condition


def contact_list(
    *,
    query: str = "",
    mailing_list: MailingList | int | None = None,
    status: str | None = None,
    email: str | None = None,
) -> QuerySet[Contact]:
    """Contacts matching a search, in a list (with any subscription status), with a status.

    ``email`` is an exact match that ignores case, for API clients looking one address up.
    """
    contacts = Contact.objects.all()
    if query.strip():
        contacts = contacts.filter(_search(query))
    if mailing_list is not None:
        contacts = contacts.filter(subscriptions__mailing_list=mailing_list)
    if status:
        contacts = contacts.filter(status=status)
    if email is not None:
        contacts = contacts.annotate(email_lower=Lower("email")).filter(
            email_lower=email.strip().lower()
        )
    return contacts.order_by("id")


def contact_find_by_emails(emails: Iterable[str]) -> QuerySet[Contact]:
    """Contacts whose address is one of ``emails``, ignoring case; one query, any number.

    Matches on lower(email), which the case-insensitive unique index covers.
    """
    keys = {email.lower() for email in emails}
    return Contact.objects.annotate(email_lower=Lower("email")).filter(email_lower__in=keys)


def contact_get_by_email(email: str) -> Contact | None:
    return contact_find_by_emails([email]).first()


def contact_email_taken(email: str, exclude_pk: int | None = None) -> bool:
    contacts = contact_find_by_emails([email])
    if exclude_pk is not None:
        contacts = contacts.exclude(pk=exclude_pk)
    return contacts.exists()


def contact_subscriptions(contact: Contact) -> QuerySet[Subscription]:
    """The contact's lists with the subscription status of each."""
    return (
        Subscription.objects.filter(contact=contact)
        .select_related("mailing_list")
        .order_by("mailing_list__name")
    )


def contact_subscribed_list_ids(contact: Contact) -> list[int]:
    """Ids of the lists the contact is subscribed to (ended subscriptions left out)."""
    prefetched = getattr(contact, "active_subscriptions", None)
    if prefetched is not None:
        return sorted(s.mailing_list_id for s in prefetched)
    return sorted(
        Subscription.objects.filter(
            contact=contact, status=Subscription.Status.SUBSCRIBED
        ).values_list("mailing_list_id", flat=True)
    )


def mailing_list_list() -> QuerySet[MailingList]:
    """All lists, each with ``subscriber_count``: subscribed contacts a campaign would reach."""
    return MailingList.objects.annotate(
        subscriber_count=Count(
            "subscriptions",
            filter=Q(
                subscriptions__status=Subscription.Status.SUBSCRIBED,
                subscriptions__contact__status=Contact.Status.ACTIVE,
            ),
        )
    ).order_by("name")


def mailing_list_name_taken(name: str, exclude_pk: int | None = None) -> bool:
    lists = MailingList.objects.filter(name__iexact=name.strip())
    if exclude_pk is not None:
        lists = lists.exclude(pk=exclude_pk)
    return lists.exists()


def mailing_list_subscriptions(
    mailing_list: MailingList, *, query: str = ""
) -> QuerySet[Subscription]:
    """The list's members with their subscription, searchable like ``contact_list``."""
    subscriptions = Subscription.objects.filter(mailing_list=mailing_list).select_related("contact")
    if query.strip():
        subscriptions = subscriptions.filter(_search(query, prefix="contact__"))
    return subscriptions.order_by("contact_id")


def mailing_list_stats(mailing_list: MailingList) -> dict[str, int]:
    """How the list's members break down: reachable, ended subscriptions, suppressed."""
    return Subscription.objects.filter(mailing_list=mailing_list).aggregate(
        total=Count("id"),
        subscribed=Count(
            "id",
            filter=Q(status=Subscription.Status.SUBSCRIBED, contact__status=Contact.Status.ACTIVE),
        ),
        unsubscribed=Count("id", filter=Q(status=Subscription.Status.UNSUBSCRIBED)),
        suppressed=Count(
            "id",
            filter=Q(status=Subscription.Status.SUBSCRIBED)
            & ~Q(contact__status=Contact.Status.ACTIVE),
        ),
    )


def contact_import_list(*, mailing_list: MailingList | None = None) -> QuerySet[ContactImport]:
    imports = ContactImport.objects.select_related("mailing_list").defer("refused_rows")
    if mailing_list is not None:
        imports = imports.filter(mailing_list=mailing_list)
    return imports.order_by("-id")


def contact_import_progress(contact_import: ContactImport) -> dict[str, Any]:
    """What the progress bar polls: counters, a percentage and whether to keep polling.

    The percentage stops at 99 until the import is done, because rows_total is only known
    once the file has been checked.
    """
    running = contact_import.status in {
        ContactImport.Status.QUEUED,
        ContactImport.Status.RUNNING,
    }
    if contact_import.status == ContactImport.Status.DONE:
        percent = 100
    elif contact_import.rows_total:
        percent = min(99, contact_import.rows_done * 100 // contact_import.rows_total)
    else:
        percent = 0
    return {
        "status": contact_import.status,
        "status_display": contact_import.get_status_display(),
        "running": running,
        "percent": percent,
        "rows_done": contact_import.rows_done,
        "rows_total": contact_import.rows_total,
        "created": contact_import.created,
        "updated": contact_import.updated,
        "skipped": contact_import.skipped,
        "refused": contact_import.refused,
    }
