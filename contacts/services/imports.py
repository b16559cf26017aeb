"""The CSV importer's writes: storing an upload, queueing it, and running it in batches.

Parsing lives in ``contacts.importing``; this module turns parsed rows into set-based
database writes, one transaction per batch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts import conf, importing, selectors
from contacts.models import Contact, ContactImport, CustomField, MailingList, Subscription
from contacts.services.contacts import NAME_MAX_LENGTH, normalize_email
from contacts.services.fields import custom_value_clean

log = logging.getLogger(__name__)


def contact_import_validate_file(uploaded_file: UploadedFile) -> None:
    """Refuse an upload that cannot be a contact CSV: empty, too large, or a workbook.

    Raises ValidationError with a message for the user; the encoding and the columns are
    checked later by the importer, which streams the file.
    """
    size = uploaded_file.size or 0
    if size == 0:
        raise ValidationError(_("The file is empty."), code="empty")
    limit = conf.import_max_bytes()
    if size > limit:
        raise ValidationError(
            _("The file is %(size)s; the largest file accepted is %(limit)s.")
            % {"size": filesizeformat(size), "limit": filesizeformat(limit)},
            code="too_large",
        )
    uploaded_file.seek(0)
    head = uploaded_file.read(8)
    uploaded_file.seek(0)
    if head.startswith(importing.WORKBOOK_MAGIC):
        raise ValidationError(importing.workbook_message(), code="workbook")


def contact_import_create(
    mailing_list: MailingList,
    uploaded_file: UploadedFile,
    user: AbstractBaseUser | None = None,
) -> ContactImport:
    """Store the upload and queue the import once the caller's transaction commits.

    Raises ValidationError for files ``contact_import_validate_file`` refuses.
    """
    from contacts.tasks import contact_import_run_task

    contact_import_validate_file(uploaded_file)
    original_name = os.path.basename(uploaded_file.name or "")[:255]
    contact_import = ContactImport(
        mailing_list=mailing_list,
        original_name=original_name,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    contact_import.file.save(original_name or "contacts.csv", uploaded_file, save=False)
    contact_import.save()
    transaction.on_commit(lambda: contact_import_run_task.delay(contact_import.pk))
    return contact_import


@dataclass
class _Tally:
    """Running counts of one import; each data row lands in exactly one counter."""

    refused_rows_kept: int
    rows_done: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    refused: int = 0
    refused_rows: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, row: int, email: str, reason: str) -> None:
        self.refused += 1
        if len(self.refused_rows) < self.refused_rows_kept:
            self.refused_rows.append({"row": row, "email": email[:320], "reason": reason})

    def fields(self) -> dict[str, Any]:
        return {
            "rows_done": self.rows_done,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "refused": self.refused,
            "refused_rows": self.refused_rows,
        }


def _merge_row(contact: Contact, row: importing.ParsedRow) -> None:
    """Apply a row's non-empty values to the contact: names overwrite, attributes merge."""
    for name in ("first_name", "last_name"):
        value = getattr(row, name)[:NAME_MAX_LENGTH]
        if value:
            setattr(contact, name, value)
    if row.attributes:
        current = contact.attributes if isinstance(contact.attributes, dict) else {}
        contact.attributes = {**current, **row.attributes}


def _snapshot(contact: Contact) -> tuple[str, str, Any]:
    return contact.first_name, contact.last_name, contact.attributes


def header_fields(header: tuple[str, ...] | list[str]) -> dict[str, CustomField]:
    """The custom field each column feeds, matched on the field's key or label.

    Matching ignores case, spaces and punctuation, like the email and name columns, so a
    "Signup Date" column fills the field ``signup_date``.
    """
    fields: dict[str, CustomField] = {}
    for custom in CustomField.objects.all():
        fields.setdefault(importing.header_key(custom.key), custom)
        fields.setdefault(importing.header_key(custom.label), custom)
    return {
        name.strip(): fields[importing.header_key(name)]
        for name in header
        if importing.header_key(name) in fields
    }


def _type_attributes(
    row: importing.ParsedRow, fields: dict[str, CustomField]
) -> tuple[dict[str, Any], str | None]:
    """The row's attributes with custom-field columns typed and stored under the field key.

    Returns (attributes, None), or (_, reason) naming the first column with a bad value.
    """
    if not fields:
        return row.attributes, None
    typed: dict[str, Any] = {}
    for name, value in row.attributes.items():
        field = fields.get(name)
        if field is None:
            typed[name] = value
            continue
        try:
            cleaned = custom_value_clean(field, value)
        except ValidationError:
            return {}, _("bad value for %(field)s") % {"field": field.key}
        if cleaned is not None:
            typed[field.key] = cleaned
    return typed, None


def _import_batch(
    mailing_list: MailingList,
    rows: list[importing.ParsedRow],
    tally: _Tally,
    fields: dict[str, CustomField] | None = None,
) -> None:
    """Apply one batch of rows with a fixed number of queries, whatever its size.

    Rows of the same address are merged first, in file order (a later row's non-empty
    values win), and only the first of them is counted by outcome; the others count as
    *skipped*. An address the database lacks is *created*. An existing contact is
    *updated* when the merged row changes it (a name, an attribute, or joining the list)
    and *skipped* otherwise; contacts who unsubscribed, bounced or complained are always
    skipped: left untouched and not added to the list. An address on the suppression list
    (itself or its domain) is *refused* with the reason "suppressed", so a blocklisted or
    erased person is never brought back by a file.
    """
    groups: dict[str, tuple[str, list[importing.ParsedRow]]] = {}
    for row in rows:
        tally.rows_done += 1
        if not row.email:
            tally.refuse(row.row, "", _("No email address."))
            continue
        try:
            email = normalize_email(row.email)
        except ValidationError as exc:
            tally.refuse(row.row, row.email, exc.messages[0])
            continue
        row.attributes, reason = _type_attributes(row, fields or {})
        if reason is not None:
            tally.refuse(row.row, email, reason)
            continue
        group = groups.get(email.lower())
        if group is None:
            groups[email.lower()] = (email, [row])
        else:
            group[1].append(row)
            tally.skipped += 1
    suppressed = selectors.suppression_matches(groups)
    for key in [key for key in groups if key in suppressed]:  # in file order
        email, group = groups.pop(key)
        tally.refuse(group[0].row, email, _("suppressed"))
    if not groups:
        return

    existing = {c.email.lower(): c for c in selectors.contact_find_by_emails(groups)}
    in_list = set(
        Subscription.objects.filter(
            mailing_list=mailing_list, contact_id__in=[c.pk for c in existing.values()]
        ).values_list("contact_id", flat=True)
    )
    new_contacts: list[Contact] = []
    changed_contacts: list[Contact] = []
    subscribe: list[Contact] = []
    for key, (email, group) in groups.items():
        contact = existing.get(key)
        if contact is None:
            contact = Contact(email=email, attributes={})
            for row in group:
                _merge_row(contact, row)
            new_contacts.append(contact)
            subscribe.append(contact)
            tally.created += 1
            continue
        if contact.status != Contact.Status.ACTIVE:
            tally.skipped += 1
            continue
        before = _snapshot(contact)
        for row in group:
            _merge_row(contact, row)
        changed = _snapshot(contact) != before
        if changed:
            changed_contacts.append(contact)
        if contact.pk not in in_list:
            subscribe.append(contact)
            changed = True
        if changed:
            tally.updated += 1
        else:
            tally.skipped += 1

    if new_contacts:
        # ignore_conflicts: an address created elsewhere since the lookup above must not
        # fail the batch. It also leaves the primary keys unset, hence the lookup after.
        Contact.objects.bulk_create(new_contacts, ignore_conflicts=True)
        ids = {
            c.email.lower(): c.pk
            for c in selectors.contact_find_by_emails(c.email for c in new_contacts).only(
                "id", "email"
            )
        }
        for contact in new_contacts:
            contact.pk = ids.get(contact.email.lower())
    if changed_contacts:
        now = timezone.now()
        for contact in changed_contacts:
            contact.updated_at = now
        Contact.objects.bulk_update(
            changed_contacts, ["first_name", "last_name", "attributes", "updated_at"]
        )
    # ignore_conflicts also keeps an existing (possibly ended) subscription as it is.
    Subscription.objects.bulk_create(
        [
            Subscription(contact_id=contact.pk, mailing_list=mailing_list)
            for contact in subscribe
            if contact.pk is not None
        ],
        ignore_conflicts=True,
    )


def _contact_import_fail(import_id: int, message: str) -> None:
    ContactImport.objects.filter(pk=import_id).update(
        status=ContactImport.Status.FAILED, error=message, finished_at=timezone.now()
    )


def contact_import_run(import_id: int) -> None:
    """Import the file of a queued ContactImport into its list.

    Claims the import (queued → running) so a duplicate task does nothing; validates the
    whole file before writing (encoding, CSV structure, an email column), then writes in
    batches, each in its own transaction together with the import's counters, so the
    progress shown is always what is committed. Ends done or failed with ``error`` set,
    never left running by an exception. Importing the same file again changes nothing.
    """
    claimed = ContactImport.objects.filter(pk=import_id, status=ContactImport.Status.QUEUED).update(
        status=ContactImport.Status.RUNNING
    )
    if not claimed:
        log.info("Contact import %s is not queued; nothing to do.", import_id)
        return
    contact_import = ContactImport.objects.select_related("mailing_list").get(pk=import_id)
    tally = _Tally(refused_rows_kept=conf.import_refused_rows_kept())
    try:
        _contact_import_execute(contact_import, tally)
    except importing.ImportFileError as exc:
        _contact_import_fail(import_id, str(exc))
    except FileNotFoundError:
        log.exception("Contact import %s: the uploaded file is missing", import_id)
        _contact_import_fail(
            import_id, _("The uploaded file is missing from storage. Upload it again.")
        )
    except Exception as exc:
        log.exception("Contact import %s failed", import_id)
        _contact_import_fail(
            import_id,
            _(
                "The import stopped after %(done)s rows because of an unexpected error: "
                "%(error)s. The rows before it were imported; importing the file again is safe."
            )
            % {"done": tally.rows_done, "error": exc},
        )


def _contact_import_execute(contact_import: ContactImport, tally: _Tally) -> None:
    storage, name = contact_import.file.storage, contact_import.file.name

    def open_file() -> Any:
        return storage.open(name, "rb")

    info = importing.inspect_csv(open_file)
    ContactImport.objects.filter(pk=contact_import.pk).update(rows_total=info.rows_total)
    fields = header_fields(info.header)
    if connection.vendor == "postgresql" and info.rows_total >= conf.import_copy_min_rows():
        from contacts.services.bulk_import import contact_import_copy

        contact_import_copy(contact_import, tally, open_file, info, fields)
        _contact_import_finish(contact_import.pk, tally)
        return
    batch_size = conf.import_batch_size()
    batch: list[importing.ParsedRow] = []

    def flush() -> None:
        with transaction.atomic():
            _import_batch(contact_import.mailing_list, batch, tally, fields)
            ContactImport.objects.filter(pk=contact_import.pk).update(**tally.fields())
        batch.clear()

    for row in importing.read_contacts(open_file, info):
        batch.append(row)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    _contact_import_finish(contact_import.pk, tally)


def _contact_import_finish(import_id: int, tally: _Tally) -> None:
    ContactImport.objects.filter(pk=import_id).update(
        **tally.fields(),
        rows_total=tally.rows_done,
        status=ContactImport.Status.DONE,
        finished_at=timezone.now(),
    )
