"""Signed tokens for the public tracking URLs.

A token names a message (and for clicks a link index) and carries an HMAC made with
SECRET_KEY, so URLs cannot be forged or altered; the salt differs per purpose so an open
token is no good as an unsubscribe token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from django.conf import settings
from django.core import signing

# "preferences": the preference centre (contacts app), named by the message it came in.
KINDS = frozenset({"open", "click", "unsubscribe", "webview", "bounce", "preferences"})


class BadToken(Exception):
    pass


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
        if not number:
            return out


def _signer(kind: str) -> signing.Signer:
    if kind not in KINDS:
        raise ValueError(kind)
    return signing.Signer(salt=f"mailcenter.tracking.{kind}", sep=".")


@lru_cache(maxsize=32)
def _mac(kind: str, secret: str | bytes) -> hmac.HMAC:
    # What django.core.signing.Signer(salt=..., sep=".").sign computes, with its derived key
    # (SHA-256 of salt + "signer" + secret) made once: Signer derives it and reads settings
    # on every call, over half the cost of a token, and a message carries a dozen tokens.
    salt = f"mailcenter.tracking.{kind}signer".encode()
    key = hashlib.sha256(salt + (secret if isinstance(secret, bytes) else secret.encode())).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def make_token(
    kind: str, message_id: int, link_index: int | None = None, campaign_id: int | None = None
) -> str:
    """Sign a message id (and a link index). A click token also names the campaign, so the
    redirect finds its target in a per-process copy of the link table without asking the
    database which campaign the message belongs to.

    The token is exactly ``_signer(kind).sign(value)``; ``read_token`` checks it with
    Django's Signer, so SECRET_KEY_FALLBACKS keep working for old tokens."""
    if kind not in KINDS:
        raise ValueError(kind)
    value = _b36(message_id)
    if link_index is not None:
        value = f"{value}-{_b36(link_index)}"
        if campaign_id is not None:
            value = f"{value}-{_b36(campaign_id)}"
    mac = _mac(kind, settings.SECRET_KEY).copy()
    mac.update(value.encode())
    return f"{value}.{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"


def read_click_token(token: str) -> tuple[int, int, int | None]:
    """Return (message id, link index, campaign id or None for tokens made before click
    tokens named their campaign); raise BadToken for anything not ours."""
    try:
        parts = _signer("click").unsign(token).split("-")
        if len(parts) not in (2, 3):
            raise ValueError(token)
        numbers = [int(part, 36) for part in parts]
    except (signing.BadSignature, ValueError):
        raise BadToken(token) from None
    return numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else None


def read_token(kind: str, token: str) -> tuple[int, int | None]:
    """Return (message id, link index or None); raise BadToken for anything not ours."""
    if kind == "click":
        message_id, index, _campaign_id = read_click_token(token)
        return message_id, index
    try:
        value = _signer(kind).unsign(token)
        if "-" in value:
            message_part, link_part = value.split("-", 1)
            return int(message_part, 36), int(link_part, 36)
        return int(value, 36), None
    except (signing.BadSignature, ValueError):
        raise BadToken(token) from None
