"""Misbehaving SMTP servers on loopback, for the delivery tests.

``ScriptedSMTPServer`` is a small SMTP server on asyncio in a thread, written by hand
rather than with aiosmtpd so that a test controls the connection itself: close it without
a reply, drop it in the middle of DATA, stall past the client's timeout, speak only TLS.
A ``Peer`` decides each reply; subclasses below are the faults the tests need. Only what
the server accepted with a 250 after DATA counts as received, so ``per_recipient()`` is
the ground truth for "no message lost or sent twice".
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

CLOSE = "<close>"  # close the connection without a reply
STALL = "<stall>"  # never answer (until the client gives up)


@dataclass
class Session:
    number: int
    messages: int = 0  # messages accepted in this session
    mail_from: str = ""
    rcpts: list[str] = field(default_factory=list)


@dataclass
class Accepted:
    session: int
    mail_from: str
    rcpts: list[str]
    data: bytes


class Peer:
    """Answers like a well-behaved server; override a hook to misbehave."""

    #: close the connection after this many bytes of a message's DATA (None: never)
    drop_data_after: int | None = None
    #: seconds to wait before answering a message's final dot (a slow server)
    data_delay: float = 0
    #: offer PIPELINING (RFC 2920) in the EHLO reply
    pipelining: bool = False

    def greeting(self, session: Session) -> str:
        return "220 peer.test ESMTP"

    def mail(self, session: Session, sender: str) -> str:
        return "250 2.1.0 OK"

    def rcpt(self, session: Session, rcpt: str) -> str:
        return "250 2.1.5 OK"

    def data_end(self, session: Session, data: bytes) -> str:
        return "250 2.0.0 Queued"


class GreylistPeer(Peer):
    """451 for the first attempt of each (sender, recipient) pair, 250 once ``delay`` passed.

    The sender is the VERP return path, which names the message, so each message is
    greylisted once, as postgrey does with a real triplet.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.first_seen: dict[tuple[str, str], float] = {}

    def rcpt(self, session: Session, rcpt: str) -> str:
        key = (session.mail_from, rcpt)
        first = self.first_seen.setdefault(key, time.monotonic())
        if time.monotonic() - first < self.delay:
            return "451 4.7.1 Greylisted, please try again later"
        return "250 2.1.5 OK"


class RejectSomePeer(Peer):
    def __init__(self, rejected: set[str]) -> None:
        self.rejected = rejected

    def rcpt(self, session: Session, rcpt: str) -> str:
        if rcpt in self.rejected:
            return f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
        return "250 2.1.5 OK"


class RecipientLimitPeer(Peer):
    """At most ``limit`` recipients per connection, then 452 4.5.3 (as Exchange does)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def rcpt(self, session: Session, rcpt: str) -> str:
        if session.messages >= self.limit:
            return "452 4.5.3 Too many recipients"
        return "250 2.1.5 OK"


class ClosingPeer(Peer):
    """Answers 421 and closes the connection at the ``at``-th MAIL of every connection
    while ``failing`` is set (an overloaded server shedding load)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.failing = True
        self.closes = 0

    def mail(self, session: Session, sender: str) -> str:
        if self.failing and session.messages + 1 >= self.at:
            self.closes += 1
            return "421 4.3.2 Service shutting down, closing channel"
        return "250 2.1.0 OK"


class DropDataPeer(Peer):
    """Closes the connection in the middle of the DATA of its ``nth`` message overall."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.seen = 0
        self.drops = 0

    def mail(self, session: Session, sender: str) -> str:
        self.seen += 1
        self.drop_data_after = 40 if self.seen == self.nth else None
        if self.drop_data_after:
            self.drops += 1
        return "250 2.1.0 OK"


class StallPeer(Peer):
    """Never answers the final dot of the first ``count`` messages it gets."""

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.stalls = 0

    def data_end(self, session: Session, data: bytes) -> str:
        if self.stalls < self.count:
            self.stalls += 1
            return STALL
        return "250 2.0.0 Queued"


class ScriptedSMTPServer:
    """An SMTP server on 127.0.0.1 in a background thread, replies decided by ``peer``."""

    def __init__(self, peer: Peer | None = None, ssl_context: ssl.SSLContext | None = None):
        self.peer = peer or Peer()
        self.ssl_context = ssl_context
        self.accepted: list[Accepted] = []
        self.sessions = 0
        self.pipelined = 0  # commands that arrived together with the next one
        self.after_data = 0  # messages whose final dot arrived with the next commands
        self.commands: list[str] = []
        self.port = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> ScriptedSMTPServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedSMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Close every open connection at once, as a server restart or idle timeout does."""

        def abort() -> None:
            for writer in list(self._writers):
                writer.transport.abort()

        self._loop.call_soon_threadsafe(abort)
        deadline = time.monotonic() + 5
        while self._writers and time.monotonic() < deadline:
            time.sleep(0.01)

    def per_recipient(self) -> Counter[str]:
        """How many times each recipient's message was accepted."""
        with self._lock:
            return Counter(rcpt for a in self.accepted for rcpt in a.rcpts)

    def sender_config(self, **options) -> dict:
        return {
            "BACKEND": "smtp",
            "OPTIONS": {"host": "127.0.0.1", "port": self.port, "security": "none", **options},
        }

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        with self._lock:
            self.sessions += 1
            session = Session(number=self.sessions)
        try:
            await self._dialogue(session, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            # abort(), not close(): a client left in the pool must see the end at once.
            with contextlib.suppress(Exception):
                writer.transport.abort()

    async def _reply(self, reader, writer, reply: str) -> bool:
        """Send ``reply``; return False when the connection is to end."""
        if reply == CLOSE:
            return False
        if reply == STALL:
            # Wait for the client to give up and close (bounded, in case it never does).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(), timeout=10)
            return False
        writer.write(reply.encode() + b"\r\n")
        await writer.drain()
        return not reply.startswith("421")

    async def _dialogue(self, session: Session, reader, writer) -> None:
        peer = self.peer
        if not await self._reply(reader, writer, peer.greeting(session)):
            return
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=30)
            if not line:
                return
            command = line.decode("utf-8", "replace").strip()
            if reader._buffer:  # more commands arrived with this one: the client pipelines
                self.pipelined += 1
            verb = command[:4].upper()
            with self._lock:
                self.commands.append(verb)
            if verb in {"EHLO", "HELO"}:
                extra = "250-PIPELINING\r\n" if peer.pipelining else ""
                reply = f"250-peer.test\r\n{extra}250-8BITMIME\r\n250 SIZE 10485760"
            elif verb == "MAIL":
                session.mail_from = _address(command)
                session.rcpts = []
                reply = peer.mail(session, session.mail_from)
            elif verb == "RCPT":
                rcpt = _address(command)
                reply = peer.rcpt(session, rcpt)
                if reply.startswith("250"):
                    session.rcpts.append(rcpt)
            elif verb == "DATA":
                if not session.rcpts:
                    reply = "554 5.5.1 No valid recipients"
                else:
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    data = await self._read_data(reader, peer.drop_data_after)
                    if data is None:
                        return  # dropped mid-DATA
                    if reader._buffer:  # the next MAIL came with the end of this message
                        self.after_data += 1
                    if peer.data_delay:
                        await asyncio.sleep(peer.data_delay)
                    reply = peer.data_end(session, data)
                    if reply.startswith("250"):
                        with self._lock:
                            self.accepted.append(
                                Accepted(session.number, session.mail_from, session.rcpts, data)
                            )
                        session.messages += 1
                    session.rcpts = []
            elif verb in {"RSET", "NOOP"}:
                if verb == "RSET":
                    session.rcpts = []
                reply = "250 2.0.0 OK"
            elif verb == "QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                reply = "502 5.5.2 Command not recognised"
            if not await self._reply(reader, writer, reply):
                return

    @staticmethod
    async def _read_data(reader, drop_after: int | None) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=30)
            if not line:
                raise ConnectionError("client went away in DATA")
            if line == b".\r\n":
                return b"".join(chunks)
            size += len(line)
            if drop_after is not None and size >= drop_after:
                return None
            chunks.append(line[1:] if line.startswith(b"..") else line)


def _address(command: str) -> str:
    start, end = command.find("<"), command.find(">")
    return command[start + 1 : end] if 0 <= start < end else ""


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for localhost / 127.0.0.1, and
    the path of that certificate (to trust it as a CA file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
