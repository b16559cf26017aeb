"""Reads about contacts, lists and imports."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Lower, StrIndex, Substr
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from contacts import segments
from contacts.models import (
    Contact,
    ContactImport,
    CustomField,
    MailingList,
    Segment,
    Subscription,
    Suppression,
)


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
    imports = ContactImport.objects.select_related("mailing_list").defer(
        "refused_rows", "skipped_rows"
    )
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
    progress = {
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
    if contact_import.status == ContactImport.Status.RUNNING:
        progress.update(contact_import_speed(contact_import))
    return progress


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return _("%(s)s s") % {"s": seconds}
    if seconds < 3600:
        return _("%(m)s min %(s)02d s") % {"m": seconds // 60, "s": seconds % 60}
    return _("%(h)s h %(m)02d min") % {"h": seconds // 3600, "m": seconds % 3600 // 60}


def contact_import_speed(
    contact_import: ContactImport, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """Rate (rows per second since the importer claimed the file) and the time left.

    Only meaningful while running; the time left is the rows still to read at the rate so
    far, shown as "—" until both the row count and a rate are known.
    """
    now = now or timezone.now()
    elapsed = (now - contact_import.started_at).total_seconds() if contact_import.started_at else 0
    done, total = contact_import.rows_done, contact_import.rows_total
    rate = done / elapsed if elapsed > 0 and done else 0.0
    if not rate or not total:
        seconds_left, time_left = None, "—"
    elif done >= total:
        seconds_left, time_left = 0, _("finishing…")
    else:
        seconds_left = round((total - done) / rate)
        time_left = _duration(seconds_left)
    return {
        "rate": round(rate),
        "rate_display": _("%(rate)s rows/s")
        % {"rate": number_format(round(rate), force_grouping=True)},
        "seconds_left": seconds_left,
        "time_left": time_left,
    }


# --- Sending eligibility and segments ------------------------------------------------------


def suppression_q(prefix: str = "") -> Q:
    """Contacts on the suppression list: their address, or their address's domain.

    ``prefix`` reaches the contact through a relation (``"contact__"``). Two EXISTS
    subqueries on the (kind, value) unique index.
    """
    email = OuterRef(f"{prefix}email")
    return Q(
        Exists(Suppression.objects.filter(kind=Suppression.Kind.EMAIL, value=Lower(email)))
    ) | Q(
        Exists(
            Suppression.objects.filter(
                kind=Suppression.Kind.DOMAIN,
                value=Substr(email, StrIndex(email, Value("@")) + 1),
            )
        )
    )


def contact_sendable_q(prefix: str = "") -> Q:
    """Contacts a campaign may be sent to: active (not unsubscribed, bounced or complained)
    and not on the suppression list.

    Every audience goes through this one condition, so whatever else decides who is
    suppressed is added here and nowhere else.
    """
    return Q(**{f"{prefix}status": Contact.Status.ACTIVE}) & ~suppression_q(prefix)


def suppression_list(*, query: str = "", reason: str | None = None) -> QuerySet[Suppression]:
    entries = Suppression.objects.all()
    if query.strip():
        entries = entries.filter(value__icontains=query.strip().lower())
    if reason:
        entries = entries.filter(reason=reason)
    return entries.order_by("-id")


def suppression_matches(emails: Iterable[str]) -> set[str]:
    """Which of ``emails`` (lower-cased, as returned) are suppressed by the list: by address,
    domain, or the hash an erasure left behind. One query."""
    keys = {email.lower() for email in emails}
    if not keys:
        return set()
    domains = {key.rpartition("@")[2] for key in keys}
    hashes = {email_hash(key): key for key in keys}
    hits = Suppression.objects.filter(
        Q(kind=Suppression.Kind.EMAIL, value__in=keys)
        | Q(kind=Suppression.Kind.DOMAIN, value__in=domains)
        | Q(kind=Suppression.Kind.HASH, value__in=hashes)
    ).values_list("kind", "value")
    emails_hit = {value for kind, value in hits if kind == Suppression.Kind.EMAIL}
    emails_hit |= {hashes[value] for kind, value in hits if kind == Suppression.Kind.HASH}
    domains_hit = {value for kind, value in hits if kind == Suppression.Kind.DOMAIN}
    return {key for key in keys if key in emails_hit or key.rpartition("@")[2] in domains_hit}


def email_hash(email: str) -> str:
    """What an erased address is remembered as: SHA-256 of it lower-cased, in hex."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def suppression_status_counts() -> dict[str, int]:
    """Contacts suppressed by their status (fed by unsubscribes, bounces and complaints)."""
    return dict(
        Contact.objects.exclude(status=Contact.Status.ACTIVE)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )


def segment_list() -> QuerySet[Segment]:
    return Segment.objects.order_by("name")


def segment_name_free(base: str, max_length: int = 200) -> str:
    """``base``, or ``base (2)``, ``base (3)`` ... : the first name no segment has (names are
    unique whatever their case), cut to fit ``max_length``. One query."""
    base = base.strip()[: max_length - 6]
    taken = {
        name.lower()
        for name in Segment.objects.filter(name__istartswith=base).values_list("name", flat=True)
    }
    if base.lower() not in taken:
        return base
    number = 2
    while f"{base} ({number})".lower() in taken:
        number += 1
    return f"{base} ({number})"


def segment_contacts(
    rules: dict[str, Any], fields: Mapping[str, CustomField] | None = None
) -> QuerySet[Contact]:
    """Every contact matching clean rules, whatever their status (one query).

    ``fields`` (custom fields by key) saves loading them when the caller has them.
    """
    return Contact.objects.filter(segments.segment_q(rules, fields))


def segment_count(
    rules: dict[str, Any], fields: Mapping[str, CustomField] | None = None
) -> dict[str, int]:
    """How many contacts match clean rules, and how many of them a campaign would reach.

    One aggregate query over the compiled rule (plus one for the fields if not given).
    """
    return segment_contacts(rules, fields).aggregate(
        count=Count("id"), reachable=Count("id", filter=contact_sendable_q())
    )
