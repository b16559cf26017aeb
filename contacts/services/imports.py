"""The CSV importer's writes: storing an upload, queueing it, and running it in batches.

Parsing lives in ``contacts.importing``; this module turns parsed rows into set-based
database writes, one transaction per batch.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.db.models import F
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts import conf, importing, selectors
from contacts.models import Contact, ContactImport, CustomField, MailingList, Subscription
from contacts.services.contacts import NAME_MAX_LENGTH, normalize_email
from contacts.services.fields import (
    KEY_RE,
    custom_field_create,
    custom_fields_by_key,
    custom_value_parser,
)

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


# Targets of a column on the mapping page and in the API's ``mapping``.
TARGET_EMAIL = "email"
TARGET_FIRST_NAME = "first_name"
TARGET_LAST_NAME = "last_name"
TARGET_IGNORE = "ignore"
TARGET_NEW_FIELD = "new"
FIELD_PREFIX = "field:"


def contact_import_guess_mapping(header: tuple[str, ...] | list[str]) -> list[str]:
    """One target per column, guessed from the header names the way the importer always has.

    Mailchimp, Unisender, listmonk and Mautic names map themselves; a column named like an
    existing custom field (key or label) feeds it; any other named column becomes a new
    text field, and an unnamed one is ignored. A lone full-name column is the first name.
    """
    fields = header_fields(header)
    targets: list[str] = []
    full: int | None = None
    for index, raw in enumerate(header):
        name = raw.strip()
        key = importing.header_key(name)
        if not key:
            target = TARGET_IGNORE
        elif key in importing.EMAIL_HEADERS and TARGET_EMAIL not in targets:
            target = TARGET_EMAIL
        elif key in importing.FIRST_NAME_HEADERS and TARGET_FIRST_NAME not in targets:
            target = TARGET_FIRST_NAME
        elif key in importing.LAST_NAME_HEADERS and TARGET_LAST_NAME not in targets:
            target = TARGET_LAST_NAME
        elif name in fields and FIELD_PREFIX + fields[name].key not in targets:
            target = FIELD_PREFIX + fields[name].key
        else:
            target = TARGET_NEW_FIELD
            if key in importing.FULL_NAME_HEADERS and full is None:
                full = index
        targets.append(target)
    if full is not None and TARGET_FIRST_NAME not in targets:
        targets[full] = TARGET_FIRST_NAME
    return targets


def new_field_key(name: str, index: int) -> str:
    """The key of a custom field made from a column: its name in snake case, or column_N."""
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")[:50].rstrip("_")
    if not key or not key[0].isalpha():
        key = f"column_{index + 1}"
    return key


def _target_label(target: str) -> str:
    labels = {
        TARGET_EMAIL: _("Email address"),
        TARGET_FIRST_NAME: _("First name"),
        TARGET_LAST_NAME: _("Last name"),
    }
    if target in labels:
        return labels[target]
    return _("the field “%(key)s”") % {"key": target.removeprefix(FIELD_PREFIX)}


# A new field's type must be one whose values a CSV cell can give without more input; a
# choice needs its options listed first, so it is made in Settings and then picked here.
NEW_FIELD_TYPES = (
    CustomField.Type.TEXT,
    CustomField.Type.NUMBER,
    CustomField.Type.DATE,
    CustomField.Type.BOOLEAN,
)


@dataclass(frozen=True)
class NewField:
    """A custom field a mapping asks the importer to create before the rows are read."""

    key: str
    label: str
    type: str


def new_field_target(key: str, field_type: str = CustomField.Type.TEXT) -> str:
    """The mapping target that creates the field ``key`` of ``field_type``: ``new:KEY:TYPE``."""
    return f"{TARGET_NEW_FIELD}:{key}:{field_type}"


def _new_field_parse(target: str, name: str, index: int, column: str) -> NewField:
    """Read ``new``, ``new:KEY`` or ``new:KEY:TYPE``; raise ValidationError in plain words."""
    # A colon inside the name is kept in it, so it is refused as a bad name below.
    _new, _sep, rest = target.partition(":")
    key, _sep, field_type = rest.rpartition(":") if rest.count(":") else (rest, "", "")
    key = key.strip() or new_field_key(name, index)
    field_type = field_type.strip() or CustomField.Type.TEXT
    if not KEY_RE.match(key):
        raise ValidationError(
            _(
                "“%(key)s” cannot be the name of the new field for the column “%(column)s”: "
                "a field name starts with a lower-case letter and has only lower-case "
                "letters, digits and underscores (at most 50), like “city” or “signup_date”."
            )
            % {"key": key[:60], "column": column},
            code="mapping_new_field_key",
        )
    if field_type not in NEW_FIELD_TYPES:
        raise ValidationError(
            _(
                "The new field “%(key)s” cannot have the type “%(type)s”. Choose one of: "
                "%(types)s. A choice field needs its options: create it in Settings first, "
                "then pick it for the column."
            )
            % {"key": key, "type": field_type[:30], "types": ", ".join(NEW_FIELD_TYPES)},
            code="mapping_new_field_type",
        )
    return NewField(key, column[:100], field_type)


def contact_import_mapping_clean(
    header: tuple[str, ...] | list[str], mapping: Any
) -> tuple[list[str], list[NewField]]:
    """Check a mapping against the file's header and resolve its new fields.

    A target is ``email``, ``first_name``, ``last_name``, ``field:KEY`` (an existing
    custom field), ``ignore``, or a new field: ``new`` (a text field named after the
    column), ``new:KEY`` or ``new:KEY:TYPE``. Returns (targets, new fields); new-field
    targets come back as ``field:KEY``. Raises ValidationError naming what is wrong: not
    one target per column, an unknown target or field, a bad new-field name or type, no or
    several email columns, or two columns with the same target.
    """
    if (
        not isinstance(mapping, list)
        or len(mapping) != len(header)
        or not all(isinstance(target, str) for target in mapping)
    ):
        raise ValidationError(
            _("The mapping must give one target per column; this file has %(count)s columns.")
            % {"count": len(header)},
            code="mapping_shape",
        )
    existing = custom_fields_by_key()
    targets: list[str] = []
    new_fields: list[NewField] = []
    for index, (name, target) in enumerate(zip(header, mapping, strict=True)):
        column = name.strip() or _("column %(number)s") % {"number": index + 1}
        if target == TARGET_NEW_FIELD or target.startswith(TARGET_NEW_FIELD + ":"):
            new = _new_field_parse(target, name, index, column)
            if new.key in existing:
                raise ValidationError(
                    _(
                        "A field with the key “%(key)s” exists already: choose it for the "
                        "column “%(column)s” instead of a new field."
                    )
                    % {"key": new.key, "column": column},
                    code="mapping_field_exists",
                )
            if all(other.key != new.key for other in new_fields):
                new_fields.append(new)
            target = FIELD_PREFIX + new.key
        elif target.startswith(FIELD_PREFIX):
            if target.removeprefix(FIELD_PREFIX) not in existing:
                raise ValidationError(
                    _("The column “%(column)s” is mapped to a field that does not exist.")
                    % {"column": column},
                    code="mapping_unknown_field",
                )
        elif target not in {TARGET_EMAIL, TARGET_FIRST_NAME, TARGET_LAST_NAME, TARGET_IGNORE}:
            raise ValidationError(
                _("The column “%(column)s” has an unknown target “%(target)s”.")
                % {"column": column, "target": target[:50]},
                code="mapping_unknown_target",
            )
        targets.append(target)
    emails = targets.count(TARGET_EMAIL)
    if emails != 1:
        raise ValidationError(
            _("Choose exactly one column that holds the email addresses (%(count)s chosen).")
            % {"count": emails},
            code="mapping_email",
        )
    first_column: dict[str, str] = {}
    for index, (name, target) in enumerate(zip(header, targets, strict=True)):
        if target == TARGET_IGNORE:
            continue
        column = name.strip() or _("column %(number)s") % {"number": index + 1}
        if target in first_column:
            raise ValidationError(
                _(
                    "The columns “%(first)s” and “%(second)s” are both mapped to %(target)s. "
                    "Map each target to one column; ignore the other."
                )
                % {
                    "first": first_column[target],
                    "second": column,
                    "target": _target_label(target),
                },
                code="mapping_duplicate",
            )
        first_column[target] = column
    return targets, new_fields


def _column_index(header: tuple[str, ...] | list[str], column: str) -> int:
    """The index of the column a person named: its header (case and spaces ignored) or its
    position counted from 1. Raises ValidationError listing the columns otherwise."""
    names = [name.strip() for name in header]
    wanted = column.strip()
    if wanted in names:
        return names.index(wanted)
    keyed = [
        i
        for i, name in enumerate(names)
        if importing.header_key(name) == importing.header_key(wanted)
    ]
    if len(keyed) == 1 and importing.header_key(wanted):
        return keyed[0]
    if wanted.isdigit() and 1 <= int(wanted) <= len(header):
        return int(wanted) - 1
    raise ValidationError(
        _("The file has no column “%(column)s”. Its columns are: %(columns)s.")
        % {
            "column": wanted[:100],
            "columns": ", ".join(f"“{name}”" for name in names if name) or "—",
        },
        code="mapping_unknown_column",
    )


def contact_import_mapping_resolve(
    header: tuple[str, ...] | list[str], chosen: dict[str, str]
) -> list[str]:
    """One target per column: the guesses, overridden by ``chosen`` (column → field).

    A column is named by its header or its position from 1. A field is ``email``,
    ``first_name``, ``last_name``, ``ignore``, a custom field's key (or ``field:KEY``), or
    ``new`` / ``new:KEY`` / ``new:KEY:TYPE``. Used by the management command and the API's
    object form of ``mapping``; the result still goes through
    ``contact_import_mapping_clean``. Raises ValidationError for an unknown column or field.
    """
    targets = contact_import_guess_mapping(header)
    existing = custom_fields_by_key()
    plain = {TARGET_EMAIL, TARGET_FIRST_NAME, TARGET_LAST_NAME, TARGET_IGNORE, TARGET_NEW_FIELD}
    for column, raw in chosen.items():
        index = _column_index(header, str(column))
        target = str(raw).strip()
        if target in plain or target.startswith((TARGET_NEW_FIELD + ":", FIELD_PREFIX)):
            targets[index] = target
        elif target in existing:
            targets[index] = FIELD_PREFIX + target
        else:
            raise ValidationError(
                _(
                    "“%(field)s” is not something a column can hold. Use email, first_name, "
                    "last_name, ignore, the key of a custom field (%(fields)s), or "
                    "new:KEY:TYPE for a new field."
                )
                % {"field": target[:100], "fields": ", ".join(sorted(existing)) or "none yet"},
                code="mapping_unknown_target",
            )
    return targets


def contact_import_mapping_describe(
    header: tuple[str, ...] | list[str], targets: list[str]
) -> list[tuple[str, str]]:
    """(column, what it fills) for each column, in words, to show a mapping back."""
    described = []
    for index, (name, target) in enumerate(zip(header, targets, strict=True)):
        column = name.strip() or _("column %(number)s") % {"number": index + 1}
        if target == TARGET_IGNORE:
            what = _("ignored")
        elif target == TARGET_NEW_FIELD or target.startswith(TARGET_NEW_FIELD + ":"):
            new = _new_field_parse(target, name, index, column)
            what = _("a new %(type)s field “%(key)s”") % {"type": new.type, "key": new.key}
        else:
            what = _target_label(target)
        described.append((column, what))
    return described


def _columns_from_mapping(targets: list[str]) -> tuple[importing.Columns, list[str]]:
    """The importer's Columns for stored targets, and the custom-field keys they feed."""
    email = targets.index(TARGET_EMAIL)
    first = targets.index(TARGET_FIRST_NAME) if TARGET_FIRST_NAME in targets else None
    last = targets.index(TARGET_LAST_NAME) if TARGET_LAST_NAME in targets else None
    attributes = tuple(
        (index, target.removeprefix(FIELD_PREFIX))
        for index, target in enumerate(targets)
        if target.startswith(FIELD_PREFIX)
    )
    return importing.Columns(email, first, last, attributes), [key for _i, key in attributes]


def contact_import_preview(contact_import: ContactImport) -> importing.CsvPreview:
    """The stored file's header and first rows; raises ValidationError when unreadable."""
    storage, name = contact_import.file.storage, contact_import.file.name
    try:
        return importing.preview_csv(lambda: storage.open(name, "rb"))
    except importing.ImportFileError as exc:
        raise ValidationError(str(exc), code="file") from None


def contact_import_columns(contact_import: ContactImport) -> list[dict[str, Any]]:
    """Each column of the stored file: its header, up to five sample values and the guess.

    What the mapping page shows and what the API returns for an import waiting in
    *mapping*. Raises ValidationError when the file cannot be read.
    """
    preview = contact_import_preview(contact_import)
    guesses = contact_import_guess_mapping(preview.header)
    return [
        {
            "index": index,
            "header": name,
            "samples": [row[index] for row in preview.samples if index < len(row) and row[index]],
            "guess": guesses[index],
            "new_field_key": new_field_key(name, index),
        }
        for index, name in enumerate(preview.header)
    ]


def _mapping_apply(contact_import: ContactImport, mapping: Any) -> None:
    """Validate the mapping against the stored file, create its new fields, store it.

    ``mapping`` is one target per column, or an object naming some columns (by header or
    position) whose others keep their guess (``contact_import_mapping_resolve``).
    """
    header = contact_import_preview(contact_import).header
    if isinstance(mapping, dict):
        mapping = contact_import_mapping_resolve(header, mapping)
    targets, new_fields = contact_import_mapping_clean(header, mapping)
    for new in new_fields:
        custom_field_create(key=new.key, label=new.label, type=new.type)
    contact_import.mapping = targets


def contact_import_create(
    mailing_list: MailingList,
    uploaded_file: UploadedFile,
    user: AbstractBaseUser | None = None,
    *,
    mapping: Any = None,
    review: bool = False,
    mode: str = ContactImport.Mode.ADD_UPDATE,
    left_policy: str = ContactImport.LeftPolicy.SKIP,
    enqueue: bool = True,
) -> ContactImport:
    """Store the upload and queue the import once the caller's transaction commits.

    With ``review`` the import waits in *mapping* until ``contact_import_confirm`` (the
    web page's flow); with a ``mapping`` (one target per column, see
    ``contact_import_mapping_clean``) it uses those columns instead of guessing from the
    header names. ``mode`` is one of ContactImport.Mode, ``left_policy`` one of
    ContactImport.LeftPolicy (what to do with contacts who left before). Without
    ``enqueue`` no task is sent: the caller runs ``contact_import_run`` itself (the
    management command does, to print progress). Raises ValidationError for files
    ``contact_import_validate_file`` refuses, an unknown mode or policy and a mapping that
    does not fit the file.
    """
    from contacts.tasks import contact_import_run_task

    contact_import_validate_file(uploaded_file)
    _mode_check(mode)
    _left_policy_check(left_policy)
    original_name = os.path.basename(uploaded_file.name or "")[:255]
    contact_import = ContactImport(
        mode=mode,
        left_policy=left_policy,
        mailing_list=mailing_list,
        original_name=original_name,
        created_by=user if user is not None and user.is_authenticated else None,
        status=ContactImport.Status.MAPPING if review else ContactImport.Status.QUEUED,
    )
    contact_import.file.save(original_name or "contacts.csv", uploaded_file, save=False)
    with transaction.atomic():
        if mapping is not None and not review:
            try:
                _mapping_apply(contact_import, mapping)
            except ValidationError:
                contact_import.file.delete(save=False)
                raise
        contact_import.save()
    if not review and enqueue:
        transaction.on_commit(lambda: contact_import_run_task.delay(contact_import.pk))
    return contact_import


def _mode_check(mode: str) -> None:
    if mode not in ContactImport.Mode.values:
        raise ValidationError(
            {
                "mode": _("The mode must be one of: %(modes)s.")
                % {"modes": ", ".join(ContactImport.Mode.values)}
            }
        )


def _left_policy_check(left_policy: str) -> None:
    if left_policy not in ContactImport.LeftPolicy.values:
        raise ValidationError(
            {
                "left_policy": _("The policy for contacts who left must be one of: %(values)s.")
                % {"values": ", ".join(ContactImport.LeftPolicy.values)}
            }
        )


def contact_import_confirm(
    contact_import: ContactImport,
    mapping: Any,
    *,
    mode: str | None = None,
    left_policy: str | None = None,
) -> ContactImport:
    """Store the chosen mapping (and mode, and policy for contacts who left) of an import
    waiting in *mapping* and queue it; a mode or policy left as None keeps the stored one.

    Creates the new custom fields the mapping asks for, in the same transaction, so a
    refused mapping leaves no field behind. Raises ValidationError for a bad mapping,
    mode or policy, or an import that is no longer waiting.
    """
    from contacts.tasks import contact_import_run_task

    if mode is not None:
        _mode_check(mode)
    if left_policy is not None:
        _left_policy_check(left_policy)
    with transaction.atomic():
        locked = ContactImport.objects.select_for_update().get(pk=contact_import.pk)
        if locked.status != ContactImport.Status.MAPPING:
            raise ValidationError(_("This import has already started."), code="started")
        _mapping_apply(locked, mapping)
        locked.status = ContactImport.Status.QUEUED
        if mode is not None:
            locked.mode = mode
        if left_policy is not None:
            locked.left_policy = left_policy
        locked.save(update_fields=["mapping", "status", "mode", "left_policy"])
        transaction.on_commit(lambda: contact_import_run_task.delay(locked.pk))
    return locked


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
    skipped_rows: list[dict[str, Any]] = field(default_factory=list)
    # The COPY path writes the file in one transaction: when it stops, nothing is written.
    all_or_nothing: bool = False

    def refuse(self, row: int, email: str, reason: str) -> None:
        self.refused += 1
        if len(self.refused_rows) < self.refused_rows_kept:
            self.refused_rows.append({"row": row, "email": email[:320], "reason": reason})

    def note_skipped(self, row: int, email: str, reason: str, *, updated: bool = False) -> None:
        """List a skipped row with its reason (the caller counts it).

        ``updated`` marks a contact who left before and whose details the row changed
        (LeftPolicy.UPDATE): counted as updated, listed here because it was not subscribed.
        """
        if len(self.skipped_rows) < self.refused_rows_kept:
            item: dict[str, Any] = {"row": row, "email": email[:320], "reason": reason}
            if updated:
                item["updated"] = True
            self.skipped_rows.append(item)

    def fields(self) -> dict[str, Any]:
        return {
            "rows_done": self.rows_done,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "refused": self.refused,
            "refused_rows": self.refused_rows,
            "skipped_rows": self.skipped_rows,
        }


def left_before_reason(policy: str = ContactImport.LeftPolicy.SKIP, changed: bool = False) -> str:
    """Why a row of someone who left before was not subscribed, under ``policy``."""
    if policy != ContactImport.LeftPolicy.UPDATE:
        return _("unsubscribed, bounced or complained before: not subscribed again")
    if changed:
        return _("unsubscribed, bounced or complained before: details updated, kept unsubscribed")
    return _("unsubscribed, bounced or complained before: nothing to update, kept unsubscribed")


def not_existing_reason() -> str:
    return _("not an existing contact (update only)")


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


def attributes_typer(
    fields: dict[str, CustomField],
) -> Callable[[dict[str, Any]], tuple[dict[str, Any], str | None]]:
    """A function typing a row's attributes: custom-field columns typed and stored under
    the field key, other columns as they are. It returns (attributes, None), or (_, reason)
    naming the first column with a bad value. Each field's cleaner is made once, here."""
    # The row's values are stripped and never empty (``importing.read_contacts``), so the
    # fields' parsers are called directly, without the emptiness test of their cleaners.
    parsers = {name: (field.key, custom_value_parser(field)) for name, field in fields.items()}

    def typed_attributes(attributes: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        if not parsers:
            return attributes, None
        typed: dict[str, Any] = {}
        for name, value in attributes.items():
            parser = parsers.get(name)
            if parser is None:
                typed[name] = value
                continue
            key, parse = parser
            try:
                typed[key] = parse(value)
            except ValueError:
                return {}, _("bad value for %(field)s") % {"field": key}
        return typed, None

    return typed_attributes


def _import_batch(
    mailing_list: MailingList,
    rows: list[importing.ParsedRow],
    tally: _Tally,
    fields: dict[str, CustomField] | None = None,
    mode: str = ContactImport.Mode.ADD_UPDATE,
    left_policy: str = ContactImport.LeftPolicy.SKIP,
) -> None:
    """Apply one batch of rows with a fixed number of queries, whatever its size.

    ``mode`` decides what happens to addresses: *add* leaves existing contacts' names and
    attributes alone, *update* creates no contact (unknown addresses are skipped, with the
    reason), *add_update* does both. In every mode a known, active contact joins the list.

    Rows of the same address are merged first, in file order (a later row's non-empty
    values win), and only the first of them is counted by outcome; the others count as
    *skipped*. An address the database lacks is *created*. An existing contact is
    *updated* when the merged row changes it (a name, an attribute, or joining the list)
    and *skipped* otherwise. Contacts who unsubscribed, bounced or complained (any status
    but active) are never added to the list and their status and subscriptions are never
    changed: with ``left_policy`` *skip* they are skipped and left untouched; with *update*
    their names and attributes are merged as an active contact's would be under ``mode``,
    and they count as *updated* when that changed something, *skipped* otherwise. Either
    way each of them is listed in ``skipped_rows`` with the reason. An address on the
    suppression list (itself or its domain) is *refused* with the reason "suppressed", so
    a blocklisted or erased person is never brought back by a file.
    """
    groups: dict[str, tuple[str, list[importing.ParsedRow]]] = {}
    type_attributes = attributes_typer(fields or {})
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
        row.attributes, reason = type_attributes(row.attributes)
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
        if contact is None and mode == ContactImport.Mode.UPDATE_ONLY:
            tally.skipped += 1
            tally.note_skipped(group[0].row, email, not_existing_reason())
            continue
        if contact is None:
            contact = Contact(email=email, attributes={})
            for row in group:
                _merge_row(contact, row)
            new_contacts.append(contact)
            subscribe.append(contact)
            tally.created += 1
            continue
        before = _snapshot(contact)
        if mode != ContactImport.Mode.ADD_ONLY and (
            contact.status == Contact.Status.ACTIVE
            or left_policy == ContactImport.LeftPolicy.UPDATE
        ):
            for row in group:
                _merge_row(contact, row)
        changed = _snapshot(contact) != before
        if contact.status != Contact.Status.ACTIVE:
            # Only the details: their status and subscriptions stay as they chose.
            if changed:
                changed_contacts.append(contact)
                tally.updated += 1
            else:
                tally.skipped += 1
            reason = left_before_reason(left_policy, changed)
            tally.note_skipped(group[0].row, email, reason, updated=changed)
            continue
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


class ImportCancelled(Exception):
    """Raised between batches once someone cancelled the running import."""


def contact_import_check_cancelled(import_id: int) -> None:
    """Raise ImportCancelled when the import's Cancel button was pressed (one query)."""
    if ContactImport.objects.filter(pk=import_id, cancel_requested=True).exists():
        raise ImportCancelled


def contact_import_cancel(contact_import: ContactImport) -> ContactImport:
    """Cancel an import that has not finished.

    One that waits (choosing columns, queued) is cancelled at once and never runs; a
    running one is flagged, and the importer stops at its next batch boundary, keeping
    the batches already committed. Raises ValidationError once it has ended.
    """
    now = timezone.now()
    waiting = ContactImport.objects.filter(
        pk=contact_import.pk,
        status__in=[ContactImport.Status.MAPPING, ContactImport.Status.QUEUED],
    ).update(status=ContactImport.Status.CANCELLED, cancel_requested=True, finished_at=now)
    if not waiting:
        running = ContactImport.objects.filter(
            pk=contact_import.pk, status=ContactImport.Status.RUNNING
        ).update(cancel_requested=True)
        if not running:
            raise ValidationError(
                _("This import has already ended; there is nothing to cancel."), code="ended"
            )
    contact_import.refresh_from_db()
    return contact_import


def _contact_import_fail(import_id: int, message: str) -> None:
    ContactImport.objects.filter(pk=import_id).update(
        status=ContactImport.Status.FAILED, error=message, finished_at=timezone.now()
    )


# Called with (rows done, rows in the file) after each committed batch.
ProgressCallback = Callable[[int, int], None]


# Advisory lock class of a running import (the second key is the import's id): held by
# the database session of the process running it, so it dies with that process.
IMPORT_RUN_LOCK = 0x4D43


def _run_lock(import_id: int, take: bool) -> bool:
    """Take (without waiting) or release the import's run lock; True off PostgreSQL."""
    if connection.vendor != "postgresql":
        return True
    function = "pg_try_advisory_lock" if take else "pg_advisory_unlock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [IMPORT_RUN_LOCK, import_id])
        return bool(cursor.fetchone()[0])


def _claim(import_id: int) -> bool:
    """Queued → running; on PostgreSQL also running → running when its run lock is free,
    that is when the process that ran it died (a killed worker: Celery delivers the task
    again, or ``contact_imports_recover`` sends it). Holds the run lock when True."""
    if not _run_lock(import_id, take=True):
        return False
    statuses = [ContactImport.Status.QUEUED]
    if connection.vendor == "postgresql":
        statuses.append(ContactImport.Status.RUNNING)
    claimed = ContactImport.objects.filter(pk=import_id, status__in=statuses).update(
        status=ContactImport.Status.RUNNING,
        started_at=timezone.now(),
        rows_done=0,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        _run_lock(import_id, take=False)
    return bool(claimed)


# A file whose import kills its worker (memory, say) is not tried for ever.
MAX_ATTEMPTS = 3


def contact_imports_recover() -> list[int]:
    """Send again the imports left running by a process that died; their ids.

    PostgreSQL only: a running import whose run lock nobody holds has no process behind
    it. Running it again is safe: a COPY import wrote nothing (one transaction), a
    batch import's committed batches are found as they are. After MAX_ATTEMPTS starts
    the import is failed instead, with a message saying so.
    """
    if connection.vendor != "postgresql":
        return []
    from contacts.tasks import contact_import_run_task

    orphans = []
    running = ContactImport.objects.filter(status=ContactImport.Status.RUNNING)
    for import_id, attempts, rows_total in running.values_list("pk", "attempts", "rows_total"):
        if not _run_lock(import_id, take=True):
            continue
        try:
            if attempts >= MAX_ATTEMPTS:
                log.error("Contact import %s lost its worker %s times; failed", import_id, attempts)
                if rows_total >= conf.import_copy_min_rows():  # the COPY path: all or nothing
                    message = _(
                        "The worker running this import stopped %(n)s times before it ended "
                        "(out of memory, or the machine restarted). Nothing from this file "
                        "was imported; importing it again is safe."
                    )
                else:
                    message = _(
                        "The worker running this import stopped %(n)s times before it ended "
                        "(out of memory, or the machine restarted). The rows before the "
                        "stop were imported; importing the file again is safe."
                    )
                _contact_import_fail(import_id, message % {"n": attempts})
                continue
        finally:
            _run_lock(import_id, take=False)
        orphans.append(import_id)
        log.warning("Contact import %s lost its worker; running it again", import_id)
        contact_import_run_task.delay(import_id)
    return orphans


def contact_import_run(import_id: int, on_progress: ProgressCallback | None = None) -> None:
    """Import the file of a queued ContactImport into its list.

    Claims the import (queued → running, see ``_claim``) so a duplicate task does
    nothing; validates the whole file before writing (encoding, CSV structure, an email
    column), then writes in batches, each in its own transaction together with the
    import's counters, so the progress shown is always what is committed. Ends done or
    failed with ``error`` set, never left running by an exception. Importing the same
    file again changes nothing.
    """
    if not _claim(import_id):
        log.info("Contact import %s is not queued; nothing to do.", import_id)
        return
    try:
        _contact_import_run(import_id, on_progress)
    finally:
        _run_lock(import_id, take=False)


def _contact_import_run(import_id: int, on_progress: ProgressCallback | None) -> None:
    contact_import = ContactImport.objects.select_related("mailing_list").get(pk=import_id)
    tally = _Tally(refused_rows_kept=conf.import_refused_rows_kept())
    try:
        _contact_import_execute(contact_import, tally, on_progress)
    except ImportCancelled:
        ContactImport.objects.filter(pk=import_id).update(
            **tally.fields(), status=ContactImport.Status.CANCELLED, finished_at=timezone.now()
        )
    except importing.ImportFileError as exc:
        _contact_import_fail(import_id, str(exc))
    except FileNotFoundError:
        log.exception("Contact import %s: the uploaded file is missing", import_id)
        _contact_import_fail(
            import_id, _("The uploaded file is missing from storage. Upload it again.")
        )
    except Exception as exc:
        log.exception("Contact import %s failed", import_id)
        if tally.all_or_nothing:
            message = _(
                "The import stopped after %(done)s rows because of an unexpected error: "
                "%(error)s. Nothing from this file was imported; importing it again is safe."
            )
        else:
            message = _(
                "The import stopped after %(done)s rows because of an unexpected error: "
                "%(error)s. The rows before it were imported; importing the file again is safe."
            )
        _contact_import_fail(import_id, message % {"done": tally.rows_done, "error": exc})


def _contact_import_execute(
    contact_import: ContactImport, tally: _Tally, on_progress: ProgressCallback | None = None
) -> None:
    storage, name = contact_import.file.storage, contact_import.file.name

    def open_file() -> Any:
        return storage.open(name, "rb")

    if contact_import.mapping:
        columns, keys = _columns_from_mapping(contact_import.mapping)
        info = importing.inspect_csv(open_file, columns)
        by_key = custom_fields_by_key()
        fields = {key: by_key[key] for key in keys if key in by_key}
    else:
        info = importing.inspect_csv(open_file)
        fields = header_fields(info.header)
    ContactImport.objects.filter(pk=contact_import.pk).update(rows_total=info.rows_total)
    if connection.vendor == "postgresql" and info.rows_total >= conf.import_copy_min_rows():
        from contacts.services.bulk_import import contact_import_copy

        tally.all_or_nothing = True
        contact_import_copy(
            contact_import,
            tally,
            open_file,
            info,
            fields,
            contact_import.mode,
            contact_import.left_policy,
            on_progress=on_progress,
        )
        _contact_import_finish(contact_import.pk, tally)
        return
    batch_size = conf.import_batch_size()
    batch: list[importing.ParsedRow] = []

    def flush() -> None:
        contact_import_check_cancelled(contact_import.pk)
        with transaction.atomic():
            _import_batch(
                contact_import.mailing_list,
                batch,
                tally,
                fields,
                contact_import.mode,
                contact_import.left_policy,
            )
            ContactImport.objects.filter(pk=contact_import.pk).update(**tally.fields())
        batch.clear()
        if on_progress is not None:
            on_progress(tally.rows_done, info.rows_total)

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
