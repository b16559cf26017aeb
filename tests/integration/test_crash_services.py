"""Crash safety when a service restarts mid-campaign: the Celery broker (Redis) and the
database (PostgreSQL). Each test starts a private server of its own, kills it while a real
worker is sending and starts it again; the shared Redis and PostgreSQL are never touched.

The same bound as for a killed worker (tests/integration/test_crash_safety.py and README
§Delivery): every recipient gets the message, and only messages in flight at the moment of
the outage (at most worker processes x batch size) may be sent twice.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import time
from collections import Counter

import kombu.pools
import psycopg
import pytest
import redis.exceptions
from kombu.exceptions import OperationalError as KombuOperationalError

from campaigns import services
from campaigns.models import Campaign, Message
from mailcenter.celery import app as celery_app
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory
from tests.integration.conftest import BATCH, CONCURRENCY, ROOT
from tests.integration.crash import PrivatePostgres, PrivateRedis, wait_for

RECIPIENTS = 300
BOUND = CONCURRENCY * BATCH
OUTAGE_SECONDS = 1.5


def _assert_delivered_within_bound(received: Counter[str], emails: list[str]) -> None:
    missing = set(emails) - set(received)
    assert not missing, f"{len(missing)} recipients got nothing, e.g. {sorted(missing)[:3]}"
    extra = sum(n - 1 for n in received.values())
    assert extra <= BOUND, f"{extra} duplicates, more than processes x batch size ({BOUND})"
    assert set(received) == set(emails)


def _use_broker(url: str | None) -> None:
    """Point this process's Celery app (what ``campaign_start`` enqueues with) at ``url``;
    None goes back to the configured broker. (Celery reads ``CELERY_BROKER_URL`` from the
    environment before ``broker_url``, so the read and write URLs are what can be set.)"""
    celery_app.conf.broker_write_url = url
    celery_app.conf.broker_read_url = url
    # Connection pools are kept in a registry of kombu's, per broker: empty it (closing
    # what it holds), so that the next send opens a pool for the new broker and a later
    # test does not find the old one closed.
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def _need(binary: str) -> None:
    if not (shutil.which(binary) or glob.glob(f"/usr/lib/postgresql/*/bin/{binary}")):
        reason = f"{binary} is not installed"
        if "integration" in os.environ.get("MAILCENTER_REQUIRE", ""):
            pytest.fail(f"MAILCENTER_REQUIRE asks for the integration tests: {reason}")
        pytest.skip(reason)


@pytest.fixture
def private_redis(tmp_path):
    _need("redis-server")
    server = PrivateRedis(tmp_path / "redis").start()
    _use_broker(server.url)
    yield server
    _use_broker(None)
    server.kill()


def _audience(prefix: str) -> tuple[list[str], object]:
    mailing_list = MailingListFactory()
    emails = [f"{prefix}{i}@example.org" for i in range(RECIPIENTS)]
    for email in emails:
        SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email=email))
    return emails, mailing_list


@pytest.mark.django_db(transaction=True)
def test_the_broker_restarted_mid_campaign_loses_nobody(private_redis, start_worker, slow_server):
    emails, mailing_list = _audience("broker")
    campaign = CampaignFactory(lists=[mailing_list])
    start_worker(CELERY_BROKER_URL=private_redis.url)
    services.campaign_start(campaign.pk)

    wait_for(lambda: len(slow_server.accepted) >= 30, 30, "sending to be under way")
    assert len(slow_server.accepted) < RECIPIENTS, "the outage must land mid-campaign"
    private_redis.kill()  # every queued task is gone with it: no persistence
    time.sleep(OUTAGE_SECONDS)
    private_redis.start()  # the same port, empty

    def tick() -> None:
        # The scheduler's job, done here; a tick while the broker is still coming back
        # fails to enqueue, and the next one does it (as beat's next run would).
        with contextlib.suppress(KombuOperationalError, redis.exceptions.ConnectionError):
            services.campaigns_tick()

    wait_for(
        lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENT,
        45,
        "the campaign to complete after the broker restart",
        every=tick,
    )
    _assert_delivered_within_bound(slow_server.per_recipient(), emails)
    assert Counter(Message.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "sent": RECIPIENTS
    }


# Run in a process of its own against the private cluster (this process's database is
# the shared test database, which must not be restarted).
_SEED = """
import sys, django
django.setup()
from campaigns import services
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory
mailing_list = MailingListFactory()
for email in sys.argv[1:]:
    SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email=email))
campaign = CampaignFactory(lists=[mailing_list])
services.campaign_start(campaign.pk)
print(campaign.pk)
"""

# What beat does every 30 s, every half second, for a bounded time; a tick that finds the
# database gone fails and the next one reconnects.
_TICKER = """
import sys, time, django
django.setup()
from django.conf import settings
from django.db import connection
from campaigns.services import campaigns_tick
settings.MAILCENTER_TICK_IDLE_SECONDS = 1
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    try:
        campaigns_tick()
    except Exception as exc:
        print("tick failed:", type(exc).__name__, flush=True)
        connection.close()
    time.sleep(0.5)
"""


@pytest.fixture
def private_postgres():
    _need("initdb")
    cluster = PrivatePostgres().init()
    yield cluster
    cluster.destroy()


def _query(url: str, sql: str, params: tuple) -> list[tuple] | None:
    """Rows, or None while the server is down or recovering."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute(sql, params).fetchall()
    except psycopg.OperationalError:
        return None


def test_the_database_restarted_mid_campaign_loses_nobody(
    private_postgres, start_worker, slow_server, tmp_path
):
    env = {**start_worker.env, "DATABASE_URL": private_postgres.url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    emails = [f"db{i}@example.org" for i in range(RECIPIENTS)]
    start_worker(DATABASE_URL=private_postgres.url)
    seeded = subprocess.run(
        [sys.executable, "-c", _SEED, *emails],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    campaign_id = int(seeded.stdout.split()[-1])
    with (tmp_path / "ticker.log").open("wb") as log:
        ticker = subprocess.Popen(
            [sys.executable, "-c", _TICKER, "60"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: len(slow_server.accepted) >= 30, 30, "sending to be under way")
        assert len(slow_server.accepted) < RECIPIENTS, "the outage must land mid-campaign"
        private_postgres.stop("immediate")  # every connection dropped, as in a crash
        time.sleep(OUTAGE_SECONDS)
        private_postgres.start()

        status_sql = "SELECT status FROM campaigns_campaign WHERE id = %s"
        wait_for(
            lambda: _query(private_postgres.url, status_sql, (campaign_id,)) == [("sent",)],
            45,
            "the campaign to complete after the database restart",
        )
    finally:
        ticker.terminate()
        ticker.wait(timeout=10)

    _assert_delivered_within_bound(slow_server.per_recipient(), emails)
    statuses = _query(
        private_postgres.url,
        "SELECT status, count(*) FROM campaigns_message WHERE campaign_id = %s GROUP BY status",
        (campaign_id,),
    )
    assert statuses == [("sent", RECIPIENTS)]
