"""A sender defined in Settings → Senders, used by a real worker process, which picks up
an edit of it without a restart (within MAILCENTER_SENDERS_CACHE_SECONDS)."""

from __future__ import annotations

import time

import pytest

from campaigns import services as campaign_services
from campaigns.models import Campaign
from mailcenter.models import Sender
from mailcenter.senders import services
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory
from tests.integration.crash import wait_for
from tests.smtppeers import ScriptedSMTPServer
from tests.smtpsink import SMTPSink

PASSWORD = "worker-side-secret"
CACHE_SECONDS = 1


def _send(prefix: str, sender: str) -> set[str]:
    mailing_list = MailingListFactory()
    emails = {f"{prefix}{i}@example.org" for i in range(5)}
    for email in emails:
        SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email=email))
    campaign = CampaignFactory(lists=[mailing_list], sender=sender)
    campaign_services.campaign_start(campaign.pk)
    wait_for(
        lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENT,
        30,
        f"campaign {prefix} to be sent",
    )
    return emails


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_worker_sends_through_a_ui_sender_and_sees_its_edit_without_restart(start_worker):
    fields = {"backend": "smtp", "host": "127.0.0.1", "security": "none", "timeout": 5}
    with ScriptedSMTPServer() as first:
        services.sender_create("ui", {**fields, "port": first.port})
        start_worker(MAILCENTER_SENDERS_CACHE_SECONDS=str(CACHE_SECONDS))
        emails = _send("first", "ui")
        assert set(first.per_recipient()) == emails

        second = SMTPSink(auth=("mailer", PASSWORD)).start()
        try:
            services.sender_update(
                Sender.objects.get(alias="ui").pk,
                {**fields, "port": second.port, "username": "mailer"},
                password=PASSWORD,
            )
            time.sleep(CACHE_SECONDS + 0.5)
            emails = _send("second", "ui")
            assert {r for m in second.received for r in m.rcpt_tos} == emails
            assert second.logins and all(ok for _login, ok in second.logins)
            assert not {r for r in first.per_recipient() if r.startswith("second")}
        finally:
            second.stop()
