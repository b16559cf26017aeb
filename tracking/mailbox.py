"""Bounces that arrive in a mailbox: poll it over IMAP and act on each message as the
bounce server would (tracking.services.inbound_mail_process).

For operators whose return path is an ordinary mailbox rather than an MX pointed at
``bounce_server``. Each message is read without touching its flags (BODY.PEEK), acted on
in one transaction that also writes its receipt (tracking.models.InboundReceipt, keyed by
its Message-ID), and only then marked seen and moved to the processed folder (or
deleted). A crash between the commit and the move leaves the message in the mailbox; the
next pass finds its receipt, records nothing and moves it.

What ties a message to ours: the VERP or unsubscribe address it was delivered to, as
the delivering server wrote it (Delivered-To, X-Original-To, Envelope-To) or as the
report addresses it (To, Cc); failing those, the ``bounces+TOKEN@`` return path quoted
in the returned original (a complaint forwarded from a feedback-loop address).
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import logging
import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.utils import getaddresses
from urllib.parse import parse_qs, unquote, urlsplit

from django.db import transaction
from django.utils.translation import gettext as _

from tracking import bounces, conf

logger = logging.getLogger(__name__)

# Headers that name the address a message was delivered to, most trustworthy first.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")


class MailboxError(Exception):
    """The mailbox cannot be used; the message says why in plain words (shown to the
    operator by ``bounce_poll``, logged by the beat task)."""


@dataclass(frozen=True)
class MailboxConfig:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    tls: str = "tls"  # "tls" (imaps), "starttls" (imap) or "none" (imap, ?tls=none)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class PollResult:
    """What one pass did: messages acted on, already-recorded ones (moved again),
    ones that failed and were left in the mailbox for the next pass."""

    processed: int = 0
    duplicates: int = 0
    failed: int = 0
    outcomes: list[tuple[str, str]] = field(default_factory=list)


def mailbox_config(url: str) -> MailboxConfig:
    """Parse ``MAILCENTER_BOUNCE_IMAP_URL``; the user name and password may be
    percent-encoded (``%40`` for ``@``). Raises MailboxError when it is unusable."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps"):
        raise MailboxError(_("The bounce mailbox URL must start with imaps:// or imap://."))
    try:
        port = parts.port
    except ValueError:
        raise MailboxError(_("The bounce mailbox URL has an invalid port.")) from None
    if not parts.hostname or not parts.username or parts.password is None:
        raise MailboxError(
            _("The bounce mailbox URL needs a user, a password and a host: %(example)s")
            % {"example": "imaps://user:password@host:993/INBOX"}
        )
    tls = "tls" if parts.scheme == "imaps" else "starttls"
    if parts.scheme == "imap" and parse_qs(parts.query).get("tls") == ["none"]:
        tls = "none"
    return MailboxConfig(
        host=parts.hostname,
        port=port or (993 if tls == "tls" else 143),
        user=unquote(parts.username),
        password=unquote(parts.password),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
        tls=tls,
    )


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: list) -> str:
    return " ".join(
        d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in data if d
    )


def _tls_context() -> ssl.SSLContext:
    ca_file = conf.bounce_imap_ca_file()
    return ssl.create_default_context(cafile=ca_file or None)


def mailbox_connect(config: MailboxConfig) -> imaplib.IMAP4:
    """Connect, secure and log in; every failure a network peer can cause becomes a
    MailboxError saying what went wrong, never a traceback."""
    timeout = conf.bounce_imap_timeout()
    try:
        if config.tls == "tls":
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                config.host, config.port, ssl_context=_tls_context(), timeout=timeout
            )
        else:
            client = imaplib.IMAP4(config.host, config.port, timeout=timeout)
            if config.tls == "starttls":
                if "STARTTLS" not in client.capabilities:
                    client.shutdown()
                    raise MailboxError(
                        _(
                            "The IMAP server %(where)s does not offer STARTTLS; use "
                            "imaps:// (port 993) so the password is not sent in clear."
                        )
                        % {"where": config.where}
                    )
                client.starttls(ssl_context=_tls_context())
    except socket.gaierror as exc:
        raise MailboxError(
            _("Cannot find the IMAP server %(host)s: %(error)s")
            % {"host": config.host, "error": exc.strerror or exc}
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise MailboxError(
            _("The certificate of the IMAP server %(where)s is not trusted: %(error)s")
            % {"where": config.where, "error": exc.verify_message or exc}
        ) from None
    except ssl.SSLError as exc:
        raise MailboxError(
            _("TLS with the IMAP server %(where)s failed: %(error)s")
            % {"where": config.where, "error": exc.reason or exc}
        ) from None
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(
            _("Cannot connect to the IMAP server %(where)s: %(error)s")
            % {"where": config.where, "error": getattr(exc, "strerror", None) or exc}
        ) from None
    try:
        client.login(config.user, config.password)
    except imaplib.IMAP4.error as exc:
        _logout(client)
        raise MailboxError(
            _("The IMAP server %(where)s refused the user name or password of %(user)s: %(error)s")
            % {"where": config.where, "user": config.user, "error": _text(list(exc.args))}
        ) from None
    except OSError as exc:
        raise MailboxError(
            _("The IMAP server %(where)s closed the connection: %(error)s")
            % {"where": config.where, "error": exc}
        ) from None
    return client


def _capabilities(client: imaplib.IMAP4) -> set[str]:
    # Servers announce more after login (MOVE, UIDPLUS); imaplib keeps the first list.
    typ, data = client.capability()
    return set(_text(data).upper().split()) if typ == "OK" else set(client.capabilities)


def _logout(client: imaplib.IMAP4) -> None:
    with contextlib.suppress(OSError, imaplib.IMAP4.error):
        client.logout()


def _check(typ: str, data: list, what: str) -> list:
    if typ != "OK":
        raise MailboxError(
            _("The IMAP server refused to %(what)s: %(error)s")
            % {
                "what": what,
                "error": _text(data),
            }
        )
    return data


def _folder_ensure(client: imaplib.IMAP4, folder: str) -> None:
    typ, data = client.list('""', _quote(folder))
    if typ == "OK" and any(data):
        return
    typ, data = client.create(_quote(folder))
    if typ != "OK" and "ALREADYEXISTS" not in _text(data).upper():
        _check(typ, data, _("create the folder %(folder)s") % {"folder": folder})


def mailbox_recipients(raw: bytes, domain: str | None = None) -> list[str]:
    """Our VERP / unsubscribe addresses a message was delivered to (see the module
    docstring), first the headers', else the return paths quoted in the report."""
    from tracking.inbound import address_parse

    domain = (domain or conf.bounce_domain()).lower()
    msg = message_from_bytes(raw, policy=policy.compat32)
    found: dict[str, str] = {}
    for header in RECIPIENT_HEADERS:
        values = [str(v) for v in msg.get_all(header) or []]
        for _name, address in getaddresses(values):
            if address and address_parse(address, domain) is not None:
                found.setdefault(address.lower(), address)
    if found:
        return list(found.values())
    return [f"bounces+{token}@{domain}" for token in bounces.parse(raw).tokens]


def mailbox_message_process(
    raw: bytes, *, domain: str | None = None
) -> list[tuple[str, str]] | None:
    """Act on one message from the bounce mailbox; None when it was acted on before.

    Idempotent: the message's receipt (its Message-ID, or a digest of its bytes when it
    has none) is claimed in the transaction that records its events.
    """
    from tracking.services import inbound_mail_process, receipt_claim, receipt_key

    msg = message_from_bytes(raw, policy=policy.compat32)
    identity = str(msg.get("Message-ID") or "").strip() or hashlib.sha256(raw).hexdigest()
    rcpts = mailbox_recipients(raw, domain)
    with transaction.atomic():
        if not receipt_claim(receipt_key("imap", identity)):
            return None
        if not rcpts:
            logger.info("bounce mailbox: %s names none of our messages", identity)
            return [("", "unknown recipient")]
        return inbound_mail_process(rcpts, raw, domain=domain)


def _fetch(client: imaplib.IMAP4, uid: bytes, max_bytes: int) -> bytes | None:
    # PEEK: a message that fails stays unseen, as it was. The size cap bounds memory;
    # the delivery-status part of a DSN comes before the attached original anyway.
    typ, data = client.uid("FETCH", uid, f"(BODY.PEEK[]<0.{max_bytes}>)")
    if typ != "OK":
        return None
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            return item[1]
    return None


def _done(
    client: imaplib.IMAP4, uids: list[bytes], action: str, folder: str, caps: set[str]
) -> None:
    """Mark a batch processed: seen and moved to the folder, or deleted."""
    if not uids:
        return
    uid_set = b",".join(uids).decode()
    if action == "move":
        _check(*client.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Seen)"), _("mark mail seen"))
        if "MOVE" in caps:
            _check(*client.uid("MOVE", uid_set, _quote(folder)), _("move mail"))
            return
        _check(*client.uid("COPY", uid_set, _quote(folder)), _("copy mail"))
    _check(*client.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"), _("delete mail"))
    # Plain EXPUNGE (UID EXPUNGE is not in imaplib): it also removes anything else
    # flagged \Deleted in the bounce folder, which its owner meant to be removed.
    _check(*client.expunge(), _("expunge mail"))


def bounce_mailbox_poll(
    url: str | None = None,
    *,
    domain: str | None = None,
    max_messages: int | None = None,
) -> PollResult:
    """Read the bounce mailbox once: act on every message in it (at most
    ``conf.bounce_imap_max_per_pass()``), in batches, then mark each batch processed.

    Holds no database transaction while talking to the server: each message is recorded
    in its own short transaction between the fetch and the move. Raises MailboxError
    when the mailbox cannot be reached, logged in to or changed.
    """
    config = mailbox_config(url or conf.bounce_imap_url())
    action = conf.bounce_imap_action()
    folder = conf.bounce_imap_folder()
    batch = conf.bounce_imap_batch()
    limit = max_messages or conf.bounce_imap_max_per_pass()
    max_bytes = conf.bounce_max_bytes()
    result = PollResult()
    client = mailbox_connect(config)
    try:
        caps = _capabilities(client)
        typ, data = client.select(_quote(config.folder))
        _check(typ, data, _("open the folder %(folder)s") % {"folder": config.folder})
        if action == "move":
            _folder_ensure(client, folder)
        typ, data = client.uid("SEARCH", "UNDELETED")
        uids = _check(typ, data, _("list the mail"))[0].split()[:limit]
        for start in range(0, len(uids), batch):
            done: list[bytes] = []
            for uid in uids[start : start + batch]:
                raw = _fetch(client, uid, max_bytes)
                if raw is None:
                    result.failed += 1
                    continue
                try:
                    outcomes = mailbox_message_process(raw, domain=domain)
                except Exception:
                    # A database error: leave the message for the next pass.
                    logger.exception("bounce mailbox: could not record message UID %s", uid)
                    result.failed += 1
                    continue
                if outcomes is None:
                    result.duplicates += 1
                else:
                    result.processed += 1
                    result.outcomes.extend(outcomes)
                done.append(uid)
            _done(client, done, action, folder, caps)
    except (OSError, imaplib.IMAP4.abort) as exc:
        raise MailboxError(
            _("The connection to the IMAP server %(where)s was lost: %(error)s")
            % {"where": config.where, "error": exc}
        ) from None
    except imaplib.IMAP4.error as exc:
        raise MailboxError(
            _("The IMAP server %(where)s refused a command: %(error)s")
            % {"where": config.where, "error": exc}
        ) from None
    finally:
        _logout(client)
    logger.info(
        "bounce mailbox %s: %s processed, %s already recorded, %s failed",
        config.where,
        result.processed,
        result.duplicates,
        result.failed,
    )
    return result
