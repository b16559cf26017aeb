"""Settings the senders code reads, each with its default; read them only here."""

from __future__ import annotations

from django.conf import settings

# Seconds a process keeps its copy of the senders defined in the UI before reading them
# again: resolving a sender must not cost a query per batch, and a sender created, edited
# or deleted in the UI reaches every worker within this time (no restart needed).
DEFAULT_SENDERS_CACHE_SECONDS = 30
# "Test connection" runs while a page waits: never longer than this, whatever the
# sender's own timeout.
DEFAULT_SENDER_TEST_TIMEOUT = 10.0


def configured_senders() -> dict[str, dict]:
    """``MAILCENTER_SENDERS``: the senders from configuration, which the UI cannot change."""
    return dict(getattr(settings, "MAILCENTER_SENDERS", {}) or {})


def senders_cache_seconds() -> float:
    """``MAILCENTER_SENDERS_CACHE_SECONDS``: how stale a process's UI senders may be."""
    return float(
        getattr(settings, "MAILCENTER_SENDERS_CACHE_SECONDS", DEFAULT_SENDERS_CACHE_SECONDS)
    )


def sender_test_timeout() -> float:
    """``MAILCENTER_SENDER_TEST_TIMEOUT``: the longest a connection test may take."""
    return float(getattr(settings, "MAILCENTER_SENDER_TEST_TIMEOUT", DEFAULT_SENDER_TEST_TIMEOUT))
