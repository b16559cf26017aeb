"""Settings the contacts app reads, each with its default; read them through this module only.

They are functions rather than constants so that a test's ``settings`` override applies.
"""

from __future__ import annotations

from django.conf import settings

# 50 MB of CSV is roughly a million contacts; larger files belong to a COPY-based bulk path.
DEFAULT_IMPORT_MAX_BYTES = 50 * 1024 * 1024
# Big enough that per-batch overhead is small, small enough that a batch's IN (...) lists
# stay far below SQLite's variable limit and one transaction stays short.
DEFAULT_IMPORT_BATCH_SIZE = 1000
# refused_rows lives in one JSON column; a file of garbage must not make it megabytes long.
DEFAULT_IMPORT_REFUSED_ROWS_KEPT = 1000


def import_max_bytes() -> int:
    """Largest CSV upload accepted (``MAILCENTER_IMPORT_MAX_BYTES``)."""
    return int(getattr(settings, "MAILCENTER_IMPORT_MAX_BYTES", DEFAULT_IMPORT_MAX_BYTES))


def import_batch_size() -> int:
    """Rows written per transaction by the importer (``MAILCENTER_IMPORT_BATCH_SIZE``)."""
    return int(getattr(settings, "MAILCENTER_IMPORT_BATCH_SIZE", DEFAULT_IMPORT_BATCH_SIZE))


def import_refused_rows_kept() -> int:
    """How many refused rows an import lists (``MAILCENTER_IMPORT_REFUSED_ROWS_KEPT``)."""
    return int(
        getattr(settings, "MAILCENTER_IMPORT_REFUSED_ROWS_KEPT", DEFAULT_IMPORT_REFUSED_ROWS_KEPT)
    )
