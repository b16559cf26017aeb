"""Crash safety on the scale-out stack: a Celery worker SIGKILLed in the middle of a
campaign (PostgreSQL, Redis, worker processes, an SMTP server on loopback).

The bound being tested, as documented in campaigns/services/sending.py: a message is
claimed (status ``sending``) before it is sent and recorded after the batch; a worker that
dies in between leaves its claims behind, and they are sent again once the claim timeout
has passed. So only messages in flight at the moment of the crash (at most worker
concurrency times batch size) can reach a recipient twice; every other recipient gets exactly
one message, and nobody gets none.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest

from campaigns import services
from campaigns.models import Campaign, Message
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory
from tests.integration.conftest import BATCH, CONCURRENCY
from tests.integration.crash import wait_for

RECIPIENTS = 60


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_campaign_loses_nothing_and_duplicates_at_most_its_claims(
    start_worker, slow_server
):
    mailing_list = MailingListFactory()
    emails = [f"crash{i}@example.org" for i in range(RECIPIENTS)]
    for email in emails:
        SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email=email))
    campaign = CampaignFactory(lists=[mailing_list])
    first = start_worker()
    services.campaign_start(campaign.pk)

    wait_for(lambda: len(slow_server.accepted) >= 12, 30, "sending to be under way")
    os.killpg(first.pid, signal.SIGKILL)  # the whole worker, pool processes included
    first.wait(timeout=10)
    in_flight = set(
        Message.objects.filter(campaign=campaign, status="sending").values_list("email", flat=True)
    )
    assert 0 < len(in_flight) <= CONCURRENCY * BATCH
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENDING

    start_worker()
    # The scheduler's job, done here: release dead claims and restart the lost task chains.
    wait_for(
        lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENT,
        30,
        "the campaign to complete after the crash",
        every=services.campaigns_tick,
    )

    received = slow_server.per_recipient()
    assert set(received) == set(emails), "a recipient got nothing"
    twice = {email for email, n in received.items() if n > 1}
    assert twice <= in_flight, f"duplicates outside the in-flight claims: {twice - in_flight}"
    assert max(received.values()) <= 2
    assert Counter(Message.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "sent": RECIPIENTS
    }
