"""Settings the tracking app reads, each with its default; read them through this module only.

Each is taken from Django settings when a test (or settings.py) sets it, else from the
environment variable of the same name, else the default. They are functions so that a
test's ``settings`` override applies.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Three soft bounces in two weeks: a mailbox that is full for that long is abandoned, and
# a single full-mailbox day does not lose a subscriber.
DEFAULT_SOFT_BOUNCE_LIMIT = 3
DEFAULT_SOFT_BOUNCE_WINDOW_DAYS = 14
# Where bounce_server listens; loopback, because a public MX belongs in front of it.
DEFAULT_BOUNCE_SERVER_HOST = "127.0.0.1"
DEFAULT_BOUNCE_SERVER_PORT = 2525
# Largest returned message read; a DSN with the full original attached is well under this.
DEFAULT_BOUNCE_MAX_BYTES = 10 * 1024 * 1024


def _value(name: str, default: str) -> str:
    if hasattr(settings, name):
        return str(getattr(settings, name))
    return os.environ.get(name, default)


def _int(name: str, default: int) -> int:
    raw = _value(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None


def soft_bounce_limit() -> int:
    """Soft bounces within the window that suppress an address
    (``MAILCENTER_SOFT_BOUNCE_LIMIT``)."""
    return max(1, _int("MAILCENTER_SOFT_BOUNCE_LIMIT", DEFAULT_SOFT_BOUNCE_LIMIT))


def soft_bounce_window_days() -> int:
    """The window, in days, soft bounces are counted in
    (``MAILCENTER_SOFT_BOUNCE_WINDOW_DAYS``)."""
    return max(1, _int("MAILCENTER_SOFT_BOUNCE_WINDOW_DAYS", DEFAULT_SOFT_BOUNCE_WINDOW_DAYS))


def bounce_server_host() -> str:
    """Address bounce_server binds (``MAILCENTER_BOUNCE_SERVER_HOST``)."""
    return _value("MAILCENTER_BOUNCE_SERVER_HOST", DEFAULT_BOUNCE_SERVER_HOST)


def bounce_server_port() -> int:
    """Port bounce_server listens on (``MAILCENTER_BOUNCE_SERVER_PORT``)."""
    return _int("MAILCENTER_BOUNCE_SERVER_PORT", DEFAULT_BOUNCE_SERVER_PORT)


def bounce_max_bytes() -> int:
    """Largest message bounce_server accepts (``MAILCENTER_BOUNCE_MAX_BYTES``)."""
    return _int("MAILCENTER_BOUNCE_MAX_BYTES", DEFAULT_BOUNCE_MAX_BYTES)


def bounce_domain() -> str:
    """Domain of the VERP and mailto-unsubscribe addresses (``MAILCENTER_BOUNCE_DOMAIN``)."""
    return str(settings.MAILCENTER_BOUNCE_DOMAIN).lower()


# A person needs more than this to receive, open and read a message before clicking.
DEFAULT_SCANNER_SECONDS = 10
IP_MODES = ("full", "truncated", "none")


def tracking_enabled() -> bool:
    """Opens and clicks are tracked at all (``MAILCENTER_TRACKING``: on/off)."""
    raw = _value("MAILCENTER_TRACKING", "on").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"MAILCENTER_TRACKING must be on or off, not {raw!r}.")


def ip_mode() -> str:
    """How much of a reader's IP address is stored (``MAILCENTER_TRACKING_IP``)."""
    raw = _value("MAILCENTER_TRACKING_IP", "truncated").strip().lower()
    if raw not in IP_MODES:
        raise ImproperlyConfigured(
            f"MAILCENTER_TRACKING_IP must be one of {', '.join(IP_MODES)}, not {raw!r}."
        )
    return raw


def scanner_seconds() -> int:
    """Clicks sooner than this after delivery, before any open, are a scanner's
    (``MAILCENTER_SCANNER_SECONDS``)."""
    return max(0, _int("MAILCENTER_SCANNER_SECONDS", DEFAULT_SCANNER_SECONDS))


# Hits moved from the queue and written per transaction by the writer.
DEFAULT_WRITER_BATCH = 5000


def tracking_queue_url() -> str | None:
    """Where the pixel and the redirect queue their hits (``MAILCENTER_TRACKING_QUEUE``):
    ``auto`` (the default) uses Redis when ``CELERY_BROKER_URL`` is a redis:// URL,
    ``direct`` writes each hit to the database in the request, and a redis:// URL names a
    Redis of its own. None means direct."""
    raw = _value("MAILCENTER_TRACKING_QUEUE", "auto").strip()
    if raw == "direct":
        return None
    if raw == "auto":
        broker = str(getattr(settings, "CELERY_BROKER_URL", "") or "")
        return broker if broker.startswith(("redis://", "rediss://")) else None
    if raw.startswith(("redis://", "rediss://")):
        return raw
    raise ImproperlyConfigured(
        f"MAILCENTER_TRACKING_QUEUE must be auto, direct or a redis:// URL, not {raw!r}."
    )


def tracking_queue_prefix() -> str:
    """Prefix of the queue's Redis keys (``MAILCENTER_TRACKING_QUEUE_PREFIX``)."""
    return _value("MAILCENTER_TRACKING_QUEUE_PREFIX", "mailcenter:tracking")


def writer_batch() -> int:
    """Hits per writer transaction (``MAILCENTER_TRACKING_WRITER_BATCH``)."""
    return max(1, _int("MAILCENTER_TRACKING_WRITER_BATCH", DEFAULT_WRITER_BATCH))


# The bounce mailbox (tracking.mailbox): off unless a URL is given.
BOUNCE_IMAP_ACTIONS = ("move", "delete")
DEFAULT_BOUNCE_IMAP_FOLDER = "Processed"
DEFAULT_BOUNCE_IMAP_INTERVAL = 60
# Messages fetched and then moved together; a pass reads at most a few batches, so a
# flooded mailbox is emptied by several short passes rather than one that never ends.
DEFAULT_BOUNCE_IMAP_BATCH = 50
DEFAULT_BOUNCE_IMAP_MAX_PER_PASS = 500
DEFAULT_BOUNCE_IMAP_TIMEOUT = 30


def bounce_imap_url() -> str:
    """The bounce mailbox, ``imaps://user:password@host:993/INBOX`` or ``imap://…`` with
    STARTTLS (``MAILCENTER_BOUNCE_IMAP_URL``); empty: no mailbox is polled."""
    return _value("MAILCENTER_BOUNCE_IMAP_URL", "").strip()


def bounce_imap_action() -> str:
    """What is done with a processed message (``MAILCENTER_BOUNCE_IMAP_ACTION``): ``move``
    (marked seen and moved to the processed folder) or ``delete``."""
    raw = _value("MAILCENTER_BOUNCE_IMAP_ACTION", "move").strip().lower()
    if raw not in BOUNCE_IMAP_ACTIONS:
        raise ImproperlyConfigured(
            f"MAILCENTER_BOUNCE_IMAP_ACTION must be move or delete, not {raw!r}."
        )
    return raw


def bounce_imap_folder() -> str:
    """Folder processed messages are moved to, created when missing
    (``MAILCENTER_BOUNCE_IMAP_FOLDER``)."""
    return _value("MAILCENTER_BOUNCE_IMAP_FOLDER", DEFAULT_BOUNCE_IMAP_FOLDER).strip()


def bounce_imap_interval() -> int:
    """Seconds between two polls of the mailbox (``MAILCENTER_BOUNCE_IMAP_INTERVAL``)."""
    return max(5, _int("MAILCENTER_BOUNCE_IMAP_INTERVAL", DEFAULT_BOUNCE_IMAP_INTERVAL))


def bounce_imap_batch() -> int:
    """Messages per fetch-and-move batch (``MAILCENTER_BOUNCE_IMAP_BATCH``)."""
    return max(1, _int("MAILCENTER_BOUNCE_IMAP_BATCH", DEFAULT_BOUNCE_IMAP_BATCH))


def bounce_imap_max_per_pass() -> int:
    """Messages read by one poll at most (``MAILCENTER_BOUNCE_IMAP_MAX_PER_PASS``)."""
    return max(1, _int("MAILCENTER_BOUNCE_IMAP_MAX_PER_PASS", DEFAULT_BOUNCE_IMAP_MAX_PER_PASS))


def bounce_imap_ca_file() -> str:
    """A CA bundle to trust for the mailbox's certificate (``MAILCENTER_BOUNCE_IMAP_CA_FILE``);
    empty: the system's."""
    return _value("MAILCENTER_BOUNCE_IMAP_CA_FILE", "").strip()


def bounce_imap_timeout() -> int:
    """Seconds to wait for the IMAP server (``MAILCENTER_BOUNCE_IMAP_TIMEOUT``)."""
    return max(1, _int("MAILCENTER_BOUNCE_IMAP_TIMEOUT", DEFAULT_BOUNCE_IMAP_TIMEOUT))
