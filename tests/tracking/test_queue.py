"""The hit queue: the endpoints answer without writing, the writer writes in bulk, and a
writer that dies at any point loses nothing and duplicates nothing (real Redis)."""

from __future__ import annotations

import socket
import uuid

import pytest
from django.core.management import call_command

from campaigns import services as campaign_services
from campaigns.models import Message
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory
from tracking import queue, tokens
from tracking.models import Event, HitBatch
from tracking.selectors import campaign_stats
from tracking.tasks import hits_drain_task

REDIS = ("127.0.0.1", 6379)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1):
            return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not _redis_up(), reason="Redis is not reachable on 127.0.0.1:6379"),
]


@pytest.fixture
def redis_queue(settings):
    settings.MAILCENTER_TRACKING_QUEUE = "redis://127.0.0.1:6379/13"
    settings.MAILCENTER_TRACKING_QUEUE_PREFIX = f"mailcenter:test:{uuid.uuid4().hex}"
    settings.MAILCENTER_SCANNER_SECONDS = 0
    client = queue._redis(settings.MAILCENTER_TRACKING_QUEUE)
    yield client
    for key in client.scan_iter(f"{settings.MAILCENTER_TRACKING_QUEUE_PREFIX}:*"):
        client.delete(key)


@pytest.fixture
def messages(django_capture_on_commit_callbacks):
    mailing_list = MailingListFactory()
    for _ in range(3):
        SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    return list(Message.objects.filter(campaign=campaign).order_by("id"))


def _hits(client, messages, rounds=1):
    for _ in range(rounds):
        for m in messages:
            assert (
                client.get(
                    f"/t/o/{tokens.make_token('open', m.pk)}/", HTTP_USER_AGENT=BROWSER
                ).status_code
                == 200
            )
            response = client.get(
                f"/t/c/{tokens.make_token('click', m.pk, 1)}/", HTTP_USER_AGENT=BROWSER
            )
            assert response.status_code == 302
            assert response["Location"] == "https://example.com/blog?a=1&b=2"


def test_endpoints_queue_and_the_writer_writes(client, redis_queue, messages):
    _hits(client, messages, rounds=2)
    assert not Event.objects.exists()  # nothing written in the request
    assert queue.queue_length() == 12
    assert queue.hits_drain(batch_size=5) == 12
    assert queue.queue_length() == 0
    assert Event.objects.count() == 12
    stats = campaign_stats(messages[0].campaign)
    assert (stats["opens_unique"], stats["opens_total"]) == (3, 6)
    assert (stats["clicks_unique"], stats["clicks_total"]) == (3, 6)
    assert HitBatch.objects.count() == 3
    assert not redis_queue.keys(f"{queue.conf.tracking_queue_prefix()}:*")


def test_forged_tokens_are_404_and_queue_nothing(client, redis_queue, messages):
    for prefix in ("/t/o/", "/t/c/"):
        assert client.get(f"{prefix}nonsense/").status_code == 404
    assert client.get(f"/t/c/{tokens.make_token('click', 999999, 0)}/").status_code == 404
    assert queue.queue_length() == 0


def test_pixel_of_a_missing_message_is_queued_and_dropped_by_the_writer(
    client, redis_queue, messages
):
    assert client.get(f"/t/o/{tokens.make_token('open', 999999)}/").status_code == 200
    assert queue.queue_length() == 1
    assert queue.hits_drain() == 0
    assert queue.queue_length() == 0
    assert not Event.objects.exists()


def test_writer_dying_before_its_commit_loses_nothing(client, redis_queue, messages, monkeypatch):
    _hits(client, messages)

    def crash(hits):
        raise RuntimeError("writer killed")

    monkeypatch.setattr(queue, "hits_write", crash)
    with pytest.raises(RuntimeError):
        queue.hits_drain(batch_size=4)
    assert not Event.objects.exists()
    assert queue.queue_length() == 2  # 4 claimed into a pending batch, 2 still queued
    monkeypatch.undo()
    assert queue.hits_drain(batch_size=4) == 6  # the pending batch first, then the rest
    assert Event.objects.count() == 6
    assert Event.objects.values("message", "kind").distinct().count() == 6


def test_writer_dying_after_its_commit_writes_nothing_twice(
    client, redis_queue, messages, monkeypatch
):
    _hits(client, messages)
    real_forget = queue._forget_batch

    def crash(client, batch_id):
        raise RuntimeError("writer killed between commit and cleanup")

    monkeypatch.setattr(queue, "_forget_batch", crash)
    with pytest.raises(RuntimeError):
        queue.hits_drain(batch_size=4)
    assert Event.objects.count() == 4
    monkeypatch.setattr(queue, "_forget_batch", real_forget)
    assert queue.hits_drain(batch_size=4) == 2  # the written batch is only forgotten
    assert Event.objects.count() == 6
    assert not redis_queue.smembers(f"{queue.conf.tracking_queue_prefix()}:pending")


def test_hits_of_deleted_messages_are_dropped(client, redis_queue, messages):
    _hits(client, messages[:1])
    Message.objects.filter(pk=messages[0].pk).delete()
    assert queue.hits_drain() == 0
    assert queue.queue_length() == 0


def test_celery_task_and_command_drain(client, redis_queue, messages):
    _hits(client, messages[:1])
    hits_drain_task.delay()
    assert Event.objects.count() == 2
    _hits(client, messages[1:2])
    call_command("track_writer", "--once")
    assert Event.objects.count() == 4


def test_without_redis_hits_are_written_in_the_request(client, settings, messages):
    settings.MAILCENTER_TRACKING_QUEUE = "direct"
    _hits(client, messages[:1])
    assert Event.objects.count() == 2
    assert queue.hits_drain() == 0


def test_writer_queries_do_not_grow_with_the_batch(messages, settings):
    """hits_write reads messages, campaigns and links once per batch, however many hits it
    holds, and never a message's campaign (with its HTML) per hit."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from tracking.services import Hit, hits_write

    settings.MAILCENTER_SCANNER_SECONDS = 0

    class Undo(Exception):
        pass

    def queries_for(recipients, repeat):
        hits = [
            Hit(kind=kind, message_id=m.pk, link_index=index, user_agent="Mozilla/5.0 X")
            for _ in range(repeat)
            for m in recipients
            for kind, index in (("open", None), ("click", 0), ("click", 1))
        ]
        with CaptureQueriesContext(connection) as captured:
            try:
                with transaction.atomic():  # the same starting state for both batches
                    assert len(hits_write(hits)) == len(hits)
                    raise Undo
            except Undo:
                pass
        return [q["sql"] for q in captured.captured_queries]

    # The recipients share a domain, so the batches touch the same counter rows.
    few, many = queries_for(messages[:1], 1), queries_for(messages, 5)
    assert len(many) == len(few)
    assert not any('"html"' in sql for sql in few + many)
