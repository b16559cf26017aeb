"""The shared rate limiter alone: sliding windows, releases, slots, on Redis and the database.

The Redis implementation runs when Redis answers on 127.0.0.1:6379 (database 12, keys
under a prefix of this test's own, deleted afterwards), else it is skipped.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection

from mailcenter.delivery.throttle import DatabaseLimiter, Limit, RedisLimiter

REDIS_URL = "redis://127.0.0.1:6379/12"


def _redis_limiter() -> RedisLimiter:
    limiter = RedisLimiter(REDIS_URL, prefix=f"test-throttle:{uuid.uuid4().hex}:")
    try:
        limiter.redis.ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable on 127.0.0.1:6379: {exc}")
    return limiter


@pytest.fixture(params=["database", "redis"])
def limiter(request):
    if request.param == "database":
        request.getfixturevalue("db")
        yield DatabaseLimiter()
        return
    limiter = _redis_limiter()
    yield limiter
    limiter.flush()


def test_sliding_window_counts_exactly_what_left_the_window(limiter):
    limits = [Limit(3, 10)]
    assert limiter.acquire("s", limits, 2, at=1000.0).count == 2
    grant = limiter.acquire("s", limits, 2, at=1001.0)
    assert grant.count == 1
    short = limiter.acquire("s", limits, 1, at=1009.9)
    assert short.count == 0
    # The first two leave the window at 1010: that is when the next message may go.
    assert short.retry_after == pytest.approx(0.1, abs=1e-6)
    # No burst at a window's edge: at 1010 only the two from 1000 have left.
    assert limiter.acquire("s", limits, 5, at=1010.0).count == 2
    assert limiter.acquire("s", limits, 5, at=1010.5).count == 0
    assert limiter.acquire("s", limits, 5, at=1011.0).count == 1
    # Another key has its own budget.
    assert limiter.acquire("other", limits, 5, at=1011.0).count == 3


def test_every_window_must_allow_it(limiter):
    limits = [Limit(2, 1), Limit(5, 100)]  # 2 per second, 5 per 100 seconds
    granted = [limiter.acquire("s", limits, 10, at=2000.0 + t).count for t in range(6)]
    assert granted == [2, 2, 1, 0, 0, 0]
    assert limiter.acquire("s", limits, 10, at=2100.0).count == 2


def test_released_messages_return_to_the_budget(limiter):
    limits = [Limit(4, 60)]
    grant = limiter.acquire("s", limits, 4, at=3000.0)
    assert grant.count == 4
    limiter.release(grant, 3)
    assert limiter.acquire("s", limits, 4, at=3001.0).count == 3
    assert limiter.acquire("s", limits, 1, at=3002.0).count == 0


def test_no_limits_or_nothing_wanted(limiter):
    assert limiter.acquire("s", [], 7, at=1.0).count == 7
    assert limiter.acquire("s", [Limit(1, 1)], 0, at=1.0).count == 0


def test_slots_cap_holders_and_expire(limiter):
    first = limiter.slot_acquire("c", 2, ttl=30, at=5000.0)
    second = limiter.slot_acquire("c", 2, ttl=30, at=5000.0)
    assert first and second and first != second
    assert limiter.slot_acquire("c", 2, ttl=30, at=5001.0) is None
    limiter.slot_release("c", first)
    third = limiter.slot_acquire("c", 2, ttl=30, at=5001.0)
    assert third
    assert limiter.slot_acquire("c", 2, ttl=30, at=5002.0) is None
    # A holder that died without releasing: its slot is free after the ttl.
    assert limiter.slot_acquire("c", 2, ttl=30, at=5030.0) is not None


def _hammer(make_limiter, totals: list[int], key: str) -> None:
    limiter = make_limiter()
    try:
        for _n in range(40):
            totals.append(limiter.acquire(key, [Limit(50, 1000)], 1, at=7000.0).count)
    finally:
        connection.close()


def _threads_share_one_budget(make_limiter) -> None:
    totals: list[int] = []
    key = f"shared-{uuid.uuid4().hex}"
    threads = [threading.Thread(target=_hammer, args=(make_limiter, totals, key)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(totals) == 240
    assert sum(totals) == 50


def test_two_redis_users_share_one_budget():
    prefix = f"test-throttle:{uuid.uuid4().hex}:"
    owner = _redis_limiter()
    try:
        _threads_share_one_budget(lambda: RedisLimiter(REDIS_URL, prefix=prefix))
    finally:
        RedisLimiter(REDIS_URL, prefix=prefix).flush()
        owner.flush()


def _process_hammer(prefix: str, key: str, queue) -> None:
    limiter = RedisLimiter(REDIS_URL, prefix=prefix)
    queue.put(sum(limiter.acquire(key, [Limit(50, 1000)], 1, at=7000.0).count for _ in range(40)))


def test_redis_users_in_separate_processes_share_one_budget():
    import multiprocessing

    owner = _redis_limiter()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [
        context.Process(target=_process_hammer, args=(owner.prefix, "shared", queue))
        for _ in range(4)
    ]
    try:
        for process in processes:
            process.start()
        totals = [queue.get(timeout=30) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        assert sum(totals) == 50
    finally:
        owner.flush()


@pytest.mark.django_db(transaction=True)
def test_two_database_users_share_one_budget():
    if connection.vendor == "sqlite":
        pytest.skip("the in-memory SQLite test database is shared-cache, locked per table")
    _threads_share_one_budget(DatabaseLimiter)


@pytest.mark.django_db
def test_two_database_limiters_interleaved_share_one_budget():
    """The budget lives in the database, not in the limiter object."""
    first, second = DatabaseLimiter(), DatabaseLimiter()
    granted = [
        (first if n % 2 else second).acquire("k", [Limit(5, 60)], 1, at=8000.0).count
        for n in range(9)
    ]
    assert sum(granted) == 5
