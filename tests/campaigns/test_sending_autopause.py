"""Auto-pause: a campaign whose recent attempts mostly fail stops by itself and says why."""

from __future__ import annotations

import socket

import pytest

from campaigns import services
from campaigns.models import Campaign, Message
from mailcenter.delivery.smtp import POOL
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory
from tests.smtppeers import RejectSomePeer, ScriptedSMTPServer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _small_window(settings):
    settings.MAILCENTER_BATCH_SIZE = 10
    settings.MAILCENTER_AUTOPAUSE_WINDOW = 10
    settings.MAILCENTER_AUTOPAUSE_MIN_ATTEMPTS = 10
    settings.MAILCENTER_AUTOPAUSE_THRESHOLD = 0.5
    POOL.clear()
    yield
    POOL.clear()


def _campaign(n: int) -> tuple[Campaign, list[str]]:
    mailing_list = MailingListFactory()
    emails = [f"user{i:02d}@example.org" for i in range(n)]
    for email in emails:
        SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email=email))
    campaign = CampaignFactory(lists=[mailing_list])
    services.campaign_start(campaign.pk)
    return campaign, emails


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _counts(campaign) -> dict[str, int]:
    rows = Message.objects.filter(campaign=campaign).values_list("status", flat=True)
    return {s: list(rows).count(s) for s in set(rows)}


def test_an_unreachable_relay_pauses_the_campaign_after_one_window(settings):
    settings.MAILCENTER_SENDERS = {
        "default": {"BACKEND": "smtp", "OPTIONS": {"port": _closed_port(), "timeout": 1}}
    }
    campaign, _emails = _campaign(30)
    assert services.campaign_send_batch(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert "10 of the last 10 attempts failed or were deferred" in campaign.pause_reason
    assert "cannot open SMTP session" in campaign.pause_reason
    assert _counts(campaign) == {"deferred": 10, "queued": 20}
    # paused: the next batch sends nothing
    assert services.campaign_send_batch(campaign.pk) is False


def test_resume_clears_the_reason_and_the_window(settings, django_capture_on_commit_callbacks):
    settings.MAILCENTER_SENDERS = {
        "default": {"BACKEND": "smtp", "OPTIONS": {"port": _closed_port()}}
    }
    campaign, emails = _campaign(30)
    services.campaign_send_batch(campaign.pk)
    with ScriptedSMTPServer() as server:
        settings.MAILCENTER_SENDERS = {"default": server.sender_config()}
        with django_capture_on_commit_callbacks(execute=True):
            assert services.campaign_resume(campaign.pk)
        campaign.refresh_from_db()
        assert campaign.pause_reason == ""
        # the ten deferred wait for their retry; the twenty others go out
        assert len(server.accepted) == 20
        assert server.per_recipient() == dict.fromkeys(emails[10:], 1)
    assert campaign.status == Campaign.Status.SENDING


def test_failures_below_the_threshold_do_not_pause(settings):
    with ScriptedSMTPServer(RejectSomePeer({f"user{i:02d}@example.org" for i in range(4)})) as s:
        settings.MAILCENTER_SENDERS = {"default": s.sender_config()}
        campaign, _emails = _campaign(20)
        while services.campaign_send_batch(campaign.pk):
            pass
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert _counts(campaign) == {"failed": 4, "sent": 16}


def test_a_list_of_dead_addresses_pauses_and_the_page_says_why(settings, auth_client):
    dead = {f"user{i:02d}@example.org" for i in range(0, 20, 2)} | {"user01@example.org"}
    with ScriptedSMTPServer(RejectSomePeer(dead)) as server:
        settings.MAILCENTER_SENDERS = {"default": server.sender_config()}
        campaign, _emails = _campaign(20)
        services.campaign_send_batch(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert "6 of the last 10" in campaign.pause_reason and "5.1.1" in campaign.pause_reason
    page = auth_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "data-pause-reason" in page and "6 of the last 10" in page
    progress = auth_client.get(f"/campaigns/{campaign.pk}/progress/").json()
    assert progress["pause_reason"] == campaign.pause_reason
    auth_client.post(f"/campaigns/{campaign.pk}/resume/")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING and campaign.pause_reason == ""


def test_a_threshold_of_zero_turns_it_off(settings):
    settings.MAILCENTER_AUTOPAUSE_THRESHOLD = 0
    settings.MAILCENTER_SENDERS = {
        "default": {"BACKEND": "smtp", "OPTIONS": {"port": _closed_port()}}
    }
    campaign, _emails = _campaign(10)
    services.campaign_send_batch(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING


def test_a_manual_pause_has_no_reason():
    campaign, _emails = _campaign(1)
    assert services.campaign_pause(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED and campaign.pause_reason == ""
