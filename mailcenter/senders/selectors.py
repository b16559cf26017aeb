"""Reads for senders: resolving an alias to its configuration, and the list the UI shows.

A sender from ``MAILCENTER_SENDERS`` wins over a database row of the same alias (the UI
refuses to create one, but the setting can be added later). Database senders are cached
per process for ``MAILCENTER_SENDERS_CACHE_SECONDS``; the writes in ``services`` clear this
process's cache, other processes see a change when their copy expires.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.views.decorators.debug import sensitive_variables

from mailcenter import crypto
from mailcenter.models import Sender
from mailcenter.senders import conf

# HKDF purposes (see mailcenter.crypto): a password cannot be decrypted as an API key.
PASSWORD_PURPOSE = b"sender password"
API_KEY_PURPOSE = b"sender api key"

# Campaign statuses during which the sender is needed.
IN_USE_STATUSES = ("sending", "paused")

_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget this process's copy of the database senders."""
    with _cache_lock:
        _cache.clear()


@sensitive_variables()
def _secret(stored: str, purpose: bytes) -> str:
    if not stored:
        return ""
    return crypto.decrypt(stored, purpose).decode("utf-8")


@sensitive_variables("options", "api_key")
def sender_row_config(sender: Sender) -> dict[str, Any]:
    """The ``{"BACKEND", "OPTIONS"}`` configuration of a database sender, secrets decrypted.

    Raise ``crypto.SecretUnavailable`` when a secret cannot be decrypted. The result holds
    secrets: it is for a backend, never for a page or a log line.
    """
    options: dict[str, Any] = {}
    if sender.backend == Sender.Backend.SMTP:
        options = {
            "host": sender.host,
            "port": sender.port or (465 if sender.security == Sender.Security.TLS else 587),
            "security": sender.security,
            "timeout": sender.timeout,
            "verify_tls": sender.verify_tls,
        }
        if sender.username:
            options["username"] = sender.username
            options["password"] = _secret(sender.password_encrypted, PASSWORD_PURPOSE)
        if sender.local_hostname:
            options["local_hostname"] = sender.local_hostname
    elif sender.backend == Sender.Backend.MX:
        tls = {
            Sender.Security.STARTTLS: "required",
            Sender.Security.NONE: "none",
        }.get(sender.security, "opportunistic")
        options = {"port": sender.port or 25, "timeout": sender.timeout, "tls": tls}
        if sender.local_hostname:
            options["local_hostname"] = sender.local_hostname
    elif sender.backend == Sender.Backend.ANYMAIL:
        options = {"esp": sender.esp, "envelope_sender": False}
        api_key = _secret(sender.api_key_encrypted, API_KEY_PURPOSE)
        if api_key:
            options["esp_settings"] = {"api_key": api_key}
    if sender.rate:
        options["rate"] = sender.rate
    if sender.concurrency:
        options["concurrency"] = sender.concurrency
    return {"BACKEND": sender.backend, "OPTIONS": options}


def _database_senders() -> dict[str, dict[str, Any] | None]:
    """alias → configuration (None when its secrets cannot be decrypted), cached."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get("senders")
        if hit is not None and hit[0] > now:
            return hit[1]
    loaded: dict[str, dict[str, Any] | None] = {}
    for sender in Sender.objects.all():
        try:
            loaded[sender.alias] = sender_row_config(sender)
        except crypto.SecretUnavailable:
            loaded[sender.alias] = None
    with _cache_lock:
        _cache["senders"] = (now + conf.senders_cache_seconds(), loaded)
    return loaded


def sender_config(alias: str) -> dict[str, Any] | None:
    """The configuration of ``alias`` (settings first, then the database), or None.

    Settings aliases cost no query. A database sender whose secret cannot be decrypted
    raises ``crypto.SecretUnavailable``, so that the send fails loudly rather than
    logging in without a password.
    """
    configured = conf.configured_senders()
    if alias in configured:
        return configured[alias]
    database = _database_senders()
    if alias not in database:
        return None
    config = database[alias]
    if config is None:
        raise crypto.SecretUnavailable(alias)
    return config


def sender_aliases() -> list[str]:
    """Every alias a campaign can use: settings ones first (``default`` among them)."""
    configured = list(conf.configured_senders())
    return configured + sorted(a for a in _database_senders() if a not in configured)


@dataclass(frozen=True)
class SenderRow:
    """What the UI shows of a sender: never a secret, only whether one is set."""

    alias: str
    backend: str
    summary: str
    from_configuration: bool
    pk: int | None = None
    password_set: bool = False
    api_key_set: bool = False
    in_use: int = 0


def _summary(backend: str, options: dict[str, Any]) -> str:
    if backend == "smtp":
        return f"{options.get('host', '127.0.0.1')}:{options.get('port', 25)}"
    if backend == "anymail":
        return str(options.get("esp") or options.get("esp_backend") or "")
    return ""


def _in_use_counts() -> dict[str, int]:
    from django.db.models import Count

    from campaigns.models import Campaign

    rows = (
        Campaign.objects.filter(status__in=IN_USE_STATUSES).values("sender").annotate(n=Count("id"))
    )
    return {row["sender"]: row["n"] for row in rows}


def sender_list() -> list[SenderRow]:
    """Every sender for Settings → Senders: configuration ones (read-only) then the UI's."""
    in_use = _in_use_counts()
    configured = conf.configured_senders()
    rows = [
        SenderRow(
            alias=alias,
            backend=str(config.get("BACKEND", "outbox")),
            summary=_summary(str(config.get("BACKEND", "outbox")), config.get("OPTIONS") or {}),
            from_configuration=True,
            in_use=in_use.get(alias, 0),
        )
        for alias, config in configured.items()
    ]
    for sender in Sender.objects.exclude(alias__in=list(configured)).order_by("alias"):
        options = {"host": sender.host, "port": sender.port or "", "esp": sender.esp}
        rows.append(
            SenderRow(
                alias=sender.alias,
                backend=sender.backend,
                summary=_summary(sender.backend, options),
                from_configuration=False,
                pk=sender.pk,
                password_set=bool(sender.password_encrypted),
                api_key_set=bool(sender.api_key_encrypted),
                in_use=in_use.get(sender.alias, 0),
            )
        )
    return rows


def sender_campaigns_in_use(alias: str) -> int:
    """How many campaigns that are sending or paused use ``alias``."""
    from campaigns.models import Campaign

    return Campaign.objects.filter(sender=alias, status__in=IN_USE_STATUSES).count()


def sender_lock(alias: str) -> bool:
    """Lock a UI sender's row for the current transaction; False when it no longer exists.

    True at once for a configuration sender (nothing to lock). Bypasses the cache: this is
    the check that makes starting a campaign and deleting its sender exclusive.
    """
    if alias in conf.configured_senders():
        return True
    return Sender.objects.select_for_update().filter(alias=alias).exists()


def sender_draft_count(alias: str) -> int:
    """Draft campaigns that name ``alias``: they cannot start once it is deleted."""
    from campaigns.models import Campaign

    return Campaign.objects.filter(sender=alias, status="draft").count()
