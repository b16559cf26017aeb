"""What we hold on one person, in time order or as one export, and list/segment exports.

Reads only; erasure is ``contacts.services.privacy``. Messages and events belong to the
campaigns and tracking apps and are read here as the person's history.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from contacts.models import Contact, CustomField

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_BASE_FIELDS = ("email", "first_name", "last_name", "status", "created_at")


def csv_safe(value: object) -> object:
    """Make a text cell inert in spreadsheets by prefixing formula triggers with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def contact_timeline(contact: Contact) -> list[dict[str, Any]]:
    """Subscriptions, consents, messages sent and events (opens, clicks, bounces,
    complaints, unsubscribes), newest first. A handful of queries, whatever the history."""
    from campaigns.models import Message
    from tracking.models import Event

    items: list[dict[str, Any]] = []
    for sub in contact.subscriptions.select_related("mailing_list"):
        items.append(
            {
                "at": sub.created_at,
                "kind": "subscribed",
                "label": _("Subscribed to %(list)s") % {"list": sub.mailing_list.name},
            }
        )
        if sub.status != sub.Status.SUBSCRIBED:
            items.append(
                {
                    "at": sub.updated_at,
                    "kind": sub.status,
                    "label": _("%(status)s: %(list)s")
                    % {"status": sub.get_status_display(), "list": sub.mailing_list.name},
                }
            )
    for consent in contact.consents.all():
        items.append(
            {
                "at": consent.created_at,
                "kind": "signed_up",
                "label": _("Signed up through “%(form)s”") % {"form": consent.form_name},
            }
        )
        if consent.confirmed_at:
            items.append({"at": consent.confirmed_at, "kind": "confirmed", "label": _("Confirmed")})
    for message in Message.objects.filter(contact=contact, sent_at__isnull=False).select_related(
        "campaign"
    ):
        items.append(
            {
                "at": message.sent_at,
                "kind": "sent",
                "label": _("Sent “%(campaign)s”") % {"campaign": message.campaign.name},
            }
        )
    for event in Event.objects.filter(message__contact=contact).select_related("campaign"):
        items.append(
            {
                "at": event.created_at,
                "kind": event.kind,
                "label": f"{event.get_kind_display()}: {event.campaign.name}",
                "detail": _event_detail(event),
            }
        )
    return sorted(items, key=lambda item: item["at"], reverse=True)


def _event_detail(event: Any) -> str:
    """What the receiving side said about a bounce or complaint: "5.1.1 (550) User unknown"."""
    if event.kind not in (event.Kind.BOUNCE, event.Kind.COMPLAINT):
        return ""
    code = event.status_code
    if event.smtp_code:
        code = f"{code} ({event.smtp_code})" if code else str(event.smtp_code)
    return " ".join(part for part in (code, event.diagnostic) if part)


def contact_data_export(contact: Contact) -> dict[str, Any]:
    """Everything held on the person, as JSON-ready data (a data-access request)."""
    from campaigns.models import Message
    from tracking.models import Event

    return {
        "contact": {
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "status": contact.status,
            "attributes": contact.attributes,
            "created_at": contact.created_at.isoformat(),
            "updated_at": contact.updated_at.isoformat(),
        },
        "subscriptions": [
            {
                "list": sub.mailing_list.name,
                "status": sub.status,
                "since": sub.created_at.isoformat(),
            }
            for sub in contact.subscriptions.select_related("mailing_list")
        ],
        "consents": [
            {
                "form": consent.form_name,
                "text": consent.text,
                "ip": consent.ip,
                "user_agent": consent.user_agent,
                "at": consent.created_at.isoformat(),
                "confirmed_at": consent.confirmed_at.isoformat() if consent.confirmed_at else None,
            }
            for consent in contact.consents.all()
        ],
        "messages": [
            {
                "campaign": m.campaign.name,
                "subject": m.campaign.subject,
                "status": m.status,
                "sent_at": m.sent_at.isoformat() if m.sent_at else None,
            }
            for m in Message.objects.filter(contact=contact).select_related("campaign")
        ],
        "events": [
            {
                "kind": e.kind,
                "campaign": e.campaign.name,
                "at": e.created_at.isoformat(),
                "ip": e.ip,
                "user_agent": e.user_agent,
            }
            for e in Event.objects.filter(message__contact=contact).select_related("campaign")
        ],
    }


def export_columns(fields: Iterable[str]) -> list[tuple[str, str]]:
    """(key, header) of the chosen columns, in a stable order; unknown keys are dropped.

    Custom fields are chosen as ``custom.<key>``.
    """
    chosen = set(fields)
    labels = {
        "email": _("Email"),
        "first_name": _("First name"),
        "last_name": _("Last name"),
        "status": _("Status"),
        "created_at": _("Added"),
    }
    columns = [("email", labels["email"])]
    columns += [(key, labels[key]) for key in EXPORT_BASE_FIELDS[1:] if key in chosen]
    for field in CustomField.objects.order_by("label", "id"):
        if f"custom.{field.key}" in chosen:
            columns.append((f"custom.{field.key}", field.label))
    return columns


class _Echo:
    def write(self, value: str) -> str:
        return value


def contacts_csv(contacts: QuerySet[Contact], columns: list[tuple[str, str]]) -> Iterator[str]:
    """Stream contacts as CSV lines (BOM first, for Excel), every cell formula-safe.

    Reads in chunks through ``iterator()``, so a million contacts never sit in memory.
    """
    writer = csv.writer(_Echo())
    yield "\ufeff"
    yield writer.writerow([header for _key, header in columns])
    for contact in contacts.order_by("id").iterator(chunk_size=2000):
        row = []
        for key, _header in columns:
            if key.startswith("custom."):
                attributes = contact.attributes if isinstance(contact.attributes, dict) else {}
                value: Any = attributes.get(key[len("custom.") :], "")
            elif key == "created_at":
                value = contact.created_at.isoformat()
            else:
                value = getattr(contact, key)
            if isinstance(value, bool):
                value = "true" if value else "false"
            row.append(csv_safe(value))
        yield writer.writerow(row)
