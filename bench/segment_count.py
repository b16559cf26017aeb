"""How fast is the live count of a segment over a million contacts on PostgreSQL?

    DATABASE_URL=postgres://... python bench/segment_count.py [--contacts N] [--runs R]

Builds a throwaway PostgreSQL database ``mailcenter_bench_segments``, loads N contacts
(default 1,000,000) with three custom-field values each, all subscribed to one list, and
defines the custom fields through the service, as a marketer would; nobody creates an
index by hand. It then counts a three-condition segment the way the rule builder does
(``segment_rules_clean`` + ``segment_count``):

    domain is example.com  AND  score (a number field) >= 990  AND  in the list

The count is run once to warm the cache, then R times; the median is the figure. The
query plan (EXPLAIN ANALYZE) is printed. Beside it, as the ceiling to beat, the same
count with index scans switched off: the parallel sequential scan a JSON condition gets
without an expression index.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import benchdb

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "mailcenter_bench_segments"
DOMAINS = ["example.com", "example.org", "mail.example", "post.example", "inbox.example"]
TARGET_MS = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="default 1000000")
    parser.add_argument("--runs", type=int, default=7, help="warm runs, default 7")
    return parser.parse_args()


def prepare_database() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        benchdb.skip("bench/segment_count.py needs DATABASE_URL pointing at PostgreSQL")
    return benchdb.create(url, BENCH_DB)


def drop_database(admin: str) -> None:
    benchdb.drop(admin, BENCH_DB)


def load_contacts(count: int, list_id: int) -> None:
    """COPY the contacts and their subscriptions in (fixture data, not what is measured)."""
    from django.db import connection

    rng = random.Random(42)  # fixture data, not secrets
    buffer = io.StringIO()
    for n in range(count):
        attributes = {
            "score": rng.randrange(1000),
            "signup": (
                f"20{rng.randrange(10, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
            ),
            "plan": rng.choice(["Free", "Pro", "Team"]),
        }
        buffer.write(
            f"person{n}@{DOMAINS[n % len(DOMAINS)]}\tFirst{n}\tLast{n}\t"
            f"{json.dumps(attributes)}\tactive\t2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\n"
        )
    buffer.seek(0)
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY contacts_contact (email, first_name, last_name, attributes, status, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            while chunk := buffer.read(1 << 20):
                copy.write(chunk)
        cursor.execute(
            "INSERT INTO contacts_subscription (contact_id, mailing_list_id, status, "
            "created_at, updated_at) SELECT id, %s, 'subscribed', now(), now() "
            "FROM contacts_contact",
            [list_id],
        )
        cursor.execute("VACUUM ANALYZE contacts_contact")
        cursor.execute("VACUUM ANALYZE contacts_subscription")


def timed_counts(rules: dict, runs: int) -> list[float]:
    from contacts import selectors
    from contacts.services.fields import custom_fields_by_key

    fields = custom_fields_by_key()
    selectors.segment_count(rules, fields)  # warm-up
    times = []
    for _run in range(runs):
        t0 = time.perf_counter()
        selectors.segment_count(rules, fields)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> int:
    args = parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailcenter.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    admin = prepare_database()
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from contacts import segments, selectors
    from contacts.models import MailingList
    from contacts.services import fields as fields_service
    from contacts.services.indexes import custom_field_index_sync

    try:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        news = MailingList.objects.create(name="Everyone")
        load_contacts(args.contacts, news.pk)
        print(f"fixture: {args.contacts:,} contacts loaded in {time.perf_counter() - t0:.1f}s")

        # Defining the fields is all the marketer does; the service indexes them (here
        # after the load, as the index task would for a field added to a full table).
        t0 = time.perf_counter()
        score = fields_service.custom_field_create(key="score", label="Score", type="number")
        fields_service.custom_field_create(key="signup", label="Signed up", type="date")
        fields_service.custom_field_create(key="plan", label="Plan", type="text")
        for field_id in (score.pk, score.pk + 1, score.pk + 2):
            custom_field_index_sync(field_id)
        print(f"custom fields defined and indexed in {time.perf_counter() - t0:.1f}s")

        rules = segments.segment_rules_clean(
            {
                "op": "and",
                "rules": [
                    {"field": "domain", "op": "equals", "value": "example.com"},
                    {"field": "custom.score", "op": "gte", "value": 990},
                    {"field": "list", "op": "in", "value": news.pk},
                ],
            }
        )
        qs = selectors.segment_contacts(rules)
        print("\nquery plan:")
        print(qs.explain(analyze=True))

        times = timed_counts(rules, args.runs)
        counted = selectors.segment_count(rules)
        value = statistics.median(times)

        with connection.cursor() as cursor:
            cursor.execute("SET enable_indexscan = off")
            cursor.execute("SET enable_bitmapscan = off")
        seq_times = timed_counts(rules, max(3, args.runs // 2))
        seq = statistics.median(seq_times)
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_indexscan")
            cursor.execute("RESET enable_bitmapscan")

        print(f"\nmatching contacts: {counted['count']:,} (reachable {counted['reachable']:,})")
        print(
            f"segment count, warm median of {args.runs}: {value:.1f} ms "
            f"(min {min(times):.1f}, max {max(times):.1f}); target < {TARGET_MS} ms"
        )
        print(f"ceiling to beat: same count without index scans: {seq:.1f} ms")
        result = {
            "bench": "segment_count",
            "value": round(value, 1),
            "unit": "ms",
            "contacts": args.contacts,
            "count": counted["count"],
            "ceiling": round(seq, 1),
            "ceiling_is": "same count with index scans off (parallel seq scan)",
            "target_ms": TARGET_MS,
        }
        print(json.dumps(result))
        return 0 if value < TARGET_MS else 1
    finally:
        drop_database(admin)


if __name__ == "__main__":
    sys.exit(main())
