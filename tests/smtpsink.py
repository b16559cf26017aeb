"""A real SMTP server on loopback for tests (aiosmtpd in a thread)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def parsed(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


@dataclass
class SinkHandler:
    """Stores what arrives; answers per recipient from ``replies`` (address → reply line)."""

    received: list[Received] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SMTPSink:
    """``auth=(user, password)``: offer AUTH (over plaintext, loopback only) and refuse mail
    from a client that has not logged in with exactly those."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.handler = SinkHandler()
        self._port = _free_port()
        self.logins: list[tuple[str, bool]] = []
        extra = {}
        if auth is not None:
            extra = {
                "authenticator": self._authenticator(auth),
                "auth_require_tls": False,
                "auth_required": True,
            }
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self._port, **extra)

    def _authenticator(self, expected: tuple[str, str]):
        def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = (
                isinstance(auth_data, LoginPassword)
                and (
                    auth_data.login.decode(),
                    auth_data.password.decode(),
                )
                == expected
            )
            login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else ""
            self.logins.append((login, ok))
            return AuthResult(success=ok, handled=False)

        return authenticate

    def start(self) -> SMTPSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def sender_config(self, **extra) -> dict:
        return {
            "BACKEND": "smtp",
            "OPTIONS": {"host": "127.0.0.1", "port": self.port, "security": "none", **extra},
        }
