"""DKIM signatures on everything the app sends, verified by dkimpy's verifier.

dkimpy gets the public key through its ``dnsfunc`` hook (the DNS lookup callback it
offers for exactly this); our signer is the real one, and messages go through a real SMTP
server on loopback.
"""

from __future__ import annotations

import logging
import re
from email import message_from_bytes, policy

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from django.core import mail

from campaigns import rendering, services
from mailcenter.domains import keys, signing
from mailcenter.domains import services as domain_services
from mailcenter.models import DkimKey
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

REQUIRED = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
}


@pytest.fixture(autouse=True)
def _fresh_signing_cache():
    signing.clear_cache()
    yield
    signing.clear_cache()


def published(*dkim_keys: DkimKey):
    """dkimpy's DNS callback, answering with the records of ``dkim_keys`` only."""
    records = {
        f"{k.selector}._domainkey.{k.domain.domain}.": keys.record_value(
            k.algorithm, k.public_key
        ).encode()
        for k in dkim_keys
    }

    def dnsfunc(name, timeout=5):
        return records.get(name.decode() if isinstance(name, bytes) else name)

    return dnsfunc


def signature_tags(raw: bytes, index: int = 0) -> dict[str, str]:
    parsed = message_from_bytes(raw, policy=policy.compat32)
    value = re.sub(r"\s+", "", parsed.get_all("DKIM-Signature")[index])
    return dict(part.split("=", 1) for part in value.split(";") if part)


def verify_all(raw: bytes, dnsfunc) -> list[bool]:
    count = len(message_from_bytes(raw, policy=policy.compat32).get_all("DKIM-Signature") or [])
    checker = dkim.DKIM(raw)
    return [checker.verify(idx=i, dnsfunc=dnsfunc) for i in range(count)]


def _campaign(n=2, **kw):
    mailing_list = MailingListFactory()
    for _ in range(n):
        SubscriptionFactory(mailing_list=mailing_list)
    return CampaignFactory(lists=[mailing_list], **kw)


def _send(campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_start(campaign.pk)


@pytest.mark.parametrize("algorithm", [keys.RSA, keys.ED25519])
def test_campaign_messages_are_signed_and_verify(
    algorithm, smtp_sender, django_capture_on_commit_callbacks
):
    domain = domain_services.sending_domain_create("example.com")
    key = domain_services.dkim_key_generate(domain.pk, algorithm, "s1")
    # A long non-ASCII subject: build_mime folds it as RFC 2047 words over several lines,
    # and relaxed canonicalisation must unfold it the same way on both sides.
    campaign = _campaign(
        subject="Größte Herbst-Angebote für {{ contact.first_name }} — jetzt mit Rabatt "
        "auf Jacken, Schuhe und Zubehör, nur diese Woche",
        from_email="news@example.com",
    )
    _send(campaign, django_capture_on_commit_callbacks)
    received = smtp_sender.handler.received
    assert len(received) == 2
    for item in received:
        raw = item.data
        assert raw.count(b"DKIM-Signature:") == 1  # signed once, not again anywhere
        tags = signature_tags(raw)
        assert tags["a"] == algorithm
        assert tags["c"] == "relaxed/relaxed"
        assert (tags["d"], tags["s"]) == ("example.com", "s1")
        assert set(tags["h"].lower().split(":")) >= REQUIRED
        assert b"Subject: =?utf-8?" in raw and b"\r\n =?utf-8?" in raw  # really folded
        assert dkim.verify(raw, dnsfunc=published(key))
        # Still an ordinary message.
        parsed = item.parsed()
        assert parsed["Subject"].startswith("Größte Herbst-Angebote für First")
        assert parsed.get_body(preferencelist=("html",)) is not None
        # Changing a covered header or the body breaks it.
        relaxed = raw.replace(b"List-Unsubscribe-Post: List", b"List-Unsubscribe-Post: \t List")
        assert dkim.verify(relaxed, dnsfunc=published(key))  # whitespace does not matter
        changed = raw.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Two-Click")
        assert not dkim.verify(changed, dnsfunc=published(key))
        assert not dkim.verify(raw.replace(b"Offer</a>", b"Offre</a>"), dnsfunc=published(key))
        forged = raw.replace(b"\r\nTo: ", b"\r\nTo: victim@example.net\r\nTo: ", 1)
        assert not dkim.verify(forged, dnsfunc=published(key))


def test_rsa_and_ed25519_together_give_two_signatures(
    smtp_sender, django_capture_on_commit_callbacks
):
    domain = domain_services.sending_domain_create("example.com")
    rsa = domain_services.dkim_key_generate(domain.pk, keys.RSA)
    ed = domain_services.dkim_key_generate(domain.pk, keys.ED25519)
    _send(_campaign(1), django_capture_on_commit_callbacks)
    raw = smtp_sender.handler.received[0].data
    assert signature_tags(raw, 0)["a"] == "rsa-sha256"  # the one every receiver checks, on top
    assert signature_tags(raw, 1)["a"] == "ed25519-sha256"
    assert verify_all(raw, published(rsa, ed)) == [True, True]


def test_no_key_no_signature_and_an_inactive_key_does_not_sign(
    smtp_sender, django_capture_on_commit_callbacks
):
    domain = domain_services.sending_domain_create("example.com")
    key = domain_services.dkim_key_generate(domain.pk, keys.ED25519)
    domain_services.dkim_key_deactivate(key.pk)
    _send(_campaign(1, from_email="news@example.com"), django_capture_on_commit_callbacks)
    _send(_campaign(1, from_email="news@other.example"), django_capture_on_commit_callbacks)
    assert [b"DKIM-Signature" in r.data for r in smtp_sender.handler.received] == [False, False]


def test_a_subdomain_is_signed_with_its_parent_domains_key(
    smtp_sender, django_capture_on_commit_callbacks
):
    domain = domain_services.sending_domain_create("example.com")
    key = domain_services.dkim_key_generate(domain.pk, keys.RSA)
    _send(_campaign(1, from_email="news@mail.example.com"), django_capture_on_commit_callbacks)
    raw = smtp_sender.handler.received[0].data
    assert signature_tags(raw)["d"] == "example.com"
    assert dkim.verify(raw, dnsfunc=published(key))


def test_test_sends_are_signed(smtp_sender):
    domain = domain_services.sending_domain_create("example.com")
    key = domain_services.dkim_key_generate(domain.pk, keys.RSA)
    campaign = _campaign(1)
    result = services.campaign_send_test(campaign, "me@example.org")
    assert result.code == 250
    raw = smtp_sender.handler.received[0].data
    assert b"[Test]" in raw
    assert dkim.verify(raw, dnsfunc=published(key))


def test_password_reset_mail_is_signed(client, user, settings, smtp_sender):
    settings.EMAIL_BACKEND = "mailcenter.delivery.django_backend.DeliveryEmailBackend"
    settings.DEFAULT_FROM_EMAIL = "Mailcenter <mailcenter@example.com>"
    domain = domain_services.sending_domain_create("example.com")
    key = domain_services.dkim_key_generate(domain.pk, keys.ED25519)
    client.post("/accounts/password_reset/", {"email": user.email})
    raw = smtp_sender.handler.received[0].data
    assert b"Subject:" in raw
    assert signature_tags(raw)["a"] == "ed25519-sha256"
    assert dkim.verify(raw, dnsfunc=published(key))
    assert not mail.outbox  # it went through our backend, not Django's test outbox


def test_non_ascii_recipient_through_the_stdlib_path_verifies(db):
    domain = domain_services.sending_domain_create("example.com")
    key = domain_services.dkim_key_generate(domain.pk, keys.RSA)
    campaign = CampaignFactory(from_email="news@example.com")
    compiled = rendering.compile_campaign(campaign)
    recipient = "joerg@bücher.example"
    rendered = rendering.render_message(compiled, rendering.contact_context(recipient), 7)
    raw = rendering.build_mime(compiled, rendered, recipient, message_id_value="<m@x>")
    signed = signing.dkim_sign_message(raw, campaign.from_email)
    assert dkim.verify(signed, dnsfunc=published(key))


def test_signing_is_idempotent(db):
    domain = domain_services.sending_domain_create("example.com")
    key = domain_services.dkim_key_generate(domain.pk, keys.RSA)
    raw = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
    once = signing.dkim_sign_message(raw, "a@example.com")
    twice = signing.dkim_sign_message(once, "a@example.com")
    assert once == twice
    assert once.count(b"DKIM-Signature:") == 1
    assert dkim.verify(twice, dnsfunc=published(key))


def test_bare_lf_messages_are_normalised_and_verify(db):
    domain = domain_services.sending_domain_create("example.com")
    key = domain_services.dkim_key_generate(domain.pk, keys.ED25519)
    raw = b"From: a@example.com\nTo: b@example.org\nSubject: hi\n  there\n\nbody  \n\n"
    signed = signing.dkim_sign_message(raw, "a@example.com")
    assert b"\n" not in signed.replace(b"\r\n", b"")
    assert dkim.verify(signed, dnsfunc=published(key))


def test_relaxed_canonicalisation_matches_rfc_6376_example():
    # RFC 6376 section 3.4.5.
    headers, body, _raw = signing.split_message(
        b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n"
    )
    assert b"".join(signing.canonical_header(n, v) for n, v in headers) == (b"a:X\r\nb:Y Z\r\n")
    assert signing.canonical_body(body) == b" C\r\nD E\r\n"
    assert signing.canonical_body(b"\r\n\r\n") == b""


def test_a_key_that_cannot_be_decrypted_sends_unsigned_and_logs_no_secret(db, settings, caplog):
    domain = domain_services.sending_domain_create("example.com")
    key = domain_services.dkim_key_generate(domain.pk, keys.RSA, "s1")
    settings.MAILCENTER_DKIM_KEY_SECRET = "a different secret"
    keys.load_private_key.cache_clear()
    signing.clear_cache()
    raw = b"From: a@example.com\r\nTo: b@example.org\r\n\r\nbody\r\n"
    with caplog.at_level(logging.ERROR):
        assert signing.dkim_sign_message(raw, "a@example.com") == raw
    assert "s1" in caplog.text
    assert key.private_key_encrypted[8:40] not in caplog.text
    assert "PRIVATE" not in caplog.text


def test_private_keys_are_encrypted_and_the_secret_can_rotate(db, settings):
    generated = keys.generate(keys.RSA)
    settings.MAILCENTER_DKIM_KEY_SECRET = "old-secret"
    stored = keys.encrypt_private_key(generated.private_pem)
    assert b"PRIVATE" not in stored.encode()
    assert keys.decrypt_private_key(stored) == generated.private_pem
    # New secret first, old one still listed: old keys still decrypt, new ones use the new.
    settings.MAILCENTER_DKIM_KEY_SECRET = "new-secret, old-secret"
    assert keys.decrypt_private_key(stored) == generated.private_pem
    settings.MAILCENTER_DKIM_KEY_SECRET = "new-secret"
    with pytest.raises(keys.KeyUnavailable, match="cannot be decrypted"):
        keys.decrypt_private_key(stored)
    # Without a dedicated secret, SECRET_KEY protects them.
    settings.MAILCENTER_DKIM_KEY_SECRET = ""
    assert keys.decrypt_private_key(keys.encrypt_private_key(b"x")) == b"x"


def test_generated_keys_have_the_right_shape():
    rsa_key = keys.generate(keys.RSA)
    loaded = serialization.load_pem_private_key(rsa_key.private_pem, None)
    assert loaded.key_size == 2048
    ed_key = keys.generate(keys.ED25519)
    import base64

    assert len(base64.b64decode(ed_key.public_key)) == 32
    value = keys.record_value(keys.RSA, rsa_key.public_key)
    parts = keys.split_txt(value)
    assert "".join(parts) == value
    assert [len(p) for p in parts] == [255, len(value) - 255]
