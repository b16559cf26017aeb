from __future__ import annotations

import csv
import io
import json

from django.urls import reverse
from django.utils import timezone

from campaigns.models import Message
from contacts import services
from contacts.models import Consent, Contact, Subscription, Suppression
from contacts.services import fields as fields_service
from contacts.services import privacy as privacy_service
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory
from tracking.models import Event


def _read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def test_export_a_list_with_chosen_fields_safely(auth_client, db):
    fields_service.custom_field_create(key="plan", label="Plan")
    news = MailingListFactory(name="News")
    evil = ContactFactory(
        email="evil@example.com", first_name='=HYPERLINK("x")', attributes={"plan": "+1"}
    )
    fine = ContactFactory(email="fine@example.com", first_name="Ann", attributes={})
    left = ContactFactory(email="left@example.com")
    for contact in (evil, fine):
        Subscription.objects.create(contact=contact, mailing_list=news)
    Subscription.objects.create(
        contact=left, mailing_list=news, status=Subscription.Status.UNSUBSCRIBED
    )
    response = auth_client.get(
        reverse("contacts:export"),
        {"mailing_list": news.pk, "fields": ["first_name", "custom.plan"], "download": "1"},
    )
    assert response["Content-Disposition"].startswith('attachment; filename="News-')
    assert _read_csv(response) == [
        ["Email", "First name", "Plan"],
        ["evil@example.com", '\'=HYPERLINK("x")', "'+1"],
        ["fine@example.com", "Ann", ""],
    ]


def test_export_a_segment_and_explain_bad_choices(auth_client, db):
    ContactFactory(email="a@alpha.com")
    ContactFactory(email="b@beta.com")
    segment = services.segment_create(
        name="Alpha",
        rules={"op": "and", "rules": [{"field": "domain", "op": "equals", "value": "alpha.com"}]},
    )
    response = auth_client.get(reverse("contacts:export"), {"segment": segment.pk, "download": "1"})
    assert _read_csv(response) == [["Email"], ["a@alpha.com"]]
    bad = auth_client.get(reverse("contacts:export"), {"download": "1"})
    assert bad.status_code == 400 and "Choose either a list or a segment" in bad.content.decode()


def _history():
    news = MailingListFactory(name="News")
    contact = ContactFactory(email="Ann@Example.com", first_name="Ann", attributes={"x": 1})
    Subscription.objects.create(contact=contact, mailing_list=news)
    Consent.objects.create(contact=contact, form_name="Footer", ip="203.0.113.9", text="Yes")
    campaign = CampaignFactory(lists=[news], name="Spring")
    message = Message.objects.create(
        campaign=campaign,
        contact=contact,
        email=contact.email,
        status="sent",
        sent_at=timezone.now(),
    )
    Event.objects.create(kind="open", campaign=campaign, message=message, ip="198.51.100.7")
    Event.objects.create(kind="click", campaign=campaign, message=message, user_agent="UA")
    return contact, message


def test_timeline_and_data_export(auth_client, db):
    contact, _message = _history()
    page = auth_client.get(reverse("contacts:detail", args=[contact.pk])).content.decode()
    for text in (
        "Subscribed to News",
        "Signed up through “Footer”",
        "Sent “Spring”",
        "Open: Spring",
        "Click: Spring",
    ):
        assert text in page
    data = json.loads(auth_client.get(reverse("contacts:data", args=[contact.pk])).content)
    assert data["contact"]["email"] == "Ann@Example.com"
    assert data["consents"][0]["ip"] == "203.0.113.9"
    assert [e["kind"] for e in data["events"]] == ["open", "click"]
    assert data["messages"][0]["campaign"] == "Spring"


def test_erase_keeps_only_a_hash_and_refuses_reimport(auth_client, db, run_import):
    contact, message = _history()
    suppression = Suppression.objects.create(
        kind="email", value="ann@example.com", reason="unsubscribe"
    )
    auth_client.post(reverse("contacts:erase", args=[contact.pk]))
    contact.refresh_from_db()
    assert contact.email == f"erased-{contact.pk}@erased.invalid"
    assert (contact.first_name, contact.attributes, contact.status) == ("", {}, "unsubscribed")
    assert not contact.subscriptions.exists() and not contact.consents.exists()
    message.refresh_from_db()
    assert message.email == contact.email
    assert not Event.objects.exclude(ip=None).exists()
    assert not Event.objects.exclude(user_agent="").exists()
    assert not Suppression.objects.filter(pk=suppression.pk).exists()
    entry = Suppression.objects.get()
    assert entry.kind == "hash" and "ann" not in entry.value
    privacy_service.contact_erase(contact)  # idempotent
    assert Suppression.objects.count() == 1

    item = run_import("email\nANN@example.com\nother@example.com\n")
    assert (item.created, item.refused) == (1, 1)
    assert item.refused_rows[0]["reason"] == "suppressed"
    assert not Contact.objects.filter(email__iexact="ann@example.com").exists()
