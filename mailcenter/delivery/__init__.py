"""Pluggable delivery backends, chosen by name: a sender of ``MAILCENTER_SENDERS`` or one
defined in Settings → Senders (``mailcenter.senders``)."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from mailcenter.delivery.base import (
    Accepted,
    BaseBackend,
    Deferred,
    DeliveryError,
    OutgoingMessage,
    Rejected,
    Result,
    enhanced_status,
)

__all__ = [
    "Accepted",
    "BaseBackend",
    "Deferred",
    "DeliveryError",
    "OutgoingMessage",
    "Rejected",
    "Result",
    "UnknownSender",
    "enhanced_status",
    "get_backend",
    "sender_config",
    "sender_names",
]

BACKENDS = {
    "outbox": "mailcenter.delivery.outbox.OutboxBackend",
    "smtp": "mailcenter.delivery.smtp.SMTPBackend",
    "mx": "mailcenter.delivery.mx.MXBackend",
    "anymail": "mailcenter.delivery.anymail.AnymailBackend",
}


class UnknownSender(LookupError):
    pass


def sender_names() -> list[str]:
    """Every alias a campaign can use: the configuration's, then the UI's."""
    from mailcenter.senders.selectors import sender_aliases

    return sender_aliases()


def sender_config(alias: str) -> dict[str, Any] | None:
    """``{"BACKEND": ..., "OPTIONS": {...}}`` for ``alias``, or None. Holds secrets."""
    from mailcenter.crypto import SecretUnavailable
    from mailcenter.senders.selectors import sender_config as resolve

    try:
        return resolve(alias)
    except SecretUnavailable:
        raise UnknownSender(f"{alias}: its password or API key cannot be decrypted") from None


def get_backend(alias: str = "default") -> BaseBackend:
    """Build the backend configured under ``alias``; raise ``UnknownSender`` if none is.

    Settings senders cost no query; UI senders are read through a per-process cache of
    ``MAILCENTER_SENDERS_CACHE_SECONDS``, so a change in the UI reaches running workers
    without a restart.
    """
    config = sender_config(alias)
    if config is None:
        raise UnknownSender(alias)
    name = config.get("BACKEND", "outbox")
    path = BACKENDS.get(name, name)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise UnknownSender(f"{alias}: backend {name!r} not found") from exc
    return cls(alias, **config.get("OPTIONS", {}))
