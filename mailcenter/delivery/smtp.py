"""Relay through an SMTP server over persistent, pooled connections.

Options: ``host``, ``port`` (25), ``security`` (``none`` | ``starttls`` | ``tls`` |
``opportunistic``: STARTTLS when offered), ``username``, ``password``, ``timeout``
(30 s), ``verify_tls`` (false accepts any certificate), ``ca_file`` (trust this CA bundle
instead of the system's), ``local_hostname``, ``pipelining`` (true: use it when offered),
``pool`` (true: keep the connection open between batches in this process), ``pool_idle``
(60 s: an idle pooled connection older than this is closed, not reused).

Replies map to results: 2xx accepted, 4xx and connection trouble deferred, 5xx rejected
with the enhanced status code when the server gives one. One message is one SMTP
transaction (MAIL, RCPT, DATA) with one recipient, because the VERP return path differs
per message. When the server offers PIPELINING (RFC 2920) MAIL, RCPT and DATA go out in
one write and their replies are read together, which saves two round trips per message
on a distant relay (option ``pipelining``, true by default; smtplib itself does not
pipeline, so that exchange is written here).

How the connection is handled, and why:

- 421 ("closing channel") means the server is shedding load: the rest of the batch is
  deferred untried rather than reconnecting at once and hammering it.
- A connection lost mid-transaction (dropped, timed out) defers that message, since we
  cannot know whether the server kept it, and the batch goes on over a new connection. A
  second loss in a row defers the rest: a server that stalls every connection would
  otherwise cost one timeout per message.
- 452 after some messages on the same connection is a per-connection recipient limit
  (RFC 5321 §4.5.3.1.10, Exchange's default): the message is tried once more over a fresh
  connection.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import smtplib
import ssl
import threading
import time
from typing import Any

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

# Connections kept idle per pool key; more than the send concurrency of one process is waste.
POOL_MAX_IDLE_CONNECTIONS = 4
# Losses in a row after which the rest of a batch is deferred instead of tried.
MAX_LOSSES_IN_A_ROW = 2


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return str(reply)


def classify(ref: str, code: int, reply: bytes | str) -> Result:
    """Map an SMTP reply to a result; only 4xx (and a garbled reply) is worth another try."""
    text = _text(reply)
    if 200 <= code < 300:
        return Accepted(ref=ref, code=code, reply=text)
    if code < 200 or 400 <= code < 500:
        return Deferred(ref=ref, code=code if code > 0 else None, reply=text)
    return Rejected(ref=ref, code=code, reply=text, enhanced_status=enhanced_status(text))


class Outcome(enum.Enum):
    """What an attempt did to the connection, beyond the message's own result."""

    OK = "ok"
    CLOSING = "closing"  # the server said 421
    LOST = "lost"  # dropped or timed out mid-transaction
    TOO_MANY = "too_many"  # 452 on RCPT


class ConnectionPool:
    """Idle SMTP connections of this process, newest first, keyed by where they lead.

    Taken connections are checked with NOOP before use; connections idle longer than the
    caller's limit are closed. A forked child starts with an empty pool: the parent's
    sockets are not its to use.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[tuple[float, smtplib.SMTP]]] = {}
        self._pid = os.getpid()

    def _check_pid(self) -> None:
        if self._pid != os.getpid():
            self._idle = {}
            self._pid = os.getpid()

    def take(self, key: tuple, max_idle: float) -> smtplib.SMTP | None:
        """Return a live idle connection for ``key``, or None."""
        while True:
            with self._lock:
                self._check_pid()
                idle = self._idle.get(key)
                if not idle:
                    return None
                since, conn = idle.pop()
            if time.monotonic() - since > max_idle:
                _quit(conn)
                continue
            try:
                code, _reply = conn.noop()
            except (OSError, smtplib.SMTPException):
                conn.close()
                continue
            if code == 250:
                return conn
            _quit(conn)

    def put(self, key: tuple, conn: smtplib.SMTP) -> None:
        with self._lock:
            self._check_pid()
            idle = self._idle.setdefault(key, [])
            idle.append((time.monotonic(), conn))
            surplus = idle[:-POOL_MAX_IDLE_CONNECTIONS]
            del idle[:-POOL_MAX_IDLE_CONNECTIONS]
        for _since, old in surplus:
            _quit(old)

    def idle_count(self, key: tuple | None = None) -> int:
        with self._lock:
            if key is not None:
                return len(self._idle.get(key, []))
            return sum(len(v) for v in self._idle.values())

    def clear(self) -> None:
        """Close every idle connection (process exit, tests)."""
        with self._lock:
            self._check_pid()
            conns = [conn for idle in self._idle.values() for _since, conn in idle]
            self._idle = {}
        for conn in conns:
            _quit(conn)


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


POOL = ConnectionPool()
atexit.register(POOL.clear)


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
        self.pool: bool = options.get("pool", True) not in (False, "false", "0", 0)
        self.pool_idle: float = float(options.get("pool_idle", 60))
        self.pipelining: bool = options.get("pipelining", True) not in (False, "false", "0", 0)
        if self.security not in {"none", "starttls", "tls", "opportunistic"}:
            raise DeliveryError(f"{alias}: security must be none, starttls, tls or opportunistic")
        self.connection: smtplib.SMTP | None = None

    # -- the session -----------------------------------------------------------------------

    def pool_key(self) -> tuple:
        """Where a connection leads and how it was set up: every option, so that a pooled
        connection is only reused by a session that would have opened the same one."""
        return (self.alias, tuple(sorted((k, repr(v)) for k, v in self.options.items())))

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.options.get("ca_file") or None)
        if self.options.get("verify_tls") in (False, "false", "0", 0):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _plain_connection(self) -> smtplib.SMTP:
        conn = smtplib.SMTP(local_hostname=self.local_hostname, timeout=self.timeout)
        # The name TLS verifies and sends as SNI: the MX host name when we connect to one of
        # its addresses (``server_name``), else the host we were given.
        conn._host = self.options.get("server_name") or self.host
        code, reply = conn.connect(self.host, self.port)
        if code != 220:
            conn.close()
            raise smtplib.SMTPConnectError(code, reply)
        return conn

    def connect(self) -> smtplib.SMTP:
        """Open a new connection (TLS and login included); raise DeliveryError if impossible.

        ``opportunistic`` (what MTAs do between each other) uses STARTTLS when the server
        offers it and goes on in plaintext, over a new connection, when it fails.
        """
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
                conn = self._plain_connection()
            try:
                conn.ehlo()
                if self.security == "starttls":
                    conn.starttls(context=self._ssl_context())
                    conn.ehlo()
                elif self.security == "opportunistic" and conn.has_extn("starttls"):
                    try:
                        conn.starttls(context=self._ssl_context())
                        conn.ehlo()
                    except (ssl.SSLError, smtplib.SMTPException):
                        conn.close()
                        conn = self._plain_connection()
                        conn.ehlo()
                        conn.mc_tls_failed = True  # type: ignore[attr-defined]
                if self.username:
                    conn.login(self.username, self.password)
            except BaseException:
                conn.close()
                raise
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{self.alias}: cannot open SMTP session: {exc}") from exc
        conn.mc_sent = 0  # type: ignore[attr-defined]  # messages sent on this connection
        # The ref of the message whose MAIL, RCPT and DATA went out ahead (see
        # _attempt_pipelined) and whose replies are still to be read; None when none is.
        conn.mc_envelope_ahead = None  # type: ignore[attr-defined]
        return conn

    def open(self) -> None:
        """Take a live pooled connection or open a new one. Idempotent."""
        if self.connection is not None:
            return
        conn = POOL.take(self.pool_key(), self.pool_idle) if self.pool else None
        self.connection = conn or self.connect()

    def close(self) -> None:
        """Give the connection back to the pool (or say QUIT when pooling is off)."""
        conn, self.connection = self.connection, None
        if conn is None:
            return
        if getattr(conn, "mc_envelope_ahead", None) is not None:
            _quit(conn)  # replies are still due on it: not reusable (send_batch never does this)
        elif self.pool and conn.sock is not None:
            POOL.put(self.pool_key(), conn)
        else:
            _quit(conn)

    def _drop(self) -> None:
        """Forget a connection that is broken; never pooled."""
        conn, self.connection = self.connection, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    # -- sending -----------------------------------------------------------------------------

    def send_batch(self, messages: list[OutgoingMessage]) -> list[Result]:
        """Send each message in its own transaction; one result per message, in order.

        Never raises for a message's failure. Reconnects after a lost connection; see the
        module docstring for when the rest of the batch is deferred untried instead.
        """
        results: list[Result] = []
        losses = 0
        for index, message in enumerate(messages):
            if self.connection is None:
                try:
                    self.open()
                except DeliveryError as exc:
                    # The server is gone: everything not yet attempted waits for a retry.
                    results.extend(_defer_all(messages[index:], None, str(exc)))
                    return results
            following = messages[index + 1] if index + 1 < len(messages) else None
            result, outcome = self._attempt(message, following)
            if outcome is Outcome.TOO_MANY:
                result, outcome = self._retry_on_fresh_connection(message, result, outcome)
            results.append(result)
            if outcome is Outcome.CLOSING:
                self._drop()
                reply = f"not attempted: the server closed the connection: {result.reply}"
                results.extend(_defer_all(messages[index + 1 :], 421, reply))
                return results
            if outcome is Outcome.LOST:
                losses += 1
                if losses >= MAX_LOSSES_IN_A_ROW:
                    reply = f"not attempted after {losses} lost connections: {result.reply}"
                    results.extend(_defer_all(messages[index + 1 :], None, reply))
                    return results
            else:
                losses = 0
        return results

    def _retry_on_fresh_connection(
        self, message: OutgoingMessage, result: Result, outcome: Outcome
    ) -> tuple[Result, Outcome]:
        conn = self.connection
        if conn is None or getattr(conn, "mc_sent", 0) == 0:
            return result, outcome  # a fresh connection already: the limit is not per connection
        self.connection = None
        _quit(conn)
        try:
            self.open()
        except DeliveryError:
            return result, Outcome.LOST
        return self._attempt(message)

    def _attempt(
        self, message: OutgoingMessage, following: OutgoingMessage | None = None
    ) -> tuple[Result, Outcome]:
        """One transaction: MAIL, RCPT, DATA. The connection stays usable unless LOST/CLOSING.

        With pipelining, ``following`` (the next message of the batch) may have its MAIL,
        RCPT and DATA sent behind this message's content; its attempt then reads them.
        """
        conn = self.connection
        assert conn is not None  # noqa: S101 - opened by send_batch
        ref = message.ref
        try:
            conn.ehlo_or_helo_if_needed()
            options = []
            if conn.does_esmtp and conn.has_extn("size"):
                options.append(f"size={len(message.raw)}")
            if not (message.return_path + message.recipient).isascii():
                if not conn.has_extn("smtputf8"):
                    return Rejected(
                        ref=ref,
                        code=553,
                        reply="5.6.7 non-ASCII address and the server does not offer SMTPUTF8",
                        enhanced_status="5.6.7",
                    ), Outcome.OK
                options.append("SMTPUTF8")
            if self.pipelining and conn.has_extn("pipelining"):
                return self._attempt_pipelined(conn, message, options, following)
            for step in ("mail", "rcpt", "data"):
                if step == "mail":
                    code, reply = conn.mail(message.return_path, options)
                    ok = code == 250
                elif step == "rcpt":
                    code, reply = conn.rcpt(message.recipient)
                    ok = code in (250, 251)
                else:
                    code, reply = conn.data(message.raw)
                    ok = code == 250
                if not ok:
                    return self._refused(ref, code, reply, step)
        except smtplib.SMTPDataError as exc:  # DATA's 354 refused (smtplib raises for it)
            return self._refused(ref, exc.smtp_code, exc.smtp_error, "data")
        except (OSError, smtplib.SMTPException) as exc:
            # Dropped or timed out mid-transaction: we cannot know whether the server kept
            # the message, so it is retried (the documented at-most-in-flight duplicate).
            self._drop()
            return Deferred(ref=ref, code=None, reply=f"connection lost: {exc}"), Outcome.LOST
        conn.mc_sent = getattr(conn, "mc_sent", 0) + 1  # type: ignore[attr-defined]
        return Accepted(ref=ref, code=code, reply=_text(reply)), Outcome.OK

    def _attempt_pipelined(
        self,
        conn: smtplib.SMTP,
        message: OutgoingMessage,
        options: list[str],
        following: OutgoingMessage | None = None,
    ) -> tuple[Result, Outcome]:
        """MAIL, RCPT and DATA in one write, then their three replies (RFC 2920): one round
        trip instead of three before the message itself. smtplib has no pipelining, so the
        commands are written with its low-level send/getreply.

        The next message's MAIL, RCPT and DATA go out in the same write as this message's
        content (RFC 2920 3.1: the content may start a group), so that each message costs
        one round trip rather than two; the next attempt then only reads their replies.
        Only its envelope is sent ahead, never its content, so nothing can be delivered
        twice: a connection lost or closed meanwhile leaves the next message unattempted.
        """
        ref = message.ref
        if getattr(conn, "mc_envelope_ahead", None) == ref:
            conn.mc_envelope_ahead = None  # type: ignore[attr-defined]
        else:
            conn.command_encoding = "utf-8" if "SMTPUTF8" in options else "ascii"
            conn.send(_envelope(message, options))
        replies: list[tuple[int, bytes]] = []
        for step in ("mail", "rcpt", "data"):
            code, reply = conn.getreply()
            if code == 421 or code == -1:
                return self._refused(ref, code, reply, step)
            replies.append((code, reply))
        (mail_code, mail_reply), (rcpt_code, rcpt_reply), (data_code, data_reply) = replies
        envelope_ok = mail_code == 250 and rcpt_code in (250, 251)
        if data_code == 354 and not envelope_ok:
            # A server that asks for the data although the envelope failed gets an empty
            # body, which it must refuse for want of a recipient.
            conn.send(b".\r\n")
            conn.getreply()
        if mail_code != 250:
            return self._refused(ref, mail_code, mail_reply, "mail")
        if rcpt_code not in (250, 251):
            return self._refused(ref, rcpt_code, rcpt_reply, "rcpt")
        if data_code != 354:
            return self._refused(ref, data_code, data_reply, "data")
        payload = _dot_stuffed(message.raw)
        ahead = _envelope_ahead(conn, following)
        conn.send(payload + ahead if ahead else payload)
        if ahead:
            conn.mc_envelope_ahead = following.ref  # type: ignore[union-attr,attr-defined]
        code, reply = conn.getreply()
        if code != 250:
            # No RSET when the next envelope is on its way: the server would take it for
            # that message's content. Nothing needs resetting after a final-dot reply anyway.
            return self._refused(ref, code, reply, "data", reset=not ahead)
        conn.mc_sent = getattr(conn, "mc_sent", 0) + 1  # type: ignore[attr-defined]
        return Accepted(ref=ref, code=code, reply=_text(reply)), Outcome.OK

    def _refused(
        self, ref: str, code: int, reply: bytes | str, step: str, reset: bool = True
    ) -> tuple[Result, Outcome]:
        result = classify(ref, code, reply)
        if code == 421 or code == -1:
            return result, Outcome.CLOSING
        # Abandon the transaction so the connection can carry the next message.
        try:
            if reset:
                self.connection.rset()  # type: ignore[union-attr]
        except (OSError, smtplib.SMTPException):
            self._drop()
        if code == 452 and step == "rcpt":
            return result, Outcome.TOO_MANY
        return result, Outcome.OK


def _envelope(message: OutgoingMessage, options: list[str]) -> str:
    optionlist = "".join(f" {option}" for option in options)
    return (
        f"MAIL FROM:{smtplib.quoteaddr(message.return_path)}{optionlist}\r\n"
        f"RCPT TO:{smtplib.quoteaddr(message.recipient)}\r\n"
        "DATA\r\n"
    )


def _envelope_ahead(conn: smtplib.SMTP, message: OutgoingMessage | None) -> bytes:
    """The next message's MAIL, RCPT and DATA to send behind this one's content, or b""
    when it has none or needs what _attempt decides first (SMTPUTF8 for a non-ASCII
    address)."""
    if message is None or not (message.return_path + message.recipient).isascii():
        return b""
    options = [f"size={len(message.raw)}"] if conn.does_esmtp and conn.has_extn("size") else []
    return _envelope(message, options).encode("ascii")


def _dot_stuffed(raw: bytes) -> bytes:
    """The DATA payload: leading dots doubled, CRLF-terminated, then the final dot."""
    # bytes.replace, not re.sub(rb"(?m)^\.", ...): the regex tries every position of a
    # 60 KB message (~350 µs, as much as rendering it); the C search takes ~20 µs. A line
    # starts at the beginning or after LF, as with the regex's ^.
    data = raw.replace(b"\n.", b"\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _defer_all(messages: list[OutgoingMessage], code: int | None, reply: str) -> list[Result]:
    return [Deferred(ref=m.ref, code=code, reply=reply) for m in messages]
