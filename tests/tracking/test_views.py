from __future__ import annotations

import pytest
from django.test import Client

from campaigns import services
from campaigns.models import Message
from contacts.models import Contact, Subscription
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory
from tracking import tokens
from tracking.models import Event

pytestmark = pytest.mark.django_db

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture
def sent(django_capture_on_commit_callbacks):
    mailing_list = MailingListFactory()
    SubscriptionFactory(mailing_list=mailing_list)
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_start(campaign.pk)
    return campaign, list(Message.objects.filter(campaign=campaign))


def test_open_pixel_records_an_event(client, sent):
    _campaign, (message, _other) = sent
    response = client.get(f"/t/o/{tokens.make_token('open', message.pk)}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert "no-cache" in response["Cache-Control"]
    assert Event.objects.get().kind == "open"


def test_click_redirects_to_the_stored_link_only(client, sent):
    _campaign, (message, _other) = sent
    response = client.get(f"/t/c/{tokens.make_token('click', message.pk, 1)}/")
    assert response.status_code == 302
    assert response["Location"] == "https://example.com/blog?a=1&b=2"
    assert Event.objects.get().link.index == 1
    # an index the campaign does not have is a 404, not a redirect anywhere
    assert client.get(f"/t/c/{tokens.make_token('click', message.pk, 9)}/").status_code == 404


@pytest.mark.parametrize("prefix", ["/t/o/", "/t/c/", "/t/w/", "/u/"])
def test_forged_tokens_are_404(client, sent, prefix):
    _campaign, (message, _other) = sent
    for token in ["nonsense", f"{message.pk}.forgedsignature", "1-2.abc"]:
        assert client.get(f"{prefix}{token}/").status_code == 404
    # a genuine token for a message that does not exist: 404, except the pixel, which
    # still answers an image (the token is the authority; the hit is dropped when written)
    missing = client.get(f"{prefix}{tokens.make_token('open', 999999)}/").status_code
    assert missing == (200 if prefix == "/t/o/" else 404)
    assert not Event.objects.exists()


def test_one_click_unsubscribe_needs_no_cookie_or_csrf(sent):
    _campaign, (message, other) = sent
    client = Client(enforce_csrf_checks=True)
    url = f"/u/{tokens.make_token('unsubscribe', message.pk)}/"
    page = client.get(url)
    assert page.status_code == 200
    assert Contact.objects.get(pk=message.contact_id).status == "active"
    response = client.post(url, data="List-Unsubscribe=One-Click", content_type="text/plain")
    assert response.status_code == 200
    assert Contact.objects.get(pk=message.contact_id).status == "unsubscribed"
    assert Subscription.objects.get(contact_id=message.contact_id).status == "unsubscribed"
    client.post(url)  # twice is harmless and counted once
    assert Event.objects.filter(kind="unsubscribe").count() == 1
    assert Contact.objects.get(pk=other.contact_id).status == "active"


def test_unsubscribed_contact_gets_no_later_campaign(
    client, sent, django_capture_on_commit_callbacks
):
    campaign, (message, other) = sent
    client.post(f"/u/{tokens.make_token('unsubscribe', message.pk)}/")
    later = CampaignFactory(lists=list(campaign.lists.all()))
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_start(later.pk)
    assert list(Message.objects.filter(campaign=later).values_list("contact_id", flat=True)) == [
        other.contact_id
    ]


def test_webview_is_sandboxed_and_personalised(client, sent):
    _campaign, (message, _other) = sent
    response = client.get(f"/t/w/{tokens.make_token('webview', message.pk)}/")
    assert response.status_code == 200
    assert "sandbox" in response["Content-Security-Policy"]
    assert message.contact.first_name in response.content.decode()


def test_report_shows_the_numbers(auth_client, client, sent, settings):
    settings.MAILCENTER_SCANNER_SECONDS = 0  # the click below comes right after sending
    campaign, (message, other) = sent
    browser = {"HTTP_USER_AGENT": BROWSER}
    client.get(f"/t/o/{tokens.make_token('open', message.pk)}/", **browser)
    client.get(f"/t/o/{tokens.make_token('open', message.pk)}/", **browser)
    client.get(f"/t/c/{tokens.make_token('click', other.pk, 0)}/", **browser)
    response = auth_client.get(f"/reports/{campaign.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-stat="opens_unique">1<' in html
    assert 'data-stat="opens_total">2<' in html
    assert 'data-stat="clicks_unique">1<' in html
    assert 'data-stat="sent">2<' in html
    assert "https://example.com/offer" in html
    assert auth_client.get("/reports/").status_code == 200


def test_report_needs_login(client, sent):
    campaign, _messages = sent
    response = client.get(f"/reports/{campaign.pk}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
