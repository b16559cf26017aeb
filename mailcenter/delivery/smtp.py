"""Relay through an SMTP server over one persistent connection per session.

Options: ``host``, ``port``, ``security`` (``none`` | ``starttls`` | ``tls``), ``username``,
``password``, ``timeout``. Replies are mapped to results: 2xx accepted, 4xx and connection
trouble deferred, 5xx rejected with the enhanced status code when the server gives one.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from typing import Any

from mailcenter.delivery.base import (
    Accepted,
    BaseBackend,
    Deferred,
    DeliveryError,
    OutgoingMessage,
    Rejected,
    Result,
)

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return str(reply)


def classify(ref: str, code: int, reply: bytes | str) -> Result:
    """Map an SMTP reply to a result; only 4xx is worth another try."""
    text = _text(reply)
    if 200 <= code < 300:
        return Accepted(ref=ref, code=code, reply=text)
    if 400 <= code < 500:
        return Deferred(ref=ref, code=code, reply=text)
    match = _ENHANCED.match(text)
    return Rejected(ref=ref, code=code, reply=text, enhanced_status=match.group(1) if match else "")


class SMTPBackend(BaseBackend):
    def __init__(self, alias: str, **options: Any) -> None:
        super().__init__(alias, **options)
        self.host: str = options.get("host", "127.0.0.1")
        self.port: int = int(options.get("port", 25))
        self.security: str = options.get("security", "none")
        self.username: str = options.get("username", "")
        self.password: str = options.get("password", "")
        self.timeout: float = float(options.get("timeout", 30))
        self.local_hostname: str | None = options.get("local_hostname")
        if self.security not in {"none", "starttls", "tls"}:
            raise DeliveryError(f"{alias}: security must be none, starttls or tls")
        self.connection: smtplib.SMTP | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.options.get("verify_tls") is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def open(self) -> None:
        if self.connection is not None:
            return
        try:
            if self.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeout,
                    context=self._ssl_context(),
                )
            else:
                conn = smtplib.SMTP(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
                )
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=self._ssl_context())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{self.alias}: cannot open SMTP session: {exc}") from exc
        self.connection = conn

    def close(self) -> None:
        conn, self.connection = self.connection, None
        if conn is None:
            return
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()

    def send_batch(self, messages: list[OutgoingMessage]) -> list[Result]:
        results: list[Result] = []
        for index, message in enumerate(messages):
            if self.connection is None:
                try:
                    self.open()
                except DeliveryError as exc:
                    # The server is gone: everything not yet attempted waits for a retry.
                    results.extend(
                        Deferred(ref=m.ref, code=None, reply=str(exc)) for m in messages[index:]
                    )
                    return results
            results.append(self._send_one(message))
        return results

    def _send_one(self, message: OutgoingMessage) -> Result:
        assert self.connection is not None  # noqa: S101 - opened by send_batch
        try:
            refused = self.connection.sendmail(
                message.return_path, [message.recipient], message.raw
            )
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return classify(message.ref, code, reply)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            result = classify(message.ref, exc.smtp_code, exc.smtp_error)
            if exc.smtp_code == 421:
                self.close()
            return result
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:
                self.close()
            return classify(message.ref, exc.smtp_code, exc.smtp_error)
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            # Connection dropped mid-transaction: we cannot know whether the server kept
            # the message, so it is retried (the documented at-most-in-flight duplicate).
            self._drop()
            return Deferred(ref=message.ref, code=None, reply=f"connection lost: {exc}")
        if refused:
            code, reply = refused[message.recipient]
            return classify(message.ref, code, reply)
        return Accepted(ref=message.ref)

    def _drop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
