"""Hand messages to an email service provider through django-anymail.

Options: ``esp`` (an Anymail backend: its module name, ``unisender_go``, ``mailgun``,
``amazon_ses`` ..., or a dotted path to an EmailBackend class), ``esp_settings`` (keyword
arguments for that backend, e.g. ``{"api_key": "…", "api_url": "…"}`` for Unisender Go;
what Anymail otherwise reads from ``ANYMAIL = {...}``), ``envelope_sender`` (true: pass
the VERP return path, for ESPs that support a custom one).

The ESP gets the parts (subject, text, HTML, headers) rather than our signed bytes: it
builds and signs its own MIME. Its tracking is turned off, since ours is in the links
already. The ESP's message id comes back on the result and is stored on the message, which
is what its webhooks (bounces, complaints) name the message by.
"""

from __future__ import annotations

import contextlib
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from django.core.mail import EmailMultiAlternatives, get_connection

from mailcenter.delivery.base import (
    Accepted,
    BaseBackend,
    Deferred,
    DeliveryError,
    OutgoingMessage,
    Rejected,
    Result,
)

ACCEPTED_STATUSES = {"sent", "queued", "scheduled", "unknown"}
REJECTED_STATUSES = {"rejected", "invalid"}


class AnymailBackend(BaseBackend):
    def __init__(self, alias: str, **options: Any) -> None:
        super().__init__(alias, **options)
        esp = options.get("esp") or options.get("esp_backend") or ""
        if not esp:
            raise DeliveryError(f"{alias}: the anymail backend needs an 'esp' option")
        self.esp_path = esp if "." in esp else f"anymail.backends.{esp}.EmailBackend"
        self.esp_settings: dict[str, Any] = dict(options.get("esp_settings") or {})
        self.envelope_sender = bool(options.get("envelope_sender", False))
        self.connection: Any = None

    def open(self) -> None:
        if self.connection is not None:
            return
        try:
            connection = get_connection(self.esp_path, **self.esp_settings)
            connection.open()
        except (ImportError, AnymailError, TypeError) as exc:
            raise DeliveryError(f"{self.alias}: cannot use {self.esp_path}: {exc}") from exc
        self.connection = connection

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(AnymailError):
                connection.close()

    def send_batch(self, messages: list[OutgoingMessage]) -> list[Result]:
        """One API call per message (each has its own unsubscribe link and VERP address);
        an API failure defers that message, a refused recipient rejects it."""
        self.open()
        return [self._send_one(m) for m in messages]

    def _email(self, message: OutgoingMessage) -> EmailMultiAlternatives:
        parsed = (
            BytesHeaderParser(policy=default_policy).parsebytes(message.raw) if message.raw else {}
        )
        from_header = str(parsed.get("From") or message.from_email)
        headers = {k: v for k, v in message.headers.items() if k.lower() != "message-id"}
        reply_to = str(parsed.get("Reply-To") or "")
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=from_header,
            to=[message.recipient],
            reply_to=[reply_to] if reply_to else None,
            headers=headers,
            connection=self.connection,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        email.metadata = {"mailcenter_ref": message.ref}
        email.track_clicks = False
        email.track_opens = False
        if self.envelope_sender:
            email.envelope_sender = message.return_path
        return email

    def _send_one(self, message: OutgoingMessage) -> Result:
        ref = message.ref
        esp = self.esp_path.rsplit(".", 2)[-2] if "." in self.esp_path else self.esp_path
        try:
            email = self._email(message)
            email.send()
        except (AnymailRecipientsRefused, AnymailInvalidAddress) as exc:
            return Rejected(
                ref=ref, code=550, reply=f"5.1.1 {esp}: {exc}"[:1000], enhanced_status="5.1.1"
            )
        except AnymailAPIError as exc:
            # Outages, rate limits and bad credentials alike: retried, and a campaign that
            # keeps getting them pauses itself.
            code = getattr(exc, "status_code", None) or ""
            return Deferred(
                ref=ref, code=None, reply=f"{esp} API error {code}: {_describe(exc)}"[:1000]
            )
        except AnymailError as exc:
            return Deferred(ref=ref, code=None, reply=f"{esp}: {_describe(exc)}"[:1000])
        status = email.anymail_status
        recipient = status.recipients.get(message.recipient)
        state = recipient.status if recipient else next(iter(status.status or {"unknown"}))
        message_id = str(recipient.message_id if recipient else status.message_id or "")
        if state in ACCEPTED_STATUSES:
            return Accepted(ref=ref, code=250, reply=f"{esp}: {state}", message_id=message_id)
        if state in REJECTED_STATUSES:
            return Rejected(
                ref=ref, code=550, reply=f"5.0.0 {esp}: {state}", enhanced_status="5.0.0"
            )
        return Deferred(ref=ref, code=None, reply=f"{esp}: {state}")


def _describe(exc: Exception) -> str:
    # An Anymail error's str() formats the HTTP response it carries, and fails without one.
    try:
        return str(exc)
    except Exception:
        return repr(exc.args[0]) if exc.args else type(exc).__name__
