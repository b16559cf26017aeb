"""Addresses that mail comes back to, and the SMTP server that receives it.

``bounces+TOKEN@<bounce domain>`` is each message's VERP return path and
``unsubscribe+TOKEN@<bounce domain>`` its List-Unsubscribe mailto; TOKEN is signed
(tracking.tokens), so a recipient is accepted at RCPT time only when it names one of our
messages, and everything else is refused with 550 like an unknown mailbox.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tracking import conf, tokens

logger = logging.getLogger(__name__)

PURPOSE_BOUNCE = "bounce"
PURPOSE_UNSUBSCRIBE = "unsubscribe"
_PREFIXES = {"bounces+": PURPOSE_BOUNCE, "unsubscribe+": PURPOSE_UNSUBSCRIBE}


@dataclass(frozen=True)
class InboundAddress:
    purpose: str
    message_id: int


def address_parse(address: str, domain: str | None = None) -> InboundAddress | None:
    """Return what ``address`` stands for, or None when it is not one of ours."""
    local, sep, host = address.strip().strip("<>").rpartition("@")
    if not sep or host.lower() != (domain or conf.bounce_domain()):
        return None
    for prefix, purpose in _PREFIXES.items():
        if local.lower().startswith(prefix):
            try:
                message_id, _link = tokens.read_token(purpose, local[len(prefix) :])
            except tokens.BadToken:
                return None
            return InboundAddress(purpose, message_id)
    return None


class BounceHandler:
    """aiosmtpd handler: refuse unknown recipients, hand accepted mail to the service.

    The database work runs in a small thread pool: the ORM is synchronous, and the event
    loop must keep answering other connections meanwhile. On SQLite the pool has one
    thread, because SQLite has one writer at a time anyway.
    """

    def __init__(self, domain: str | None = None) -> None:
        from django.db import connection

        self.domain = domain
        workers = 1 if connection.vendor == "sqlite" else 4
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bounces")
        self._done = threading.Condition()
        self.processed = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address_parse(address, self.domain) is None:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or b""
        rcpts = list(envelope.rcpt_tos)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, _process, rcpts, data, self.domain)
        except Exception:
            logger.exception("could not record mail for %s", rcpts)
            # The sender keeps the message and retries; nothing is lost.
            return "451 4.3.0 Temporary failure, try again later"
        finally:
            with self._done:
                self.processed += 1
                self._done.notify_all()
        return "250 OK"

    def wait_processed(self, count: int, timeout: float) -> bool:
        """Block until ``count`` messages have been handled (recorded or refused with
        451); for callers that need to know a message is in the database."""
        with self._done:
            return self._done.wait_for(lambda: self.processed >= count, timeout)


def _process(rcpts: list[str], data: bytes, domain: str | None) -> None:
    from django.db import connections

    from tracking.services import inbound_mail_process

    try:
        inbound_mail_process(rcpts, data, domain=domain)
    finally:
        # Returned mail is a trickle: a connection per message costs little, and an idle
        # pool thread must not hold one open (a migration or a dropped database waits).
        connections.close_all()


def bounce_controller(host: str, port: int, domain: str | None = None):
    """An aiosmtpd Controller (a thread with its own event loop) serving BounceHandler."""
    from aiosmtpd.controller import Controller

    return Controller(
        BounceHandler(domain),
        hostname=host,
        port=port,
        data_size_limit=conf.bounce_max_bytes(),
        server_hostname=domain or conf.bounce_domain(),
    )
