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

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from campaigns import services
from campaigns.models import Campaign, Message
from mailcenter.celery import app as celery_app
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory
from tests.smtppeers import Peer, ScriptedSMTPServer

ROOT = Path(__file__).resolve().parents[2]
BATCH = 5
CONCURRENCY = 2
RECIPIENTS = 60


class SlowPeer(Peer):
    data_delay = 0.05  # so that the kill lands while batches are in flight


@pytest.fixture
def slow_server():
    with ScriptedSMTPServer(SlowPeer()) as server:
        yield server


@pytest.fixture
def start_worker(slow_server, settings):
    """Start Celery workers in their own process groups (so SIGKILL takes the pool too)."""
    db = django_settings.DATABASES["default"]
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    database_url = f"postgres://{db['USER'] or 'postgres'}@{host}/{db['NAME']}"
    senders = {"default": slow_server.sender_config(timeout=5)}
    settings.MAILCENTER_SENDERS = senders
    settings.MAILCENTER_CLAIM_TIMEOUT = 3
    settings.MAILCENTER_TICK_IDLE_SECONDS = 1
    settings.MAILCENTER_SEND_CONCURRENCY = CONCURRENCY
    celery_app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": django_settings.SECRET_KEY,
        "MAILCENTER_SENDERS": json.dumps(senders),
        "MAILCENTER_BATCH_SIZE": str(BATCH),
        "MAILCENTER_SEND_CONCURRENCY": str(CONCURRENCY),
        "MAILCENTER_CLAIM_TIMEOUT": "3",
    }
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mailcenter",
                "worker",
                "-l",
                "warning",
                "--concurrency",
                str(CONCURRENCY),
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    celery_app.control.purge()


def _wait_for(predicate, timeout: float, what: str, every=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if every:
            every()
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


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

    _wait_for(lambda: len(slow_server.accepted) >= 12, 30, "sending to be under way")
    os.killpg(first.pid, signal.SIGKILL)  # the whole worker, pool processes included
    first.wait(timeout=10)
    in_flight = set(
        Message.objects.filter(campaign=campaign, status="sending").values_list("email", flat=True)
    )
    assert 0 < len(in_flight) <= CONCURRENCY * BATCH
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENDING

    start_worker()
    # The scheduler's job, done here: release dead claims and restart the lost task chains.
    _wait_for(
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
