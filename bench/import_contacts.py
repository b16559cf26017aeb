"""How fast does a million-row CSV import, against a raw COPY of the same file?

    DATABASE_URL=postgres://... python bench/import_contacts.py [--rows N]

Builds a throwaway PostgreSQL database ``mailcenter_bench_import``, defines three custom
fields (a number, a date, a text), writes a CSV of N rows (default 1,000,000: email,
first and last name, the three fields) and imports it into a new list through the same
service the upload page and the API use: ``contact_import_create`` stores the upload,
``contact_import_run`` (what the Celery task calls) validates and writes with COPY.
The rate is rows per second from the start of ``contact_import_create`` to the import
being done, which includes building the custom-field indexes again when the importer set
them aside for the file (``contacts.services.indexes.custom_field_indexes_aside``).

The ceiling is ``COPY`` of the same file, as it is, into a bare table of text columns:
what the database can take in with no validation, no typing and no merge at all.
Also printed: the importer's peak RSS (this process's, which does nothing else heavy).

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import benchdb

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "mailcenter_bench_import"
TARGET_ROWS_PER_S = 50_000
FIRST = ["Ana", "Ben", "Chen", "Zoë", "Иван", "Olga", "Pierre", "Sara", "Tom", "Ümit"]
LAST = ["Silva", "Okafor", "Wei", "Müller", "Петров", "Dubois", "Smith", "Nowak"]
PLANS = ["Free", "Pro", "Team"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="default 1000000")
    return parser.parse_args()


def prepare_database() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        benchdb.skip("bench/import_contacts.py needs DATABASE_URL pointing at PostgreSQL")
    return benchdb.create(url, BENCH_DB)


def drop_database(admin: str) -> None:
    benchdb.drop(admin, BENCH_DB)


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(7)  # fixture data
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("Email Address,First Name,Last Name,Score,Signup Date,Plan\n")
        for n in range(rows):
            fh.write(
                f"subscriber{n}@example{n % 97}.com,{rng.choice(FIRST)},{rng.choice(LAST)},"
                f"{rng.randrange(1000)},20{rng.randrange(10, 26)}-{rng.randrange(1, 13):02d}-"
                f"{rng.randrange(1, 29):02d},{rng.choice(PLANS)}\n"
            )


def raw_copy_rate(path: Path, rows: int) -> float:
    """COPY the file as it is into a bare table of text columns; rows per second."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_bare (email text, first_name text, last_name text, "
            "score text, signup text, plan text)"
        )
        t0 = time.perf_counter()
        with (
            cursor.copy("COPY bench_bare FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            path.open("rb") as fh,
        ):
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
        elapsed = time.perf_counter() - t0
        cursor.execute("DROP TABLE bench_bare")
    return rows / elapsed


def main() -> int:
    args = parse_args()
    tmpdir = Path(tempfile.mkdtemp(prefix="mailcenter-import-bench-"))
    os.environ["MAILCENTER_VAR_DIR"] = str(tmpdir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailcenter.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    admin = prepare_database()
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.files import File
    from django.core.management import call_command
    from django.db import connection, transaction

    from contacts import services
    from contacts.models import Contact, ContactImport
    from contacts.services import bulk_import
    from contacts.services import fields as fields_service

    settings.MAILCENTER_IMPORT_MAX_BYTES = 1 << 31
    path = tmpdir / "contacts.csv"
    try:
        call_command("migrate", verbosity=0, interactive=False)
        fields_service.custom_field_create(key="score", label="Score", type="number")
        fields_service.custom_field_create(key="signup_date", label="Signup Date", type="date")
        fields_service.custom_field_create(key="plan", label="Plan", type="text")
        t0 = time.perf_counter()
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        written = time.perf_counter() - t0
        print(f"file: {args.rows:,} rows, {size_mb:.0f} MB, written in {written:.1f}s")

        ceiling = raw_copy_rate(path, args.rows)
        print(f"ceiling: raw COPY into a bare table: {ceiling:,.0f} rows/s")

        mailing_list = services.mailing_list_create(name="Bench")
        t0 = time.perf_counter()
        with path.open("rb") as fh, transaction.atomic():
            # The task is enqueued on commit and runs eagerly, as a worker would run it.
            item = services.contact_import_create(mailing_list, File(fh, name="contacts.csv"))
        elapsed = time.perf_counter() - t0
        item = ContactImport.objects.get(pk=item.pk)
        if item.status != ContactImport.Status.DONE:
            print(f"import did not finish: {item.status} {item.error}")
            return 1
        rate = args.rows / elapsed
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        contacts = Contact.objects.count()
        print(
            f"import: {elapsed:.1f}s, {rate:,.0f} rows/s (target >= {TARGET_ROWS_PER_S:,}); "
            f"created {item.created:,}, updated {item.updated:,}, skipped {item.skipped:,}, "
            f"refused {item.refused:,}; {contacts:,} contacts in the database"
        )
        print(f"ratio to raw COPY: {rate / ceiling:.2f}; importer peak RSS: {peak_mb:.0f} MB")
        with connection.cursor() as cursor:
            unchecked = bulk_import._can_skip_key_checks(cursor)
        print(
            "new subscriptions' foreign-key checks: "
            + ("left out (this role may set session_replication_role)" if unchecked else "made")
        )
        print(
            json.dumps(
                {
                    "bench": "import_contacts",
                    "value": round(rate),
                    "unit": "rows/s",
                    "ceiling": round(ceiling),
                    "ratio": round(rate / ceiling, 3),
                    "peak_rss_mb": round(peak_mb),
                    "rows": args.rows,
                    "seconds": round(elapsed, 2),
                    "fk_checks_left_out": unchecked,
                }
            )
        )
        return 0
    finally:
        path.unlink(missing_ok=True)
        drop_database(admin)


if __name__ == "__main__":
    sys.exit(main())
