"""The delivery contract: a batch of rendered messages in, one result per message out.

Backends are context managers (``with get_backend("default") as b: b.send_batch(...)``) so
a connection is held across a batch and always closed. They never raise for a single
message's failure: that is a result. They raise ``DeliveryError`` only when the whole
batch could not be attempted; the caller then treats every message in it as deferred.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    ref: str
    code: int = 250
    reply: str = ""


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
