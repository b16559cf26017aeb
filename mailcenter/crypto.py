"""Secrets encrypted at rest: DKIM private keys, sender passwords and API keys.

Fernet (AES-128-CBC + HMAC-SHA256) under a key derived by HKDF from
``MAILCENTER_DKIM_KEY_SECRET`` (or ``SECRET_KEY``), so a database dump alone gives none of
them away. Each kind of secret names its own ``purpose``, which goes into the derivation:
a value encrypted for one purpose cannot be decrypted as another. Nothing here logs a
secret, and no error message contains one.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils.translation import gettext as _

ENCRYPTED_PREFIX = "fernet1:"


class SecretUnavailable(Exception):
    """A stored secret cannot be decrypted (the secret that encrypted it is gone)."""


def encryption_secrets() -> list[str]:
    """Secrets that encrypt values at rest (``MAILCENTER_DKIM_KEY_SECRET``).

    Comma-separated; the first encrypts, all of them decrypt, so the secret can be rotated
    by putting the new one first. Falls back to ``SECRET_KEY`` when unset.
    """
    raw = getattr(settings, "MAILCENTER_DKIM_KEY_SECRET", "") or ""
    secrets = [part.strip() for part in raw.split(",") if part.strip()]
    return secrets or [settings.SECRET_KEY]


def _fernet_for(secret: str, purpose: bytes) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"mailcenter", info=purpose).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _cipher(purpose: bytes) -> MultiFernet:
    return MultiFernet([_fernet_for(secret, purpose) for secret in encryption_secrets()])


def encrypt(plaintext: bytes, purpose: bytes) -> str:
    """The stored form of ``plaintext``: ``fernet1:`` and the token, ASCII."""
    return ENCRYPTED_PREFIX + _cipher(purpose).encrypt(plaintext).decode("ascii")


def decrypt(stored: str, purpose: bytes) -> bytes:
    """Decrypt what ``encrypt`` stored; raise SecretUnavailable when that is impossible."""
    if not stored.startswith(ENCRYPTED_PREFIX):
        raise SecretUnavailable(_("The stored secret is in an unknown format."))
    try:
        return _cipher(purpose).decrypt(stored[len(ENCRYPTED_PREFIX) :].encode("ascii"))
    except InvalidToken:
        raise SecretUnavailable(
            _(
                "The stored secret cannot be decrypted: MAILCENTER_DKIM_KEY_SECRET (or "
                "SECRET_KEY) is not the one it was encrypted with."
            )
        ) from None
