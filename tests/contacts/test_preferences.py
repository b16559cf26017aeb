from __future__ import annotations

import pytest
from django.test import Client

from campaigns import rendering
from campaigns.models import Message
from contacts.models import Contact, Subscription, Suppression
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory
from tracking import tokens


@pytest.fixture
def setup(db, settings):
    settings.BASE_URL = "https://mail.example.com"
    news, offers, other = (
        MailingListFactory(name="News"),
        MailingListFactory(name="Offers"),
        (MailingListFactory(name="Internal")),
    )
    contact = ContactFactory(email="ann@example.com", first_name="Ann")
    Subscription.objects.create(contact=contact, mailing_list=news)
    Subscription.objects.create(
        contact=contact, mailing_list=offers, status=Subscription.Status.UNSUBSCRIBED
    )
    campaign = CampaignFactory(lists=[news])
    message = Message.objects.create(campaign=campaign, contact=contact, email=contact.email)
    token = tokens.make_token("preferences", message.pk)
    return {
        "contact": contact,
        "news": news,
        "offers": offers,
        "other": other,
        "message": message,
        "url": f"/contacts/preferences/{token}/",
    }


def test_every_message_carries_its_preferences_link(setup):
    campaign = setup["message"].campaign
    campaign.html = '<p><a href="{{ preferences_url }}">Preferences</a></p>'
    compiled = rendering.compile_campaign(campaign, track=False)
    rendered = rendering.render_message(
        compiled, rendering.contact_context("ann@example.com"), setup["message"].pk
    )
    assert f"https://mail.example.com{setup['url']}" in rendered.html
    preview = rendering.render_message(compiled, rendering.contact_context("a@b.c"), None)
    assert 'href="#"' in preview.html
    rendering.validate_content("Hi", "{{ preferences_url }}")


def test_page_needs_no_login_and_shows_only_own_lists(setup):
    page = Client().get(setup["url"])
    assert page.status_code == 200
    body = page.content.decode()
    assert "ann@example.com" in body and "News" in body and "Offers" in body
    assert "Internal" not in body


def test_forged_or_foreign_tokens_are_404(setup):
    client = Client()
    assert client.get("/contacts/preferences/abc.def/").status_code == 404
    forged = setup["url"].replace("/contacts/preferences/", "/contacts/preferences/x")
    assert client.get(forged).status_code == 404
    unsubscribe_token = tokens.make_token("unsubscribe", setup["message"].pk)
    assert client.get(f"/contacts/preferences/{unsubscribe_token}/").status_code == 404
    missing = tokens.make_token("preferences", 999999)
    assert client.get(f"/contacts/preferences/{missing}/").status_code == 404


def test_change_lists_and_name(setup):
    client = Client(enforce_csrf_checks=False)
    response = client.post(
        setup["url"],
        {
            "first_name": " Anna ",
            "last_name": "Lee",
            "lists": [setup["offers"].pk, setup["other"].pk],
        },
    )
    # The forged "Internal" id is not a choice: refused, nothing changed.
    assert response.status_code == 400
    client.post(
        setup["url"], {"first_name": " Anna ", "last_name": "Lee", "lists": [setup["offers"].pk]}
    )
    contact = Contact.objects.get()
    assert (contact.first_name, contact.last_name) == ("Anna", "Lee")
    statuses = dict(Subscription.objects.values_list("mailing_list__name", "status"))
    assert statuses == {"News": "unsubscribed", "Offers": "subscribed"}


def test_unsubscribe_from_everything(setup):
    response = Client().post(setup["url"], {"unsubscribe_all": "1"})
    assert "unsubscribed from everything" in response.content.decode()
    contact = Contact.objects.get()
    assert contact.status == Contact.Status.UNSUBSCRIBED
    assert set(Subscription.objects.values_list("status", flat=True)) == {"unsubscribed"}
    entry = Suppression.objects.get()
    assert (entry.value, entry.reason) == ("ann@example.com", "unsubscribe")
    # Idempotent; and the page now offers nothing to change.
    Client().post(setup["url"], {"unsubscribe_all": "1"})
    assert Suppression.objects.count() == 1
    assert Client().post(setup["url"], {"first_name": "X"}).status_code == 400
