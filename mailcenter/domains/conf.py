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
    """Secrets that encrypt DKIM private keys at rest; see ``mailcenter.crypto``."""
    from mailcenter.crypto import encryption_secrets

    return encryption_secrets()


def dkim_cache_seconds() -> float:
    """``MAILCENTER_DKIM_CACHE_SECONDS``: how stale a worker's list of active keys may be."""
    return float(getattr(settings, "MAILCENTER_DKIM_CACHE_SECONDS", DEFAULT_DKIM_CACHE_SECONDS))


def dns_resolver_address() -> str:
    """``MAILCENTER_DNS_RESOLVER``: ``host[:port][,host[:port]...]``; empty = the system's."""
    return str(getattr(settings, "MAILCENTER_DNS_RESOLVER", "") or "")


def dns_timeout() -> float:
    """``MAILCENTER_DNS_TIMEOUT``: seconds a DNS check may take in all."""
    return float(getattr(settings, "MAILCENTER_DNS_TIMEOUT", DEFAULT_DNS_TIMEOUT))
