"""Rate limits shared by every worker on every machine: sliding windows and slots.

Two operations, each atomic across processes:

- ``acquire(key, limits, want)``: take up to ``want`` messages from every sliding window of
  ``limits`` for ``key`` (e.g. ``sender:default`` with 10 per second and 1000 per hour);
  returns a ``Grant`` of the number every window could still afford (possibly 0) and, when
  short, how long until more is free. ``release(grant, n)`` gives back ``n`` of a grant
  that was not used (messages put back after all).
- ``slot_acquire(key, limit, ttl)`` / ``slot_release``: at most ``limit`` holders at once
  (batches in flight for a sender, connections to a domain); a holder that dies without
  releasing frees its slot after ``ttl`` seconds.

A sliding window is a log of expiry times, one per message: exact (no burst at a fixed
window's edge), and bounded by the window's own count. Two implementations share one
contract: Redis (a Lua script per operation over sorted sets, each with a key expiry) when
Redis is the broker, and the database otherwise (``campaigns.ThrottleEntry`` rows, the
key's ``campaigns.ThrottleLock`` row locked for the read-modify-write). Never per process.

Times are seconds since the epoch from the caller's clock (``now()``, injectable in tests),
so machines are expected to keep time (NTP), as they must for TLS anyway.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` messages in any ``seconds`` long stretch of time."""

    count: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Grant:
    """``count`` messages granted (0 when throttled); ``retry_after``: seconds until the
    tightest window frees one more, when fewer than asked were granted."""

    key: str
    id: str
    count: int
    retry_after: float = 0.0
    windows: tuple[float, ...] = ()


# The clock and the wait, module-level so that tests can run days of windows in an instant.
def clock() -> float:
    return time.time()


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def now() -> datetime:
    """``clock()`` as an aware UTC datetime (what the send loop stamps rows with)."""
    return datetime.fromtimestamp(clock(), tz=UTC)


def _window_key(key: str, seconds: float) -> str:
    return f"{key}|w{seconds:g}"


def _slot_key(key: str) -> str:
    return f"{key}|slots"


class Limiter(Protocol):
    def acquire(
        self, key: str, limits: list[Limit], want: int, at: float | None = None
    ) -> Grant: ...

    def release(self, grant: Grant, count: int) -> None: ...

    def slot_acquire(
        self, key: str, limit: int, ttl: float, at: float | None = None
    ) -> str | None: ...

    def slot_release(self, key: str, token: str) -> None: ...


# -- Redis ---------------------------------------------------------------------------------

# KEYS: one sorted set per window. ARGV: now, want, grant id, then (count, seconds) per key.
# Members are "<grant id>:<n>", scored by when they leave the window.
_ACQUIRE_LUA = """
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local gid = ARGV[3]
local grant = want
local retry = 0
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local used = redis.call('ZCARD', key)
  local free = count - used
  if free < 0 then free = 0 end
  if free < want then
    local oldest = redis.call('ZRANGE', key, used - count + free, used - count + free, 'WITHSCORES')
    if oldest[2] then
      local wait = tonumber(oldest[2]) - now
      if wait > retry then retry = wait end
    end
  end
  if free < grant then grant = free end
end
if grant > 0 then
  for i, key in ipairs(KEYS) do
    local seconds = tonumber(ARGV[3 + 2 * i])
    local args = {}
    for n = 0, grant - 1 do
      args[#args + 1] = now + seconds
      args[#args + 1] = gid .. ':' .. n
    end
    for s = 1, #args, 1000 do
      redis.call('ZADD', key, unpack(args, s, math.min(s + 999, #args)))
    end
    redis.call('PEXPIRE', key, math.ceil(seconds * 1000) + 1000)
  end
end
return {grant, tostring(retry)}
"""

# KEYS: the slot set. ARGV: now, limit, ttl, token.
_SLOT_LUA = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000) + 1000)
return 1
"""


class RedisLimiter:
    """The limiter on Redis: each operation is one Lua script, atomic on the server."""

    def __init__(self, url: str, prefix: str = "mailcenter:throttle:") -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self._acquire = self.redis.register_script(_ACQUIRE_LUA)
        self._slot = self.redis.register_script(_SLOT_LUA)

    def acquire(self, key: str, limits: list[Limit], want: int, at: float | None = None) -> Grant:
        gid = uuid.uuid4().hex
        if not limits or want <= 0:
            return Grant(key, gid, max(want, 0))
        at = clock() if at is None else at
        keys = [self.prefix + _window_key(key, limit.seconds) for limit in limits]
        args: list[float | int | str] = [repr(at), want, gid]
        for limit in limits:
            args += [limit.count, repr(float(limit.seconds))]
        granted, retry = self._acquire(keys=keys, args=args)
        return Grant(key, gid, int(granted), float(retry), tuple(limit.seconds for limit in limits))

    def release(self, grant: Grant, count: int) -> None:
        count = min(count, grant.count)
        if count <= 0 or not grant.windows:
            return
        members = [f"{grant.id}:{n}" for n in range(grant.count - count, grant.count)]
        pipe = self.redis.pipeline()
        for seconds in grant.windows:
            pipe.zrem(self.prefix + _window_key(grant.key, seconds), *members)
        pipe.execute()

    def slot_acquire(self, key: str, limit: int, ttl: float, at: float | None = None) -> str | None:
        at = clock() if at is None else at
        token = uuid.uuid4().hex
        ok = self._slot(keys=[self.prefix + _slot_key(key)], args=[repr(at), limit, ttl, token])
        return token if ok else None

    def slot_release(self, key: str, token: str) -> None:
        self.redis.zrem(self.prefix + _slot_key(key), token)

    def flush(self) -> None:
        """Delete this limiter's keys (tests)."""
        for name in self.redis.scan_iter(match=self.prefix + "*", count=500):
            self.redis.delete(name)


# -- the database --------------------------------------------------------------------------


class DatabaseLimiter:
    """The limiter on the database, for deployments without Redis.

    Each operation runs in one transaction that first touches the key's lock row: on
    PostgreSQL that row lock (SELECT ... FOR UPDATE) serialises the key's users; on SQLite
    the first write takes the database's write lock, which does the same.
    """

    def _locked(self, key: str) -> None:
        from campaigns.models import ThrottleLock

        # The UPDATE comes first: it takes the lock (row on PostgreSQL, write lock on
        # SQLite) before anything is read, so no two users read the same count.
        if not ThrottleLock.objects.filter(key=key).update(key=key):
            ThrottleLock.objects.get_or_create(key=key)
            ThrottleLock.objects.filter(key=key).update(key=key)

    def acquire(self, key: str, limits: list[Limit], want: int, at: float | None = None) -> Grant:
        from django.db import transaction
        from django.db.models import Min, Sum

        from campaigns.models import ThrottleEntry

        gid = uuid.uuid4().hex
        if not limits or want <= 0:
            return Grant(key, gid, max(want, 0))
        at = clock() if at is None else at
        moment = datetime.fromtimestamp(at, tz=UTC)
        grant, retry = want, 0.0
        with transaction.atomic():
            self._locked(key)
            for limit in limits:
                wkey = _window_key(key, limit.seconds)
                live = ThrottleEntry.objects.filter(key=wkey)
                live.filter(expires_at__lte=moment).delete()
                used = live.aggregate(n=Sum("count"))["n"] or 0
                free = max(limit.count - used, 0)
                if free < want:
                    # Approximate when more frees up: the oldest entry's expiry.
                    first = live.aggregate(t=Min("expires_at"))["t"]
                    if first:
                        retry = max(retry, (first - moment).total_seconds())
                grant = min(grant, free)
            if grant > 0:
                ThrottleEntry.objects.bulk_create(
                    ThrottleEntry(
                        key=_window_key(key, limit.seconds),
                        token=gid,
                        count=grant,
                        expires_at=moment + timedelta(seconds=limit.seconds),
                    )
                    for limit in limits
                )
        return Grant(key, gid, grant, retry, tuple(limit.seconds for limit in limits))

    def release(self, grant: Grant, count: int) -> None:
        from django.db import transaction
        from django.db.models import F

        from campaigns.models import ThrottleEntry

        count = min(count, grant.count)
        if count <= 0 or not grant.windows:
            return
        with transaction.atomic():
            self._locked(grant.key)
            ThrottleEntry.objects.filter(token=grant.id).update(count=F("count") - count)

    def slot_acquire(self, key: str, limit: int, ttl: float, at: float | None = None) -> str | None:
        from django.db import transaction

        from campaigns.models import ThrottleEntry

        at = clock() if at is None else at
        moment = datetime.fromtimestamp(at, tz=UTC)
        skey = _slot_key(key)
        token = uuid.uuid4().hex
        with transaction.atomic():
            self._locked(key)
            live = ThrottleEntry.objects.filter(key=skey)
            live.filter(expires_at__lte=moment).delete()
            if live.count() >= limit:
                return None
            ThrottleEntry.objects.create(
                key=skey, token=token, count=1, expires_at=moment + timedelta(seconds=ttl)
            )
        return token

    def slot_release(self, key: str, token: str) -> None:
        from campaigns.models import ThrottleEntry

        ThrottleEntry.objects.filter(key=_slot_key(key), token=token).delete()


_limiters: dict[str, Limiter] = {}


def get_limiter() -> Limiter:
    """Redis when ``MAILCENTER_THROTTLE_URL`` (default: the Celery broker) is redis://,
    else the database. One instance per process and URL."""
    from django.conf import settings

    url = getattr(settings, "MAILCENTER_THROTTLE_URL", None) or settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        url = "db"
    limiter = _limiters.get(url)
    if limiter is None:
        limiter = DatabaseLimiter() if url == "db" else RedisLimiter(url)
        _limiters[url] = limiter
    return limiter
