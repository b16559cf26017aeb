"""Pluggable delivery backends, chosen by name from ``MAILCENTER_SENDERS``."""

from __future__ import annotations

from django.conf import settings
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
    return list(settings.MAILCENTER_SENDERS)


def get_backend(alias: str = "default") -> BaseBackend:
    """Build the backend configured under ``alias``; raise ``UnknownSender`` if none is."""
    try:
        config = settings.MAILCENTER_SENDERS[alias]
    except KeyError:
        raise UnknownSender(alias) from None
    name = config.get("BACKEND", "outbox")
    path = BACKENDS.get(name, name)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise UnknownSender(f"{alias}: backend {name!r} not found") from exc
    return cls(alias, **config.get("OPTIONS", {}))
