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


# A family behind one NAT can sign up a few people; a bot cannot sign up thousands.
DEFAULT_SIGNUP_LIMIT_PER_IP = 20
# Sign-ups of one address an hour (list bombing: many forms filled with a victim's address).
DEFAULT_SIGNUP_LIMIT_PER_ADDRESS = 5
DEFAULT_SIGNUP_CONFIRM_MAX_AGE = 7 * 24 * 3600


def signup_limit_per_ip() -> int:
    """Sign-ups accepted per IP address an hour (``MAILCENTER_SIGNUP_LIMIT_PER_IP``)."""
    return int(getattr(settings, "MAILCENTER_SIGNUP_LIMIT_PER_IP", DEFAULT_SIGNUP_LIMIT_PER_IP))


def signup_limit_per_address() -> int:
    """Sign-ups accepted per email address an hour (``MAILCENTER_SIGNUP_LIMIT_PER_ADDRESS``)."""
    return int(
        getattr(settings, "MAILCENTER_SIGNUP_LIMIT_PER_ADDRESS", DEFAULT_SIGNUP_LIMIT_PER_ADDRESS)
    )


def signup_confirm_max_age() -> int:
    """Seconds a confirmation link stays valid (``MAILCENTER_SIGNUP_CONFIRM_MAX_AGE``)."""
    return int(
        getattr(settings, "MAILCENTER_SIGNUP_CONFIRM_MAX_AGE", DEFAULT_SIGNUP_CONFIRM_MAX_AGE)
    )


# Below this many rows the batch path is as fast and reports progress batch by batch.
DEFAULT_IMPORT_COPY_MIN_ROWS = 5000


def import_copy_min_rows() -> int:
    """Files with at least this many rows go through the PostgreSQL COPY path
    (``MAILCENTER_IMPORT_COPY_MIN_ROWS``)."""
    return int(getattr(settings, "MAILCENTER_IMPORT_COPY_MIN_ROWS", DEFAULT_IMPORT_COPY_MIN_ROWS))


# Below this many rows, keeping the custom-field indexes up to date row by row costs less
# than building them again (and nobody's segments lose their indexes for a small file).
DEFAULT_IMPORT_INDEXES_ASIDE_MIN_ROWS = 100_000


def import_indexes_aside_min_rows() -> int:
    """An import of at least this many rows (and at least as many as there are contacts)
    drops the custom-field indexes and builds them again at its end
    (``MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS``)."""
    return int(
        getattr(
            settings,
            "MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS",
            DEFAULT_IMPORT_INDEXES_ASIDE_MIN_ROWS,
        )
    )
