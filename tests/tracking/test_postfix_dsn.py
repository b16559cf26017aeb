"""Real DSNs: a campaign goes out through a private Debian Postfix on loopback; the
receiving server refuses some recipients; Postfix returns its delivery status
notifications to the VERP return path, which is our bounce server. Each DSN must arrive,
be classified correctly and name its message."""

from __future__ import annotations

import os
import time

import pytest

from campaigns import services as campaign_services
from campaigns.models import Campaign, Message
from contacts.models import Contact
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory
from tests.smtpsink import SMTPSink, _free_port
from tests.tracking import postfix
from tracking.inbound import bounce_controller
from tracking.models import Event

BOUNCE_DOMAIN = "bounce.test"

# recipient → (reply of the receiving server, expected severity, enhanced status)
REFUSED = {
    "nobody@example.test": ("550 5.1.1 <nobody@example.test>: User unknown", "hard", "5.1.1"),
    "full@example.test": ("552 5.2.2 <full@example.test>: Mailbox full", "soft", "5.2.2"),
    "someone@relay.test": ("554 5.7.1 <someone@relay.test>: Relay access denied", "hard", "5.7.1"),
    "busy@example.test": (
        "450 4.2.1 <busy@example.test>: Mailbox busy, try later",
        "soft",
        "4.2.1",
    ),
}
DELIVERED = ["ann@example.test", "bob@relay.test"]

_MISSING = postfix.available()
if _MISSING and "postfix" in os.environ.get("MAILCENTER_REQUIRE", ""):
    # CI installed Postfix: a skip here would hide a broken environment.
    raise pytest.UsageError(f"MAILCENTER_REQUIRE asks for the Postfix tests: {_MISSING}")
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


@pytest.fixture
def mail_servers():
    remote = SMTPSink().start()
    remote.handler.replies.update({rcpt: reply for rcpt, (reply, _s, _c) in REFUSED.items()})
    bounce_port = _free_port()
    bounce_server = bounce_controller("127.0.0.1", bounce_port, BOUNCE_DOMAIN)
    bounce_server.start()
    mta = postfix.PrivatePostfix(
        {"example.test": remote.port, "relay.test": remote.port, BOUNCE_DOMAIN: bounce_port},
        # SQLite in memory (the test database) cannot take writes from the bounce server's
        # thread while the send pipeline writes from the test's: Postfix holds the
        # campaign's mail until the send is over.
        hold=("example.test", "relay.test"),
    )
    try:
        mta.start()
        yield remote, mta, bounce_server
    finally:
        mta.stop()
        bounce_server.stop()
        remote.stop()


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_postfix_dsns_are_classified_and_tied_to_their_messages(settings, mail_servers):
    remote, mta, bounce_server = mail_servers
    settings.MAILCENTER_BOUNCE_DOMAIN = BOUNCE_DOMAIN
    settings.MAILCENTER_SOFT_BOUNCE_LIMIT = 3
    settings.MAILCENTER_SENDERS = {
        "default": {
            "BACKEND": "smtp",
            "OPTIONS": {"host": "127.0.0.1", "port": mta.port, "security": "none"},
        }
    }
    mailing_list = MailingListFactory()
    for email in [*REFUSED, *DELIVERED]:
        ContactFactory(email=email).lists.add(mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    campaign_services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    # Postfix accepted everything; what happens next is its business, and it tells us.
    assert Message.objects.filter(campaign=campaign, status="sent").count() == 6

    mta.release()
    # Wait on the bounce server itself, not by polling the database it writes to.
    arrived = bounce_server.handler.wait_processed(len(REFUSED), timeout=30)
    assert arrived, f"DSNs missing; postfix log:\n{mta.log()[-4000:]}"
    assert _wait_for(lambda: len(remote.received) >= len(DELIVERED))
    assert sorted(r.rcpt_tos[0] for r in remote.received) == sorted(DELIVERED)

    events = {
        e.message.email: e for e in Event.objects.filter(kind="bounce").select_related("message")
    }
    assert set(events) == set(REFUSED)
    for email, (_reply, severity, code) in REFUSED.items():
        event = events[email]
        assert event.campaign_id == campaign.pk
        assert (event.severity, event.status_code) == (severity, code), email
        assert code in event.diagnostic
    statuses = dict(Contact.objects.values_list("email", "status"))
    assert statuses["nobody@example.test"] == "bounced"
    assert statuses["someone@relay.test"] == "bounced"
    assert statuses["full@example.test"] == "active"  # one soft bounce is not enough
    assert statuses["busy@example.test"] == "active"
    assert statuses["ann@example.test"] == statuses["bob@relay.test"] == "active"
    # One DSN per refused message (Postfix tries each message once here).
    assert Event.objects.count() == len(REFUSED)
