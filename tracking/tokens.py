"""Signed tokens for the public tracking URLs.

A token names a message (and for clicks a link index) and carries an HMAC made with
SECRET_KEY, so URLs cannot be forged or altered; the salt differs per purpose so an open
token is no good as an unsubscribe token.
"""

from __future__ import annotations

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


def make_token(
    kind: str, message_id: int, link_index: int | None = None, campaign_id: int | None = None
) -> str:
    """Sign a message id (and a link index). A click token also names the campaign, so the
    redirect finds its target in a per-process copy of the link table without asking the
    database which campaign the message belongs to."""
    value = _b36(message_id)
    if link_index is not None:
        value = f"{value}-{_b36(link_index)}"
        if campaign_id is not None:
            value = f"{value}-{_b36(campaign_id)}"
    return _signer(kind).sign(value)


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
