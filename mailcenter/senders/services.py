"""Writes for senders defined in the UI, and the connection test.

Every write is one short transaction; this process's sender cache is cleared at once and
on commit, other workers pick the change up within ``MAILCENTER_SENDERS_CACHE_SECONDS``.
Secrets arrive here in plain text from the form and leave only encrypted; no message
raised or returned from here contains one.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from mailcenter import crypto
from mailcenter.models import Sender
from mailcenter.senders import conf, selectors

_ALIAS = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,98}[a-z0-9])?$")
_HOST = re.compile(r"^[A-Za-z0-9.:\[\]_-]{1,253}$")
_ESP = re.compile(r"^[A-Za-z0-9_.]{1,200}$")
# Taken by the Settings → Senders URLs.
RESERVED_ALIASES = {"new"}
FIELDS = (
    "backend",
    "host",
    "port",
    "security",
    "username",
    "timeout",
    "verify_tls",
    "local_hostname",
    "esp",
    "rate",
    "concurrency",
)


class SenderError(Exception):
    """A sender change that cannot be made; ``field`` names the input at fault, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def sender_check_alias(alias: str) -> str:
    """Return the alias, or raise SenderError when it is malformed or from configuration."""
    alias = (alias or "").strip()
    if not _ALIAS.match(alias):
        raise SenderError(
            _("Use lower-case letters, digits, “-” and “_” only (at most 100)."), "alias"
        )
    if alias in RESERVED_ALIASES:
        raise SenderError(
            _("“%(alias)s” is reserved; choose another name.") % {"alias": alias}, "alias"
        )
    if alias in conf.configured_senders():
        raise SenderError(
            _("“%(alias)s” is defined in the configuration (MAILCENTER_SENDERS).")
            % {"alias": alias},
            "alias",
        )
    return alias


def sender_check_host(host: str, *, field: str = "host") -> str:
    """A host name or IP literal with no CR, LF, space or other stray character."""
    host = host or ""
    if any(ch in host for ch in "\r\n\t ") or (host and not _HOST.match(host)):
        raise SenderError(_("Enter a host name or IP address, without spaces."), field)
    return host


def sender_check(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate the non-secret fields of a sender; return them normalised.

    Raise SenderError naming the first field at fault.
    """
    data = {name: fields.get(name) for name in FIELDS}
    if data["backend"] not in Sender.Backend.values:
        raise SenderError(_("Choose a backend."), "backend")
    if data["security"] not in Sender.Security.values:
        raise SenderError(_("Choose how the connection is secured."), "security")
    data["host"] = sender_check_host(str(data["host"] or "").strip())
    data["local_hostname"] = sender_check_host(
        str(data["local_hostname"] or "").strip(), field="local_hostname"
    )
    port = data["port"]
    if port in ("", None):
        data["port"] = None
    else:
        try:
            data["port"] = int(port)
        except (TypeError, ValueError):
            data["port"] = 0
        if not 1 <= data["port"] <= 65535:
            raise SenderError(_("A port is a number from 1 to 65535."), "port")
    try:
        data["timeout"] = float(data["timeout"] if data["timeout"] not in ("", None) else 30)
    except (TypeError, ValueError):
        data["timeout"] = -1.0
    if not 1 <= data["timeout"] <= 300:
        raise SenderError(_("The timeout is from 1 to 300 seconds."), "timeout")
    data["username"] = str(data["username"] or "").strip()
    if any(ch in data["username"] for ch in "\r\n"):
        raise SenderError(_("The user name cannot contain line breaks."), "username")
    data["esp"] = str(data["esp"] or "").strip()
    for name, cast, message in (
        ("rate", float, _("The rate is a number of messages per second above 0.")),
        ("concurrency", int, _("Batches at once is a whole number from 1 to 1000.")),
    ):
        value = data[name]
        if value in ("", None, 0):
            data[name] = None
            continue
        try:
            data[name] = cast(value)
        except (TypeError, ValueError):
            raise SenderError(message, name) from None
        if not 0 < data[name] <= (100_000 if name == "rate" else 1000):
            raise SenderError(message, name)
    # Verified unless asked otherwise (the form always says; a caller may leave it out).
    data["verify_tls"] = bool(fields.get("verify_tls", True))
    if data["backend"] == Sender.Backend.SMTP and not data["host"]:
        raise SenderError(_("An SMTP relay needs a host."), "host")
    if data["backend"] == Sender.Backend.MX and data["security"] == Sender.Security.TLS:
        raise SenderError(
            _("Direct delivery cannot use TLS from the start: MX hosts speak STARTTLS."),
            "security",
        )
    if data["backend"] == Sender.Backend.ANYMAIL and not _ESP.match(data["esp"]):
        raise SenderError(
            _("Name the Anymail ESP, such as unisender_go, mailgun or amazon_ses."), "esp"
        )
    return data


def _clear_cache() -> None:
    selectors.clear_cache()
    transaction.on_commit(selectors.clear_cache)


@sensitive_variables("password", "api_key", "secret", "secrets", "options", "config")
def _set_secrets(
    sender: Sender,
    password: str | None,
    clear_password: bool,
    api_key: str | None,
    clear_api_key: bool,
) -> None:
    for secret, clear, attr, purpose, field in (
        (password, clear_password, "password_encrypted", selectors.PASSWORD_PURPOSE, "password"),
        (api_key, clear_api_key, "api_key_encrypted", selectors.API_KEY_PURPOSE, "api_key"),
    ):
        if clear:
            setattr(sender, attr, "")
        elif secret:
            if any(ch in secret for ch in "\r\n"):
                raise SenderError(_("A secret cannot contain line breaks."), field)
            setattr(sender, attr, crypto.encrypt(secret.encode("utf-8"), purpose))


@sensitive_variables("password", "api_key", "secret", "secrets", "options", "config")
def sender_create(
    alias: str,
    fields: dict[str, Any],
    *,
    password: str | None = None,
    api_key: str | None = None,
) -> Sender:
    """Add a sender; raise SenderError for bad input or an alias already taken."""
    alias = sender_check_alias(alias)
    sender = Sender(alias=alias, **sender_check(fields))
    _set_secrets(sender, password, False, api_key, False)
    try:
        with transaction.atomic():
            sender.save()
            _clear_cache()
    except IntegrityError:
        raise SenderError(
            _("There is already a sender named “%(alias)s”.") % {"alias": alias}, "alias"
        ) from None
    return sender


@sensitive_variables("password", "api_key", "secret", "secrets", "options", "config")
def sender_update(
    sender_id: int,
    fields: dict[str, Any],
    *,
    password: str | None = None,
    clear_password: bool = False,
    api_key: str | None = None,
    clear_api_key: bool = False,
) -> Sender:
    """Change a sender's settings. An empty secret keeps the stored one; ``clear_*``
    removes it. The alias never changes (campaigns name the sender by it). Raise
    SenderError for bad input; Sender.DoesNotExist when there is no such sender."""
    data = sender_check(fields)
    with transaction.atomic():
        sender = Sender.objects.select_for_update().get(pk=sender_id)
        for name, value in data.items():
            setattr(sender, name, value)
        _set_secrets(sender, password, clear_password, api_key, clear_api_key)
        sender.save()
        _clear_cache()
    return sender


def sender_delete(sender_id: int) -> None:
    """Delete a sender; raise SenderError while a sending or paused campaign uses it.

    The campaign check and the delete are one transaction with the sender row locked;
    ``campaign_start`` locks the row too (``selectors.sender_lock``), so a campaign started
    meanwhile is either seen here or refused at its start.
    """
    with transaction.atomic():
        sender = Sender.objects.select_for_update().get(pk=sender_id)
        in_use = selectors.sender_campaigns_in_use(sender.alias)
        if in_use:
            raise SenderError(
                _(
                    "“%(alias)s” cannot be deleted: %(count)s campaign(s) sending or paused "
                    "use it. Let them finish or cancel them first."
                )
                % {"alias": sender.alias, "count": in_use}
            )
        sender.delete()
        _clear_cache()


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    message: str


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


def _reply_text(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    return f"{exc.smtp_code} {text}".strip()


def _smtp_failure(exc: BaseException | None, host: str, port: int, timeout: float) -> str:
    """The reason an SMTP session could not be opened, in plain words."""
    where = f"{host}:{port}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return _("The server refused the user name or password: %(reply)s") % {
            "reply": _reply_text(exc)
        }
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return _("The server does not offer this: %(what)s") % {"what": str(exc)}
    if isinstance(exc, smtplib.SMTPConnectError):
        return _("The server at %(where)s refused the session: %(reply)s") % {
            "where": where,
            "reply": _reply_text(exc),
        }
    if isinstance(exc, smtplib.SMTPResponseException):
        return _("The server answered: %(reply)s") % {"reply": _reply_text(exc)}
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _("The server at %(where)s closed the connection.") % {"where": where}
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _("The server's TLS certificate is not trusted: %(reason)s") % {
            "reason": exc.verify_message or str(exc)
        }
    if isinstance(exc, ssl.SSLError):
        return _("TLS could not be set up with %(where)s: %(reason)s") % {
            "where": where,
            "reason": exc.reason or str(exc),
        }
    if isinstance(exc, ConnectionRefusedError):
        return _("Connection refused: nothing accepts connections on %(where)s.") % {"where": where}
    if isinstance(exc, TimeoutError | socket.timeout):
        return _("No answer from %(where)s within %(seconds)s seconds.") % {
            "where": where,
            "seconds": f"{timeout:g}",
        }
    if isinstance(exc, socket.gaierror):
        return _("The host name %(host)s cannot be resolved.") % {"host": host}
    if isinstance(exc, OSError):
        return _("Cannot connect to %(where)s: %(reason)s") % {
            "where": where,
            "reason": exc.strerror or str(exc),
        }
    return _("The session could not be opened: %(reason)s") % {"reason": str(exc)}


@sensitive_variables("password", "api_key", "secret", "secrets", "options", "config")
def sender_test(alias: str) -> ConnectionTest:
    """Open a session with the sender's backend and close it; say how it went.

    SMTP: connect, STARTTLS or TLS, AUTH, QUIT, bounded by ``MAILCENTER_SENDER_TEST_TIMEOUT``.
    Never raises for the server's answer: the result says it in plain words, with any secret
    of the sender masked.
    """
    from mailcenter.delivery import BACKENDS, DeliveryError, UnknownSender, get_backend

    try:
        config = selectors.sender_config(alias)
    except crypto.SecretUnavailable:
        return ConnectionTest(False, _("The sender's password or API key cannot be decrypted."))
    if config is None:
        return ConnectionTest(False, _("There is no sender named “%(alias)s”.") % {"alias": alias})
    backend_name = config.get("BACKEND", "outbox")
    options = dict(config.get("OPTIONS") or {})
    secrets = [str(options.get("password") or "")]
    secrets += [str(v) for v in (options.get("esp_settings") or {}).values()]
    if backend_name == "outbox":
        return ConnectionTest(True, _("The outbox keeps messages here: nothing to connect to."))
    if backend_name == "mx":
        return ConnectionTest(
            True,
            _(
                "Direct delivery has no single server to test: it connects to each recipient "
                "domain's MX hosts when it sends."
            ),
        )
    if backend_name not in BACKENDS:
        return ConnectionTest(False, _("Unknown backend “%(name)s”.") % {"name": backend_name})
    timeout = min(float(options.get("timeout", 30)), conf.sender_test_timeout())
    try:
        backend = get_backend(alias)
    except (UnknownSender, DeliveryError) as exc:
        return ConnectionTest(False, _scrub(str(exc), secrets))
    if backend_name == "anymail":
        try:
            backend.open()
        except DeliveryError as exc:
            return ConnectionTest(False, _scrub(str(exc), secrets))
        finally:
            backend.close()
        return ConnectionTest(
            True,
            _("The ESP backend loads. The provider checks the API key at the first send."),
        )
    # SMTP: a fresh connection (never a pooled one), closed with QUIT.
    backend.timeout = timeout  # type: ignore[attr-defined]
    host = str(options.get("host", "127.0.0.1"))
    port = int(options.get("port", 25))
    try:
        conn = backend.connect()  # type: ignore[attr-defined]
    except DeliveryError as exc:
        message = _smtp_failure(exc.__cause__, host, port, timeout)
        return ConnectionTest(False, _scrub(message, secrets))
    extensions = sorted(conn.esmtp_features)
    tls = isinstance(conn.sock, ssl.SSLSocket)
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()
    parts = [_("Connected to %(where)s.") % {"where": f"{host}:{port}"}]
    parts.append(_("The connection is encrypted.") if tls else _("The connection is plaintext."))
    if options.get("username"):
        parts.append(_("Logged in as %(user)s.") % {"user": options["username"]})
    if extensions:
        parts.append(_("The server offers: %(ext)s.") % {"ext": ", ".join(extensions)})
    return ConnectionTest(True, _scrub(" ".join(parts), secrets))
