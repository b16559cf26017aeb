from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns.selectors import campaign_audience
from campaigns.services import campaign_start
from contacts import selectors, services
from contacts.models import Contact, Subscription, Suppression
from contacts.services import suppression as suppression_service
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("Ann@Example.COM", "email", "ann@example.com"),
        (" example.org ", "domain", "example.org"),
        ("@Example.org", "domain", "example.org"),
        ("bücher.de", "domain", "xn--bcher-kva.de"),
    ],
)
def test_values_are_normalised(raw, kind, value):
    assert suppression_service.suppression_clean_value(raw) == (kind, value)


@pytest.mark.parametrize("raw", ["", "not a domain", "a@", "x@y@", "localhost", "-bad-.com"])
def test_bad_values_are_refused(raw):
    with pytest.raises(ValidationError):
        suppression_service.suppression_clean_value(raw)


def test_adding_twice_keeps_the_first_entry(db):
    first = suppression_service.suppression_add("a@example.com", "complaint")
    again = suppression_service.suppression_add("A@example.com")
    assert again.pk == first.pk and again.reason == "complaint"
    with pytest.raises(ValidationError, match="reason must be"):
        suppression_service.suppression_add("b@example.com", "whim")


def test_suppressed_contacts_never_get_a_campaign(db, settings):
    settings.MAILCENTER_SENDERS = {"default": {"BACKEND": "outbox", "OPTIONS": {}}}
    news = MailingListFactory()
    people = {
        name: ContactFactory(email=f"{name}@{domain}")
        for name, domain in [
            ("ok", "example.com"),
            ("listed", "example.com"),
            ("domain", "blocked.org"),
            ("bounced", "example.com"),
            ("complained", "example.com"),
        ]
    }
    for contact in people.values():
        Subscription.objects.create(contact=contact, mailing_list=news)
    # What tracking's bounce handling does: a status update, no suppression entry.
    Contact.objects.filter(pk=people["bounced"].pk).update(status=Contact.Status.BOUNCED)
    Contact.objects.filter(pk=people["complained"].pk).update(status=Contact.Status.COMPLAINED)
    suppression_service.suppression_add("LISTED@example.com")
    suppression_service.suppression_add("blocked.org")
    everyone = services.segment_create(name="All", rules={})

    campaign = CampaignFactory(lists=[news])
    services.campaign_audience_set(campaign, segments=[everyone])
    assert set(campaign_audience(campaign)) == {people["ok"]}
    assert selectors.segment_count(everyone.rules) == {"count": 5, "reachable": 1}
    campaign_start(campaign.pk)
    assert list(campaign.messages.values_list("email", flat=True)) == ["ok@example.com"]


def test_importer_refuses_suppressed_addresses(db, run_import):
    suppression_service.suppression_add("two@example.com")
    suppression_service.suppression_add("blocked.org", "hard_bounce")
    item = run_import(
        "email\none@example.com\nTwo@Example.com\nthree@blocked.org\ntwo@example.com\n"
    )
    assert (item.created, item.refused, item.skipped) == (1, 2, 1)
    assert [(r["email"], r["reason"]) for r in item.refused_rows] == [
        ("Two@example.com", "suppressed"),
        ("three@blocked.org", "suppressed"),
    ]
    assert list(Contact.objects.values_list("email", flat=True)) == ["one@example.com"]


def test_import_a_file_of_addresses(db):
    content = "Email Address\nA@example.com\nexample.net\n\nnonsense\na@example.com\n"
    upload = SimpleUploadedFile("s.csv", content.encode("utf-8-sig"))
    result = suppression_service.suppression_import(upload)
    assert (result.added, result.already, result.invalid) == (2, 0, 1)
    assert result.invalid_samples == ["nonsense"]
    again = suppression_service.suppression_import(SimpleUploadedFile("s.csv", b"a@example.com"))
    assert (again.added, again.already) == (0, 1)
    assert set(Suppression.objects.values_list("reason", flat=True)) == {"import"}
    with pytest.raises(ValidationError, match="not UTF-8"):
        suppression_service.suppression_import(SimpleUploadedFile("s.csv", b"\xff\xfe\x00\x00"))


def test_pages_add_import_search_and_remove(auth_client, db):
    url = reverse("contacts:suppressions")
    bad = auth_client.post(reverse("contacts:suppression-add"), {"value": "??", "reason": "manual"})
    assert bad.status_code == 400
    assert "neither an email address nor a domain" in bad.content.decode()
    auth_client.post(reverse("contacts:suppression-add"), {"value": "x@ex.com", "reason": "manual"})
    upload = SimpleUploadedFile("s.csv", b"y@ex.com\nother.org\n")
    response = auth_client.post(reverse("contacts:suppression-import"), {"file": upload})
    assert response.status_code == 302
    assert Suppression.objects.count() == 3
    auth_client.get(url)  # shows (and so clears) the messages
    page = auth_client.get(url, {"q": "other"}).content.decode()
    assert "other.org" in page and "x@ex.com" not in page and "data-confirm" in page
    entry = Suppression.objects.get(value="other.org")
    auth_client.post(reverse("contacts:suppression-delete", args=[entry.pk]))
    assert not Suppression.objects.filter(value="other.org").exists()


def test_api(api_client):
    created = api_client.post(
        "/api/v1/suppressions/", {"value": "Z@Ex.com", "reason": "complaint"}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["kind"] == "email" and created.json()["value"] == "z@ex.com"
    bad = api_client.post("/api/v1/suppressions/", {"value": "?"}, format="json")
    assert bad.status_code == 400 and "value" in bad.json()["errors"]
    listing = api_client.get("/api/v1/suppressions/", {"q": "ex.com"}).json()
    assert listing["count"] == 1
    assert api_client.delete(f"/api/v1/suppressions/{created.json()['id']}/").status_code == 204
