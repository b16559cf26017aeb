"""The delivery contract: a batch of rendered messages in, one result per message out.

Backends are context managers (``with get_backend("default") as b: b.send_batch(...)``) so
a connection is held across a batch and always closed. They never raise for a single
message's failure: that is a result. They raise ``DeliveryError`` only when the whole
batch could not be attempted; the caller then treats every message in it as deferred.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


def enhanced_status(reply: bytes | str) -> str:
    """The RFC 3463 enhanced status code a reply starts with (``5.1.1``), or ""."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    match = _ENHANCED.match(text)
    return match.group(1) if match else ""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """What a backend needs to deliver one message.

    ``raw`` is the final RFC 5322 bytes (what SMTP-speaking backends send); ESP backends use
    the parts instead.
    """

    ref: str
    recipient: str
    return_path: str
    from_email: str
    subject: str
    raw: bytes
    headers: dict[str, str] = field(default_factory=dict)
    html: str = ""
    text: str = ""


@dataclass(frozen=True, slots=True)
class Accepted:
    """The server or ESP took the message. ``message_id`` is the ESP's id for it (what its
    webhooks name the message by); empty for SMTP."""

    ref: str
    code: int = 250
    reply: str = ""
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class Deferred:
    """A transient failure (4xx, connection trouble): try again later."""

    ref: str
    code: int | None
    reply: str
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A permanent failure (5xx): never retried."""

    ref: str
    code: int
    reply: str
    enhanced_status: str = ""


Result = Accepted | Deferred | Rejected


class DeliveryError(Exception):
    """The batch as a whole could not be attempted (misconfiguration, server unreachable)."""


class BaseBackend:
    """Open a session, send batches, close it. Subclasses fill in the three hooks."""

    def __init__(self, alias: str, **options: Any) -> None:
        self.alias = alias
        self.options = options

    def open(self) -> None:
        """Open the session (connection, login). Idempotent."""

    def close(self) -> None:
        """Close the session. Idempotent; never raises."""

    def send_batch(self, messages: list[OutgoingMessage]) -> list[Result]:
        raise NotImplementedError

    def __enter__(self) -> BaseBackend:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
