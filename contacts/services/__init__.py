"""Writes for contacts and lists: creating and editing them, and importing CSV files.

Two rules hold everywhere here. An address is stored with its domain lower-cased and is
unique regardless of case (``normalize_email``). Nothing here ever brings back someone who
left: a contact that unsubscribed, bounced or complained is not made active again, and a
subscription the person ended is not switched back on.

``contacts.py`` holds addresses, lists and contacts; ``imports.py`` the CSV importer. Import
the public functions from here.
"""

from __future__ import annotations

from contacts.services.contacts import (
    SUPPRESSED_STATUSES,
    contact_create,
    contact_delete,
    contact_update,
    mailing_list_create,
    mailing_list_delete,
    mailing_list_update,
    normalize_email,
)
from contacts.services.imports import (
    contact_import_cancel,
    contact_import_columns,
    contact_import_confirm,
    contact_import_create,
    contact_import_preview,
    contact_import_run,
    contact_import_validate_file,
)
from contacts.services.segments import (
    campaign_audience_set,
    segment_create,
    segment_delete,
    segment_update,
)

__all__ = [
    "SUPPRESSED_STATUSES",
    "campaign_audience_set",
    "contact_create",
    "contact_delete",
    "contact_import_cancel",
    "contact_import_columns",
    "contact_import_confirm",
    "contact_import_create",
    "contact_import_preview",
    "contact_import_run",
    "contact_import_validate_file",
    "contact_update",
    "mailing_list_create",
    "mailing_list_delete",
    "mailing_list_update",
    "normalize_email",
    "segment_create",
    "segment_delete",
    "segment_update",
]
