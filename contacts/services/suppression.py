"""Writes for the suppression list: addresses and domains no campaign is sent to."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.translation import gettext as _

from contacts import conf, importing
from contacts.models import Suppression
from contacts.services.contacts import normalize_email

# A host name: labels of letters, digits and hyphens (IDNs are stored as punycode).
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
IMPORT_BATCH = 1000


def suppression_clean_value(raw: str) -> tuple[str, str]:
    """Return (kind, value) for an address or a domain; raise ValidationError otherwise.

    An address is validated like a contact's and lower-cased whole; a domain (``@`` in
    front is allowed, as in ``@example.com``) lower-cased, an IDN turned into punycode.
    """
    text = (raw or "").strip()
    if not text:
        raise ValidationError({"value": _("Enter an address or a domain.")})
    if "@" in text.lstrip("@"):
        try:
            return Suppression.Kind.EMAIL, normalize_email(text).lower()
        except ValidationError as exc:
            raise ValidationError({"value": exc.messages}) from None
    domain = text.lstrip("@").rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = ""
    if not DOMAIN_RE.match(domain):
        raise ValidationError(
            {
                "value": _("“%(value)s” is neither an email address nor a domain.")
                % {"value": text[:100]}
            }
        )
    return Suppression.Kind.DOMAIN, domain


def _clean_reason(reason: str) -> str:
    if reason not in Suppression.Reason.values:
        raise ValidationError(
            {
                "reason": _("The reason must be one of: %(reasons)s.")
                % {"reasons": ", ".join(Suppression.Reason.values)}
            }
        )
    return reason


def suppression_add(value: str, reason: str = Suppression.Reason.MANUAL) -> Suppression:
    """Suppress an address or a domain. Adding one already listed returns the entry as it
    is (its first reason and date are kept). Raises ValidationError for a bad value."""
    kind, clean = suppression_clean_value(value)
    entry, _created = Suppression.objects.get_or_create(
        kind=kind, value=clean, defaults={"reason": _clean_reason(reason)}
    )
    return entry


def suppression_add_many(
    emails: Iterable[str], reason: str = Suppression.Reason.UNSUBSCRIBE
) -> None:
    """Suppress already-normalised addresses in one statement (for the preference centre,
    erasure and other services); entries that exist are left alone."""
    Suppression.objects.bulk_create(
        [Suppression(kind=Suppression.Kind.EMAIL, value=e.lower(), reason=reason) for e in emails],
        ignore_conflicts=True,
    )


def suppression_remove(entry: Suppression) -> None:
    """Take an entry off the list. A contact whose *status* says unsubscribed, bounced or
    complained stays suppressed: that is their decision or their mailbox's."""
    entry.delete()


@dataclass
class SuppressionImportResult:
    added: int = 0
    already: int = 0
    invalid: int = 0
    invalid_samples: list[str] | None = None


def suppression_import(
    uploaded_file: UploadedFile, reason: str = Suppression.Reason.IMPORT
) -> SuppressionImportResult:
    """Add every address or domain of a CSV or plain list (one per line, first column).

    Streams the file in batches; a header row and blank lines are skipped, other values
    that are neither an address nor a domain are counted as invalid. Raises
    ValidationError for a file that is too large or not text.
    """
    reason = _clean_reason(reason)
    size = uploaded_file.size or 0
    if size == 0:
        raise ValidationError(_("The file is empty."))
    if size > conf.import_max_bytes():
        raise ValidationError(_("The file is too large."))
    uploaded_file.seek(0)
    head = uploaded_file.read(importing.HEAD_BYTES)
    uploaded_file.seek(0)
    try:
        encoding = importing.detect_encoding(head)
        sample = codecs.getincrementaldecoder(encoding)().decode(head[: importing.SNIFF_CHARS])
    except (importing.ImportFileError, UnicodeDecodeError):
        raise ValidationError(
            _("The file is not UTF-8 text. Save it as “CSV UTF-8” and upload it again.")
        ) from None
    delimiter = importing.sniff_delimiter(sample)
    result = SuppressionImportResult(invalid_samples=[])
    batch: dict[tuple[str, str], None] = {}

    def flush() -> None:
        if not batch:
            return
        keys = list(batch)
        with transaction.atomic():
            existing = set(
                Suppression.objects.filter(value__in=[v for _k, v in keys]).values_list(
                    "kind", "value"
                )
            )
            new = [
                Suppression(kind=k, value=v, reason=reason)
                for k, v in keys
                if (k, v) not in existing
            ]
            Suppression.objects.bulk_create(new, ignore_conflicts=True)
        result.added += len(new)
        result.already += len(keys) - len(new)
        batch.clear()

    text = io.TextIOWrapper(uploaded_file, encoding=encoding, errors="strict", newline="")
    try:
        for number, cells in enumerate(csv.reader(text, delimiter=delimiter), start=1):
            cell = next((c.strip() for c in cells if c.strip()), "")
            if not cell:
                continue
            try:
                kind, value = suppression_clean_value(cell)
            except ValidationError:
                # A header ("email", "Email Address") is not an error.
                if number == 1 and importing.header_key(cell) in importing.EMAIL_HEADERS | {
                    "domain",
                    "value",
                }:
                    continue
                result.invalid += 1
                if len(result.invalid_samples) < 10:
                    result.invalid_samples.append(cell[:100])
                continue
            batch[(kind, value)] = None
            if len(batch) >= IMPORT_BATCH:
                flush()
        flush()
    except (UnicodeDecodeError, csv.Error):
        raise ValidationError(
            _(
                "The file could not be read after %(count)s entries were added: it is not "
                "UTF-8 text or not valid CSV."
            )
            % {"count": result.added}
        ) from None
    finally:
        text.detach()
    return result
