"""Settings the sending-domains code reads, each with its default; read them only here.

Functions rather than constants, so that a test's ``settings`` override applies.
"""

from __future__ import annotations

from django.conf import settings

# Seconds a worker keeps its view of which keys are active before asking the database
# again: signing must not cost a query per message, and a key activated or deleted in the
# UI reaches every worker within this time.
DEFAULT_DKIM_CACHE_SECONDS = 60
# A DNS check is interactive (a page waits for it): fail fast rather than hang the page.
DEFAULT_DNS_TIMEOUT = 3.0


def dkim_key_secrets() -> list[str]:
    """Secrets that encrypt DKIM private keys at rest (``MAILCENTER_DKIM_KEY_SECRET``).

    Comma-separated; the first encrypts, all of them decrypt, so the secret can be rotated
    by putting the new one first. Falls back to ``SECRET_KEY`` when unset.
    """
    raw = getattr(settings, "MAILCENTER_DKIM_KEY_SECRET", "") or ""
    secrets = [part.strip() for part in raw.split(",") if part.strip()]
    return secrets or [settings.SECRET_KEY]


def dkim_cache_seconds() -> float:
    """``MAILCENTER_DKIM_CACHE_SECONDS``: how stale a worker's list of active keys may be."""
    return float(getattr(settings, "MAILCENTER_DKIM_CACHE_SECONDS", DEFAULT_DKIM_CACHE_SECONDS))


def dns_resolver_address() -> str:
    """``MAILCENTER_DNS_RESOLVER``: ``host[:port][,host[:port]...]``; empty = the system's."""
    return str(getattr(settings, "MAILCENTER_DNS_RESOLVER", "") or "")


def dns_timeout() -> float:
    """``MAILCENTER_DNS_TIMEOUT``: seconds a DNS check may take in all."""
    return float(getattr(settings, "MAILCENTER_DNS_TIMEOUT", DEFAULT_DNS_TIMEOUT))
