"""The one-campaign story on the scale-out stack: PostgreSQL, Redis and a real Celery worker
process sending through SMTP to a server on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from django.conf import settings

from campaigns import services
from campaigns.models import Campaign
from mailcenter.celery import app as celery_app
from tests import flow
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory
from tests.integration.conftest import celery_worker


@pytest.fixture
def worker(live_server, smtp_sink, settings, tmp_path):
    """A Celery worker in its own process, on the test database and the Redis broker."""
    db = settings.DATABASES["default"]
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    database_url = f"postgres://{db['USER'] or 'postgres'}@{host}/{db['NAME']}"
    senders = {"default": smtp_sink.sender_config()}
    settings.MAILCENTER_SENDERS = senders
    settings.BASE_URL = live_server.url
    celery_app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": settings.SECRET_KEY,
        "MAILCENTER_SENDERS": json.dumps(senders),
        "MAILCENTER_BASE_URL": live_server.url,
        "MAILCENTER_BATCH_SIZE": "7",
    }
    log_path = tmp_path / "worker.log"
    proc = celery_worker(env, log_path, concurrency=2)
    proc.log_path = log_path  # type: ignore[attr-defined]
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_campaign_sent_by_a_real_worker(worker, smtp_sink, live_server):
    assert settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    mailing_list = MailingListFactory()
    people = {}
    for i in range(25):
        contact = ContactFactory(
            email=f"user{i}@example.org",
            first_name="" if i == 0 else f"Name{i}",
            attributes={"city": f"City{i}"},
        )
        SubscriptionFactory(contact=contact, mailing_list=mailing_list)
        people[contact.email] = {"first_name": contact.first_name, "city": f"City{i}"}
    campaign = CampaignFactory(
        lists=[mailing_list],
        subject="Hi {{ contact.first_name|default:'friend' }}",
        html=(
            "<p>Hi {{ contact.first_name|default:'friend' }} of {{ contact.attributes.city }}</p>"
            '<a href="https://example.com/one">one</a> <a href="https://example.com/two">two</a>'
        ),
    )
    services.campaign_start(campaign.pk)

    def finished() -> bool:
        if worker.poll() is not None:
            output = worker.log_path.read_text(errors="replace")
            raise AssertionError(f"worker exited early:\n{output}")
        return Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENT

    _wait_for(finished, 90, "the campaign to finish")
    campaign.refresh_from_db()
    by_rcpt = flow.check_messages(smtp_sink.received, people)
    expected = flow.follow_links(campaign, by_rcpt, live_server.url, "user3@example.org")
    flow.check_report(campaign, expected, recipients=25)
