"""DKIM key pairs: generation, encryption at rest, and the DNS record that publishes them.

Private keys are PKCS#8 PEM encrypted at rest by ``mailcenter.crypto`` (Fernet under a key
derived from ``MAILCENTER_DKIM_KEY_SECRET`` or ``SECRET_KEY``), so a database dump alone
does not give away the domain's signing key. Nothing here logs a key.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.utils.translation import gettext as _

from mailcenter import crypto

RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"
ALGORITHMS = (RSA, ED25519)
RSA_BITS = 2048
# A DNS TXT record is a list of character-strings of at most 255 bytes each.
TXT_STRING_MAX = 255
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class KeyUnavailable(Exception):
    """A stored private key cannot be decrypted (the secret that encrypted it is gone)."""


@dataclass(frozen=True)
class GeneratedKey:
    algorithm: str
    private_pem: bytes
    public_key: str  # base64, the p= tag


def generate(algorithm: str) -> GeneratedKey:
    """Make a fresh key pair: RSA-2048 (e=65537) or Ed25519."""
    if algorithm == RSA:
        private: PrivateKey = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    elif algorithm == ED25519:
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return GeneratedKey(algorithm, pem, public_key_of(private))


def public_key_of(private: PrivateKey) -> str:
    """The p= value: DER SubjectPublicKeyInfo for RSA (RFC 6376), the raw 32 bytes for
    Ed25519 (RFC 8463)."""
    public = private.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        data = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        data = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(data).decode("ascii")


# The HKDF "info" DKIM keys have been encrypted under since the first release.
_PURPOSE = b"dkim private key"


def encrypt_private_key(pem: bytes) -> str:
    return crypto.encrypt(pem, _PURPOSE)


def decrypt_private_key(stored: str) -> bytes:
    if not stored.startswith(crypto.ENCRYPTED_PREFIX):
        raise KeyUnavailable(_("The stored key is in an unknown format."))
    try:
        return crypto.decrypt(stored, _PURPOSE)
    except crypto.SecretUnavailable:
        raise KeyUnavailable(
            _(
                "The private key cannot be decrypted: MAILCENTER_DKIM_KEY_SECRET (or SECRET_KEY) "
                "is not the one it was encrypted with."
            )
        ) from None


@lru_cache(maxsize=64)
def load_private_key(stored: str) -> PrivateKey:
    """Decrypt and parse a stored key; cached per process, so each key is parsed once."""
    key = serialization.load_pem_private_key(decrypt_private_key(stored), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyUnavailable(_("The stored key is neither RSA nor Ed25519."))
    return key


def valid_selector(selector: str) -> bool:
    return bool(_SELECTOR.match(selector))


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def record_value(algorithm: str, public_key: str) -> str:
    kind = "ed25519" if algorithm == ED25519 else "rsa"
    return f"v=DKIM1; k={kind}; p={public_key}"


def split_txt(value: str) -> list[str]:
    """Cut a TXT value into the <=255-byte character-strings DNS can carry; a resolver
    joins them back without separators."""
    data = value.encode("ascii")
    return [
        data[i : i + TXT_STRING_MAX].decode("ascii") for i in range(0, len(data), TXT_STRING_MAX)
    ] or [""]


def zone_line(selector: str, domain: str, algorithm: str, public_key: str) -> str:
    """The record as a zone-file line, split into quoted strings where needed."""
    quoted = " ".join(f'"{part}"' for part in split_txt(record_value(algorithm, public_key)))
    return f"{record_name(selector, domain)}.  TXT  {quoted}"
