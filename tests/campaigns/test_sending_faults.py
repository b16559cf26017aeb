"""A whole campaign against misbehaving SMTP servers on loopback.

Each test drives the real send loop (claim → render → send → record) until the campaign is
done and then checks two things: the message statuses, and what the server accepted per
recipient, which must be exactly once for every message marked sent and never for one
that failed. Retries are made fast by a tiny retry base; nothing else is faked.
"""

from __future__ import annotations

import time

import pytest

from campaigns import services
from campaigns.models import Campaign, Message
from contacts.models import Contact
from mailcenter.delivery.smtp import POOL
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory
from tests.smtppeers import (
    ClosingPeer,
    DropDataPeer,
    GreylistPeer,
    Peer,
    RecipientLimitPeer,
    RejectSomePeer,
    ScriptedSMTPServer,
    StallPeer,
    self_signed_tls,
)
from tracking.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=[False, True], ids=["lockstep", "pipelining"])
def _pipelining(request, monkeypatch):
    """Every scripted server test runs twice: with and without PIPELINING offered."""
    monkeypatch.setattr(Peer, "pipelining", request.param)
    return request.param


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.MAILCENTER_RETRY_BASE_SECONDS = 0.2
    settings.MAILCENTER_RETRY_MAX_SECONDS = 0.4
    settings.MAILCENTER_BATCH_SIZE = 50
    POOL.clear()
    yield
    POOL.clear()


def _campaign(n: int, domain: str = "example.org") -> tuple[Campaign, list[str]]:
    mailing_list = MailingListFactory()
    emails = [f"user{i}@{domain}" for i in range(1, n + 1)]
    for email in emails:
        SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email=email))
    campaign = CampaignFactory(lists=[mailing_list])
    services.campaign_start(campaign.pk)  # its queued tasks never run: we drive the loop
    return campaign, emails


def _drive(campaign: Campaign, timeout: float = 10) -> Campaign:
    """Run the send loop until the campaign leaves ``sending`` (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        more = services.campaign_send_batch(campaign.pk)
        campaign.refresh_from_db()
        if campaign.status != Campaign.Status.SENDING:
            return campaign
        if not more:
            time.sleep(0.05)  # deferred messages are not due yet
    raise AssertionError("the campaign did not finish in time")


def _statuses(campaign: Campaign) -> dict[str, str]:
    return dict(Message.objects.filter(campaign=campaign).values_list("email", "status"))


def _use(settings, server: ScriptedSMTPServer, **options) -> None:
    settings.MAILCENTER_SENDERS = {"default": server.sender_config(**options)}


def test_greylisted_campaign_is_delivered_once_after_the_delay(settings):
    with ScriptedSMTPServer(GreylistPeer(delay=0.1)) as server:
        _use(settings, server)
        campaign, emails = _campaign(4)
        services.campaign_send_batch(campaign.pk)
        assert set(_statuses(campaign).values()) == {"deferred"}
        campaign = _drive(campaign)
        assert server.per_recipient() == dict.fromkeys(emails, 1)
    assert campaign.status == Campaign.Status.SENT
    message = Message.objects.filter(campaign=campaign).first()
    assert message.status == "sent" and message.attempts == 2
    assert [a["code"] for a in message.attempt_log] == [451]
    assert message.smtp_code == 250 and "Queued" in message.last_reply
    assert "Greylisted" in message.attempt_log[0]["reply"]


def test_550_fails_those_recipients_at_once_with_the_enhanced_status(settings):
    with ScriptedSMTPServer(RejectSomePeer({"user2@example.org"})) as server:
        _use(settings, server)
        campaign, _emails = _campaign(3)
        campaign = _drive(campaign)
        assert server.per_recipient() == {"user1@example.org": 1, "user3@example.org": 1}
    assert campaign.status == Campaign.Status.SENT
    failed = Message.objects.get(campaign=campaign, email="user2@example.org")
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.smtp_code == 550 and failed.enhanced_status == "5.1.1"
    assert "User unknown" in failed.last_reply
    # a synchronous 5.1.1 is a hard bounce: recorded, and the contact is suppressed
    bounce = Event.objects.get(message=failed, kind=Event.Kind.BOUNCE)
    assert bounce.status_code == "5.1.1" and bounce.smtp_code == 550
    assert Contact.objects.get(pk=failed.contact_id).status == Contact.Status.BOUNCED


def test_a_policy_rejection_fails_without_counting_against_the_contact(settings):
    class PolicyPeer(RejectSomePeer):
        def rcpt(self, session, rcpt):
            return "554 5.7.1 Relay access denied"

    with ScriptedSMTPServer(PolicyPeer(set())) as server:
        _use(settings, server)
        campaign, _emails = _campaign(2)
        campaign = _drive(campaign)
    assert set(_statuses(campaign).values()) == {"failed"}
    assert not Event.objects.filter(kind=Event.Kind.BOUNCE).exists()
    assert set(Contact.objects.values_list("status", flat=True)) == {Contact.Status.ACTIVE}


def test_452_too_many_recipients_sends_everyone_once(settings):
    with ScriptedSMTPServer(RecipientLimitPeer(limit=2)) as server:
        _use(settings, server)
        campaign, emails = _campaign(5)
        campaign = _drive(campaign)
        assert server.per_recipient() == dict.fromkeys(emails, 1)
    assert set(_statuses(campaign).values()) == {"sent"}


def test_421_and_close_defers_the_rest_and_slows_the_domain(settings):
    peer = ClosingPeer(at=3)
    with ScriptedSMTPServer(peer) as server:
        _use(settings, server)
        campaign, emails = _campaign(5)
        other = ContactFactory(email="late@other.test")
        SubscriptionFactory(contact=other, mailing_list=campaign.lists.get())
        services.campaign_send_batch(campaign.pk)
        statuses = _statuses(campaign)
        assert [statuses[e] for e in emails] == ["sent", "sent", "deferred", "deferred", "deferred"]
        held = Message.objects.get(campaign=campaign, email="user4@example.org")
        assert held.smtp_code == 421 and "not attempted" in held.last_reply
        # nothing is due right away: the domain is held back instead of hammered
        assert services.messages_claim(campaign.pk, 10)[1] == []
        peer.failing = False
        campaign = _drive(campaign)
        assert server.per_recipient() == dict.fromkeys(emails, 1)
    assert campaign.status == Campaign.Status.SENT
    assert peer.closes == 1


def test_connection_dropped_in_data_loses_nothing_and_doubles_nothing(settings):
    peer = DropDataPeer(nth=2)
    with ScriptedSMTPServer(peer) as server:
        _use(settings, server)
        campaign, emails = _campaign(4)
        services.campaign_send_batch(campaign.pk)
        statuses = _statuses(campaign)
        # the rest of the batch went on over a new connection
        assert [statuses[e] for e in emails] == ["sent", "deferred", "sent", "sent"]
        campaign = _drive(campaign)
        assert server.per_recipient() == dict.fromkeys(emails, 1)
    assert campaign.status == Campaign.Status.SENT
    dropped = Message.objects.get(campaign=campaign, email="user2@example.org")
    assert dropped.attempts == 2 and dropped.attempt_log[0]["code"] is None
    assert "connection lost" in dropped.attempt_log[0]["reply"]


def test_stalling_server_times_out_and_the_message_is_retried(settings):
    with ScriptedSMTPServer(StallPeer(count=1)) as server:
        _use(settings, server, timeout=0.5)
        campaign, emails = _campaign(3)
        campaign = _drive(campaign)
        assert server.per_recipient() == dict.fromkeys(emails, 1)
    assert set(_statuses(campaign).values()) == {"sent"}


def test_tls_only_server(settings, tmp_path):
    context, cert = self_signed_tls(tmp_path)
    with ScriptedSMTPServer(ssl_context=context) as server:
        _use(settings, server, security="tls", ca_file=str(cert))
        campaign, emails = _campaign(3)
        campaign = _drive(campaign)
        assert server.per_recipient() == dict.fromkeys(emails, 1)
    assert campaign.status == Campaign.Status.SENT
