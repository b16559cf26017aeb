"""A big import sets the custom-field indexes aside and builds them again; the COPY path
writes subscriptions without PostgreSQL's per-row key checks only where they cannot fail.
Skipped on SQLite."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from contacts import segments, selectors
from contacts.models import Contact, ContactImport, Subscription
from contacts.services import fields as fields_service
from contacts.services import indexes

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the COPY path and its indexes are PostgreSQL's"
)

CONTENT = "email,Score,Plan\n" + "".join(f"p{n}@example.com,{n},Pro\n" for n in range(6))


def _cf_indexes(cursor=None) -> dict[str, bool]:
    """The custom-field indexes there are, name → valid."""
    own = cursor is None
    cursor = cursor or connection.cursor()
    try:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = "
            "i.indexrelid WHERE c.relname LIKE 'contacts_cf_%%' ORDER BY c.relname"
        )
        return dict(cursor.fetchall())
    finally:
        if own:
            cursor.close()


@pytest.fixture
def fields(db, django_capture_on_commit_callbacks, settings):
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    with django_capture_on_commit_callbacks(execute=True):
        score = fields_service.custom_field_create(key="score", label="Score", type="number")
        plan = fields_service.custom_field_create(key="plan", label="Plan", type="text")
        # Booleans get no index; nothing to set aside or build for this one.
        fields_service.custom_field_create(key="vip", label="VIP", type="boolean")
    names = [indexes.custom_field_index_name(f.pk) for f in (score, plan)]
    assert _cf_indexes() == dict.fromkeys(names, True)
    return names


@contextmanager
def _aside_lock_held_elsewhere():
    """The indexes' lock, held by another session (another import) meanwhile. Released
    before that session closes: a closed session's locks go only when its server process
    gets round to ending, a moment later."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [indexes.INDEXES_ASIDE_LOCK])
        yield
    finally:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [indexes.INDEXES_ASIDE_LOCK])
        other.close()


def _watch_indexes(monkeypatch) -> list[dict[str, bool]]:
    """The custom-field indexes as seen by the import's own connection, chunk by chunk."""
    from contacts.services import bulk_import

    seen = []
    real = bulk_import._ProgressWriter.write

    def write(writer, tally):
        real(writer, tally)
        seen.append(_cf_indexes())

    monkeypatch.setattr(bulk_import._ProgressWriter, "write", write)
    return seen


def test_a_big_import_into_a_smaller_table_builds_the_indexes_again(
    fields, run_import, settings, monkeypatch
):
    settings.MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS = 5
    seen = _watch_indexes(monkeypatch)
    item = run_import(CONTENT)
    assert item.status == ContactImport.Status.DONE, item.error
    assert item.created == 6
    assert seen and all(during == {} for during in seen)
    assert _cf_indexes() == dict.fromkeys(fields, True)
    # And segments use them again.
    rules = segments.segment_rules_clean(
        {"op": "and", "rules": [{"field": "custom.score", "op": "gte", "value": 4}]}
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = selectors.segment_contacts(rules).order_by().explain()
    assert fields[0] in plan
    assert selectors.segment_contacts(rules).count() == 2


@pytest.mark.parametrize("why", ["small file", "bigger table", "update only", "another import"])
def test_the_indexes_stay_when_setting_them_aside_does_not_pay_or_is_taken(
    fields, run_import, settings, monkeypatch, why
):
    settings.MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS = 5
    mode = ContactImport.Mode.ADD_UPDATE
    held = nullcontext()
    if why == "small file":
        settings.MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS = 7
    elif why == "bigger table":
        # Half as many contacts as the file has rows: the rebuild would not pay.
        Contact.objects.bulk_create(Contact(email=f"old{n}@example.com") for n in range(3))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE contacts_contact")
    elif why == "update only":
        mode = ContactImport.Mode.UPDATE_ONLY
    else:
        held = _aside_lock_held_elsewhere()
    seen = _watch_indexes(monkeypatch)
    with held:
        item = run_import(CONTENT, mode=mode)
    assert item.status == ContactImport.Status.DONE, item.error
    assert seen and all(during == dict.fromkeys(fields, True) for during in seen)


def test_a_failed_import_builds_the_indexes_again(fields, run_import, settings, monkeypatch):
    from contacts.services import bulk_import

    settings.MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS = 1

    def fail(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bulk_import, "_merge", fail)
    item = run_import(CONTENT)
    assert item.status == ContactImport.Status.FAILED
    assert "disk on fire" in item.error
    assert Contact.objects.count() == 0
    assert _cf_indexes() == dict.fromkeys(fields, True)


def test_an_import_whose_indexes_cannot_be_built_again_is_still_done(
    fields, run_import, settings, monkeypatch, caplog
):
    """Its rows are committed: the import is done, and the repair builds the indexes."""
    from django.db import OperationalError

    settings.MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS = 1
    real = indexes.custom_field_index_ensure

    def ensure(field):
        raise OperationalError("canceling statement due to user request")

    monkeypatch.setattr(indexes, "custom_field_index_ensure", ensure)
    item = run_import(CONTENT)
    assert item.status == ContactImport.Status.DONE, item.error
    assert item.created == 6
    assert _cf_indexes() == {}
    assert "not built again" in caplog.text
    monkeypatch.setattr(indexes, "custom_field_index_ensure", real)
    assert indexes.custom_field_indexes_repair() == 2
    assert _cf_indexes() == dict.fromkeys(fields, True)


def test_the_repair_builds_missing_and_invalid_indexes_unless_an_import_has_them(fields):
    from contacts.tasks import custom_field_indexes_repair_task

    missing, invalid = fields
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {missing}")
        # What an interrupted CREATE INDEX CONCURRENTLY leaves behind.
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [invalid]
        )
    assert _cf_indexes() == {invalid: False}
    with _aside_lock_held_elsewhere():
        assert indexes.custom_field_indexes_repair() == 0
    assert _cf_indexes() == {invalid: False}
    # Through the task the beat sends.
    custom_field_indexes_repair_task()
    assert _cf_indexes() == dict.fromkeys(fields, True)
    assert indexes.custom_field_indexes_repair() == 0


def test_the_repair_is_scheduled():
    from django.conf import settings

    entries = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "contacts.tasks.custom_field_indexes_repair_task" in entries


@pytest.mark.parametrize("trigger", [False, True])
def test_subscriptions_are_written_unchecked_only_without_other_triggers(
    db, run_import, settings, monkeypatch, trigger
):
    """Replica mode (no per-row key checks) needs the privilege, which the test database's
    owner has, and tables with no triggers of their own: one added by an operator turns
    it off, so that trigger still fires."""
    from contacts.services import bulk_import

    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    modes = []
    real = bulk_import._DirectLoader._write

    class Spy:
        """The loader's cursor, noting the replication role each COPY runs under."""

        def __init__(self, cursor):
            self.cursor = cursor

        def __getattr__(self, name):
            return getattr(self.cursor, name)

        def copy(self, sql):
            self.cursor.execute("SHOW session_replication_role")
            modes.append(self.cursor.fetchone()[0])
            return self.cursor.copy(sql)

    def write(loader, contacts, subscriptions):
        loader.cursor = Spy(loader.cursor)
        real(loader, contacts, subscriptions)
        with connection.cursor() as cursor:
            cursor.execute("SHOW session_replication_role")
            modes.append(cursor.fetchone()[0])

    monkeypatch.setattr(bulk_import._DirectLoader, "_write", write)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE audit_seen (contact_id bigint)")
        if trigger:
            cursor.execute(
                "CREATE FUNCTION audit_subscription() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO audit_seen VALUES (NEW.contact_id); RETURN NEW; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER audit AFTER INSERT ON contacts_subscription "
                "FOR EACH ROW EXECUTE FUNCTION audit_subscription()"
            )
    item = run_import(CONTENT)
    assert item.status == ContactImport.Status.DONE, item.error
    during = "origin" if trigger else "replica"
    assert modes == [during, during, "origin"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_seen")
        assert cursor.fetchone()[0] == (6 if trigger else 0)
    assert Subscription.objects.filter(contact__email__startswith="p").count() == 6


@pytest.mark.django_db(transaction=True)
def test_the_list_cannot_be_deleted_while_subscriptions_are_written_unchecked(
    run_import, settings, monkeypatch
):
    """The lock PostgreSQL's key check would take on the list is taken once, up front."""
    from contacts.services import bulk_import

    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    outcomes = []
    real = bulk_import._DirectLoader._write

    def write(loader, contacts, subscriptions):
        real(loader, contacts, subscriptions)
        other = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with other.cursor() as cursor:
                cursor.execute("SET lock_timeout = '200ms'")
                try:
                    cursor.execute("DELETE FROM contacts_mailinglist")
                except Exception as exc:  # the lock, as a database error
                    outcomes.append(type(exc).__name__)
        finally:
            other.close()

    monkeypatch.setattr(bulk_import._DirectLoader, "_write", write)
    item = run_import(CONTENT)
    assert item.status == ContactImport.Status.DONE, item.error
    assert outcomes == ["OperationalError"]
    assert Subscription.objects.count() == 6


def test_an_address_created_by_another_writer_before_an_unasked_chunk_is_updated(
    db, run_import, settings, monkeypatch
):
    """With nothing suppressed, chunks are written without a lookup; when one meets an
    address someone else created meanwhile, the unique index stops its COPY, the chunk
    goes through the merge instead, and the chunks after it are looked up first."""
    from contacts.services import bulk_import

    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    monkeypatch.setattr(bulk_import, "PROGRESS_EVERY", 2)
    asked = []
    real = bulk_import._DirectLoader.load

    def load(loader, chunk):
        asked.append(loader.ask)
        if len(asked) == 2:
            Contact.objects.create(email="p2@example.com", first_name="Form")
        return real(loader, chunk)

    monkeypatch.setattr(bulk_import._DirectLoader, "load", load)
    item = run_import("email,first name\n" + "".join(f"p{n}@example.com,Csv\n" for n in range(6)))
    assert item.status == ContactImport.Status.DONE, item.error
    assert (item.created, item.updated, item.skipped) == (5, 1, 0)
    assert asked == [False, False, True]
    assert Contact.objects.get(email="p2@example.com").first_name == "Csv"
    assert Subscription.objects.count() == 6


def test_contacts_written_by_copy_get_the_columns_default_timestamps(db, run_import, settings):
    """The COPY leaves created_at and updated_at to the columns' default (the statement's
    start), as a row written by the ORM has them set by Django."""
    from django.utils import timezone

    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        (before,) = cursor.fetchone()
    item = run_import(CONTENT)
    assert item.status == ContactImport.Status.DONE, item.error
    after = timezone.now()
    stamps = list(Contact.objects.values_list("created_at", "updated_at"))
    stamps += list(Subscription.objects.values_list("created_at", "updated_at"))
    assert len(stamps) == 12
    assert all(before <= created == updated <= after for created, updated in stamps)
