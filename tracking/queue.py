"""The hit queue between the public endpoints and the database.

With Redis, the pixel and the redirect only RPUSH a small JSON record and answer; the
writer (``hits_drain``: a Celery beat task every few seconds, or ``manage.py
track_writer``) moves hits out in batches and writes each batch in one transaction.

Nothing is lost and nothing is written twice, whatever process dies when:

1. A batch is claimed atomically (a Lua script: LMOVE up to N hits from the queue into
   a list of the batch's own, and add the batch id to the set of pending batches).
2. The batch's events and a HitBatch row with its id are written in one transaction.
3. Only then the batch's list and its id are removed from Redis.

A writer that starts finds the pending batches first: one whose HitBatch row exists was
written (the writer died at 3) and is only removed; any other is written (it died before
the commit). Two writers recovering the same batch collide on HitBatch's primary key,
and the loser's transaction rolls back.

Without Redis (the embedded default), ``hit_record`` writes the hit in the request.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache

from django.db import IntegrityError, transaction
from django.utils import timezone

from tracking import conf
from tracking.models import HitBatch
from tracking.services import Hit, hits_write

logger = logging.getLogger(__name__)

# KEYS: queue, batch list, pending set. ARGV: count, batch id.
_CLAIM = """
local n = tonumber(ARGV[1])
for i = 1, n do
  if not redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') then break end
end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('SADD', KEYS[3], ARGV[2]) end
return redis.call('LRANGE', KEYS[2], 0, -1)
"""
# Written batch ids are kept this long; a pending batch is never older than a writer run.
HIT_BATCH_KEEP = timedelta(days=2)


@cache
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _keys() -> tuple[str, str]:
    prefix = conf.tracking_queue_prefix()
    return f"{prefix}:hits", f"{prefix}:pending"


def _batch_key(batch_id: str) -> str:
    return f"{conf.tracking_queue_prefix()}:batch:{batch_id}"


def _encode(hit: Hit) -> bytes:
    return json.dumps(
        [
            hit.kind,
            hit.message_id,
            hit.link_index,
            (hit.at or timezone.now()).timestamp(),
            hit.method,
            hit.user_agent,
            hit.ip,
        ],
        separators=(",", ":"),
    ).encode()


def _decode(raw: bytes) -> Hit:
    kind, message_id, link_index, at, method, user_agent, ip = json.loads(raw)
    return Hit(
        kind=kind,
        message_id=message_id,
        link_index=link_index,
        at=datetime.fromtimestamp(at, tz=UTC),
        method=method,
        user_agent=user_agent,
        ip=ip,
    )


def hit_record(hit: Hit) -> None:
    """Queue a hit (Redis) or write it now (no queue configured)."""
    url = conf.tracking_queue_url()
    if url is None:
        hits_write([hit])
        return
    queue, _pending = _keys()
    _redis(url).rpush(queue, _encode(hit))


def queue_length() -> int:
    url = conf.tracking_queue_url()
    if url is None:
        return 0
    return int(_redis(url).llen(_keys()[0]))


def _write_batch(client, batch_id: str, raw: list[bytes]) -> int:
    """Write one claimed batch exactly once, then forget it in Redis."""
    written = 0
    if not HitBatch.objects.filter(pk=batch_id).exists():
        try:
            with transaction.atomic():
                HitBatch.objects.create(id=batch_id)  # first: a rival recoverer waits here
                written = len(hits_write([_decode(item) for item in raw]))
        except IntegrityError:
            logger.info("batch %s was written by another writer", batch_id)
            written = 0
    _forget_batch(client, batch_id)
    return written


def _forget_batch(client, batch_id: str) -> None:
    _queue, pending = _keys()
    pipe = client.pipeline()
    pipe.delete(_batch_key(batch_id))
    pipe.srem(pending, batch_id)
    pipe.execute()


def hits_drain(*, max_batches: int | None = None, batch_size: int | None = None) -> int:
    """Write queued hits until the queue is empty (or ``max_batches`` batches); return the
    number of events written. Pending batches of a writer that died go first."""
    url = conf.tracking_queue_url()
    if url is None:
        return 0
    client = _redis(url)
    queue, pending = _keys()
    size = batch_size or conf.writer_batch()
    written = 0
    for raw_id in client.smembers(pending):
        batch_id = raw_id.decode()
        written += _write_batch(client, batch_id, client.lrange(_batch_key(batch_id), 0, -1))
    claim = client.register_script(_CLAIM)
    batches = 0
    while max_batches is None or batches < max_batches:
        batch_id = uuid.uuid4().hex
        raw = claim(keys=[queue, _batch_key(batch_id), pending], args=[size, batch_id])
        if not raw:
            break
        written += _write_batch(client, batch_id, raw)
        batches += 1
    if batches:
        HitBatch.objects.filter(written_at__lt=timezone.now() - HIT_BATCH_KEEP).delete()
    return written
