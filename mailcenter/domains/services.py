"""Writes for sending domains and their DKIM keys.

Keys change rarely and by hand, so every write here is one short transaction; the signing
cache of this process is cleared on commit, other workers see the change within
``MAILCENTER_DKIM_CACHE_SECONDS``.
"""

from __future__ import annotations

import re
import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from mailcenter.domains import keys, signing
from mailcenter.models import DkimKey, SendingDomain

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DomainError(Exception):
    """A request about sending domains that cannot be carried out; the message says why."""


def normalise_domain(value: str) -> str:
    """Return the domain in lower-case ASCII (IDNA for international names), or raise
    DomainError saying what is wrong with it."""
    value = (value or "").strip().rstrip(".").lower()
    if "@" in value:
        value = value.rpartition("@")[2]
    if not value:
        raise DomainError(_("Enter a domain name, such as example.com."))
    if any(ch in value for ch in "\r\n\t /\\"):
        raise DomainError(_("A domain name cannot contain spaces or slashes."))
    try:
        ascii_name = value.encode("idna").decode("ascii")
    except UnicodeError:
        raise DomainError(
            _("“%(domain)s” is not a valid domain name.") % {"domain": value}
        ) from None
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253 or not all(_LABEL.match(x) for x in labels):
        raise DomainError(
            _("“%(domain)s” is not a valid domain name: use a name such as example.com.")
            % {"domain": value}
        )
    return ascii_name


def _on_commit_clear() -> None:
    # Now, for this process's next message, and again on commit, in case another thread
    # reloaded the old state in between.
    signing.clear_cache()
    transaction.on_commit(signing.clear_cache)


def sending_domain_create(domain: str) -> SendingDomain:
    """Add a sending domain; raise DomainError when the name is invalid or already there."""
    name = normalise_domain(domain)
    try:
        with transaction.atomic():
            return SendingDomain.objects.create(domain=name)
    except IntegrityError:
        raise DomainError(_("%(domain)s is already a sending domain.") % {"domain": name}) from None


def sending_domain_delete(domain_id: int) -> bool:
    """Delete a domain and its keys: its mail goes out unsigned from then on."""
    with transaction.atomic():
        deleted, _rows = SendingDomain.objects.filter(pk=domain_id).delete()
        _on_commit_clear()
    return bool(deleted)


def _new_selector(domain: SendingDomain, algorithm: str) -> str:
    # Dated, so the DNS zone shows which key is which; a random tail keeps two keys made
    # on one day apart.
    kind = "ed" if algorithm == keys.ED25519 else "rsa"
    return f"mc{timezone.now():%Y%m}{kind}{secrets.token_hex(2)}"


def dkim_key_generate(domain_id: int, algorithm: str, selector: str = "") -> DkimKey:
    """Generate a key pair for the domain.

    The first key of an algorithm is active at once (nothing is signed with that algorithm
    yet, so nothing can break). A further one is a rotation: it waits, inactive, until its
    DNS record is published and it is activated, so mail never carries a signature that
    receivers cannot check yet. Raise DomainError for a bad algorithm or selector.
    """
    if algorithm not in keys.ALGORITHMS:
        raise DomainError(_("Choose RSA or Ed25519."))
    selector = (selector or "").strip().lower()
    if selector and not keys.valid_selector(selector):
        raise DomainError(
            _(
                "A selector is one DNS label: letters, digits and hyphens, at most 63, "
                "not starting or ending with a hyphen."
            )
        )
    generated = keys.generate(algorithm)
    try:
        with transaction.atomic():
            domain = SendingDomain.objects.select_for_update().get(pk=domain_id)
            selector = selector or _new_selector(domain, algorithm)
            if DkimKey.objects.filter(domain=domain, selector=selector).exists():
                raise DomainError(
                    _("%(domain)s already has a key with the selector “%(selector)s”.")
                    % {"domain": domain.domain, "selector": selector}
                )
            first = not DkimKey.objects.filter(
                domain=domain, algorithm=algorithm, active=True
            ).exists()
            key = DkimKey.objects.create(
                domain=domain,
                selector=selector,
                algorithm=algorithm,
                private_key_encrypted=keys.encrypt_private_key(generated.private_pem),
                public_key=generated.public_key,
                active=first,
            )
            _on_commit_clear()
            return key
    except SendingDomain.DoesNotExist:
        raise DomainError(_("That sending domain no longer exists.")) from None


def dkim_key_activate(key_id: int) -> DkimKey:
    """Make this key the one that signs for its algorithm; the previous one is kept,
    inactive, so its DNS record can stay until mail signed with it has been delivered."""
    with transaction.atomic():
        try:
            key = DkimKey.objects.select_for_update().select_related("domain").get(pk=key_id)
        except DkimKey.DoesNotExist:
            raise DomainError(_("That key no longer exists.")) from None
        DkimKey.objects.filter(domain=key.domain, algorithm=key.algorithm, active=True).exclude(
            pk=key.pk
        ).update(active=False)
        if not key.active:
            key.active = True
            key.save(update_fields=["active"])
        _on_commit_clear()
    return key


def dkim_key_deactivate(key_id: int) -> bool:
    """Stop signing with this key (its mail goes out without this signature)."""
    with transaction.atomic():
        changed = DkimKey.objects.filter(pk=key_id, active=True).update(active=False)
        _on_commit_clear()
    return bool(changed)


def dkim_key_delete(key_id: int) -> bool:
    """Delete a key for good: the private key is gone and cannot be shown or restored."""
    with transaction.atomic():
        deleted, _rows = DkimKey.objects.filter(pk=key_id).delete()
        _on_commit_clear()
    return bool(deleted)
