"""Settings → Domains: add a domain, generate and rotate keys, see the DNS record."""

from __future__ import annotations

import html

import pytest

from mailcenter.domains import keys, services
from mailcenter.models import DkimKey, SendingDomain

pytestmark = pytest.mark.django_db


def test_settings_links_to_domains(auth_client):
    assert "/settings/domains/" in auth_client.get("/settings/").content.decode()


def test_domains_need_login(client):
    response = client.get("/settings/domains/")
    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_add_a_domain_then_generate_a_key_and_see_its_record(auth_client):
    response = auth_client.post("/settings/domains/", {"domain": "  News.Example.COM. "})
    domain = SendingDomain.objects.get()
    assert domain.domain == "news.example.com"
    assert response["Location"] == f"/settings/domains/{domain.pk}/"

    response = auth_client.post(
        f"/settings/domains/{domain.pk}/keys/", {"algorithm": "rsa-sha256"}, follow=True
    )
    key = DkimKey.objects.get()
    assert key.active
    body = response.content.decode()
    assert "generated and active" in body
    assert f"{key.selector}._domainkey.news.example.com" in body
    assert f"v=DKIM1; k=rsa; p={key.public_key}" in body
    # The zone-file form: two quoted strings of at most 255 bytes.
    strings = keys.split_txt(f"v=DKIM1; k=rsa; p={key.public_key}")
    assert len(strings) == 2
    assert html.escape(f'TXT  "{strings[0]}" "{strings[1]}"') in body
    # The private key appears nowhere, neither in clear nor encrypted.
    assert "PRIVATE KEY" not in body
    assert key.private_key_encrypted not in body
    assert key.private_key_encrypted.startswith("fernet1:")
    assert "PRIVATE" not in str(key) + repr(key)

    listing = auth_client.get("/settings/domains/").content.decode()
    assert "news.example.com" in listing
    assert "signed" in listing


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "Enter a domain name"),
        ("localhost", "is not a valid domain name"),
        ("bad_domain.example", "is not a valid domain name"),
        ("evil.example\r\nX-Header: 1", "cannot contain spaces"),
        ("-x.example.com", "is not a valid domain name"),
    ],
)
def test_bad_domains_are_refused_with_a_reason(auth_client, value, words):
    response = auth_client.post("/settings/domains/", {"domain": value})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not SendingDomain.objects.exists()


def test_a_domain_is_added_once_and_idn_is_stored_as_ascii(auth_client):
    auth_client.post("/settings/domains/", {"domain": "bücher.example"})
    assert SendingDomain.objects.get().domain == "xn--bcher-kva.example"
    response = auth_client.post("/settings/domains/", {"domain": "BÜCHER.example"})
    assert "is already a sending domain" in response.content.decode()


def test_bad_selector_and_algorithm_are_refused(auth_client):
    domain = services.sending_domain_create("example.com")
    url = f"/settings/domains/{domain.pk}/keys/"
    body = auth_client.post(url, {"algorithm": "rsa-sha1"}, follow=True).content.decode()
    assert "Choose RSA or Ed25519" in body
    body = auth_client.post(
        url, {"algorithm": "ed25519-sha256", "selector": "bad selector"}, follow=True
    ).content.decode()
    assert "one DNS label" in body
    auth_client.post(url, {"algorithm": "ed25519-sha256", "selector": "mail"})
    body = auth_client.post(
        url, {"algorithm": "rsa-sha256", "selector": "mail"}, follow=True
    ).content.decode()
    assert "already has a key with the selector" in body
    assert DkimKey.objects.count() == 1


def test_rotation_waits_for_activation_then_replaces_the_old_key(auth_client):
    domain = services.sending_domain_create("example.com")
    old = services.dkim_key_generate(domain.pk, keys.RSA, "old")
    response = auth_client.post(
        f"/settings/domains/{domain.pk}/keys/", {"algorithm": "rsa-sha256"}, follow=True
    )
    new = DkimKey.objects.exclude(pk=old.pk).get()
    assert not new.active
    assert "not active yet" in response.content.decode()
    # Forms that change what signs carry a confirmation.
    assert response.content.decode().count("data-confirm") >= 4
    auth_client.post(f"/settings/domains/{domain.pk}/keys/{new.pk}/activate/")
    old.refresh_from_db()
    new.refresh_from_db()
    assert new.active
    assert not old.active
    auth_client.post(f"/settings/domains/{domain.pk}/keys/{old.pk}/delete/")
    assert list(DkimKey.objects.all()) == [new]
    auth_client.post(f"/settings/domains/{domain.pk}/keys/{new.pk}/deactivate/")
    new.refresh_from_db()
    assert not new.active


def test_ed25519_and_rsa_can_both_be_active(db):
    domain = services.sending_domain_create("example.com")
    rsa = services.dkim_key_generate(domain.pk, keys.RSA)
    ed = services.dkim_key_generate(domain.pk, keys.ED25519)
    assert rsa.active
    assert ed.active
    assert ed.selector.startswith("mc") and "ed" in ed.selector
    assert keys.record_value(ed.algorithm, ed.public_key).startswith("v=DKIM1; k=ed25519; p=")


def test_destructive_actions_are_post_only_and_scoped_to_their_domain(auth_client):
    one = services.sending_domain_create("one.example")
    two = services.sending_domain_create("two.example")
    key = services.dkim_key_generate(one.pk, keys.ED25519)
    assert auth_client.get(f"/settings/domains/{one.pk}/delete/").status_code == 405
    assert auth_client.post(f"/settings/domains/{two.pk}/keys/{key.pk}/delete/").status_code == 404
    assert DkimKey.objects.filter(pk=key.pk).exists()
    response = auth_client.post(f"/settings/domains/{one.pk}/delete/", follow=True)
    assert "its mail is no longer signed" in response.content.decode()
    assert not DkimKey.objects.exists()
    assert list(SendingDomain.objects.all()) == [two]
    assert auth_client.get(f"/settings/domains/{one.pk}/").status_code == 404
