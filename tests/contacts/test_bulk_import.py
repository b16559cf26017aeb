"""The PostgreSQL COPY path of the importer gives the batch path's outcome, rule for rule;
and custom fields get the expression index segments use. Skipped on SQLite."""

from __future__ import annotations

import pytest
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from contacts import segments, selectors
from contacts.models import Contact, ContactImport, MailingList, Subscription, Suppression
from contacts.services import fields as fields_service

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the COPY path and expression indexes are PostgreSQL's",
)

CSV = (
    "email,first name,last name,Age,city\n"
    "ann@example.com,Ann,,30,Lisbon\n"
    "bob@example.com,Bob,Stone,x,Porto\n"
    "ANN@example.com,,Lee,31,\n"
    "not-an-address,,,,\n"
    "kept@example.com,Kept,,,\n"
    "gone@example.com,Gone,,,\n"
    "blocked@spam.example,,,,\n"
    ",no email,,,\n"
)


def _run_both(run_import, settings, content, **options):
    """Import ``content`` through the batch path, then afresh through the COPY path, with
    ``options`` (mode, left_policy); return what each gave, to compare."""
    outcomes = []
    for min_rows in (10**9, 0):  # batch path, then COPY path
        Contact.objects.all().delete()
        settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = min_rows
        kept = Contact.objects.create(email="kept@example.com", first_name="Kept")
        gone = Contact.objects.create(
            email="gone@example.com", attributes={"city": "Rome"}, status="unsubscribed"
        )
        Subscription.objects.create(
            contact=gone, mailing_list=MailingList.objects.get(), status="unsubscribed"
        )
        item = run_import(content, **options)
        assert item.status == ContactImport.Status.DONE, item.error
        outcomes.append(
            (
                (item.created, item.updated, item.skipped, item.refused),
                sorted((r["row"], r["reason"]) for r in item.refused_rows),
                sorted(
                    Contact.objects.values_list(
                        "email", "first_name", "last_name", "attributes", "status"
                    )
                ),
                Subscription.objects.filter(contact=kept).count(),
                item.skipped_rows,
                list(Subscription.objects.filter(contact=gone).values_list("status", flat=True)),
            )
        )
    return outcomes


def test_copy_path_matches_the_batch_path(db, run_import, settings):
    fields_service.custom_field_create(key="age", label="Age", type="number")
    Suppression.objects.create(kind="domain", value="spam.example")
    batch, copy = _run_both(run_import, settings, CSV)
    assert batch == copy
    counts, refused, contacts, kept_subscribed, _skipped, _gone = copy
    assert counts == (1, 1, 2, 4)
    assert refused == [
        (3, "bad value for age"),
        (5, "“not-an-address” is not a valid email address."),
        (8, "suppressed"),
        (9, "No email address."),
    ]
    assert ("ann@example.com", "Ann", "Lee", {"age": 31, "city": "Lisbon"}, "active") in contacts
    assert kept_subscribed == 1


@pytest.mark.parametrize("mode", ContactImport.Mode.values)
@pytest.mark.parametrize("left_policy", ContactImport.LeftPolicy.values)
def test_copy_path_matches_the_batch_path_for_each_left_policy(
    db, run_import, settings, mode, left_policy
):
    """Same counts, contacts, reasons and subscriptions; and whatever the policy, the
    contact who unsubscribed keeps that status and its ended subscription."""
    fields_service.custom_field_create(key="age", label="Age", type="number")
    Suppression.objects.create(kind="domain", value="spam.example")
    content = CSV + "GONE@example.com,,Back,40,\n"
    batch, copy = _run_both(run_import, settings, content, mode=mode, left_policy=left_policy)
    assert batch == copy
    counts, _refused, contacts, _kept, skipped, gone_subscriptions = copy
    (gone,) = (c for c in contacts if c[0] == "gone@example.com")
    assert gone[4] == "unsubscribed"
    assert gone_subscriptions == ["unsubscribed"]
    details_updated = left_policy == "update" and mode != "add"
    if details_updated:
        assert gone[1:4] == ("Gone", "Back", {"city": "Rome", "age": 40})
        assert skipped[-1]["updated"] is True
        assert "kept unsubscribed" in skipped[-1]["reason"]
    else:
        assert gone[1:4] == ("", "", {"city": "Rome"})
        assert "updated" not in skipped[-1]
    assert skipped[-1]["row"] == 7
    # Skipped: the two repeated addresses, gone unless updated, ann when only updating.
    skipped_count = 2 + (not details_updated) + (mode == "update")
    assert counts == (int(mode != "update"), 1 + details_updated, skipped_count, 4)


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a@x.com", "A@x.com", "b@x.com", "c@y.org", "bad", ""]),
            st.sampled_from(["", "Ann", "Bob"]),
            st.sampled_from(["", "1", "2", "z"]),
        ),
        max_size=12,
    ),
    st.sampled_from([0, 10**9]),  # the COPY path, the batch path
    st.sampled_from(ContactImport.Mode.values),
    st.sampled_from(ContactImport.LeftPolicy.values),
    st.sampled_from([1, 3, 20_000]),  # rows per COPY chunk
)
def test_importing_twice_is_importing_once(
    db,
    run_import,
    settings,
    monkeypatch,
    mailing_list,
    rows,
    copy_min_rows,
    mode,
    left_policy,
    chunk,
):
    """Whatever the path, mode, policy and chunk size; and c@y.org, who unsubscribed, is
    never subscribed again (its ended subscription stays ended, its status stays)."""
    from contacts.services import bulk_import

    monkeypatch.setattr(bulk_import, "PROGRESS_EVERY", chunk)
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = copy_min_rows
    Contact.objects.all().delete()
    if not fields_service.custom_fields_by_key():
        fields_service.custom_field_create(key="n", label="N", type="number")
    gone = Contact.objects.create(email="c@y.org", status=Contact.Status.UNSUBSCRIBED)
    Subscription.objects.create(
        contact=gone, mailing_list=mailing_list, status=Subscription.Status.UNSUBSCRIBED
    )
    content = "email,first name,N\n" + "".join(f"{e},{f},{n}\n" for e, f, n in rows)

    def snapshot():
        return (
            sorted(Contact.objects.values_list("email", "first_name", "attributes", "status")),
            sorted(Subscription.objects.values_list("contact__email", "status")),
        )

    first = run_import(content, mode=mode, left_policy=left_policy)
    once = snapshot()
    second = run_import(content, mode=mode, left_policy=left_policy)
    assert snapshot() == once
    assert (second.created, second.updated) == (0, 0)
    assert second.refused == first.refused
    gone.refresh_from_db()
    assert gone.status == Contact.Status.UNSUBSCRIBED
    assert ("c@y.org", Subscription.Status.UNSUBSCRIBED) in once[1]
    assert sum(1 for email, _status in once[1] if email == "c@y.org") == 1


def test_custom_fields_get_the_index_segments_use(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        field = fields_service.custom_field_create(key="score", label="Score", type="number")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", [f"contacts_cf_{field.pk}_idx"]
        )
        (definition,) = cursor.fetchone()
        assert "jsonb_typeof" in definition
        cursor.execute("SET LOCAL enable_seqscan = off")
        rules = segments.segment_rules_clean(
            {"op": "and", "rules": [{"field": "custom.score", "op": "gte", "value": 5}]}
        )
        plan = selectors.segment_contacts(rules).order_by().explain()
    assert f"contacts_cf_{field.pk}_idx" in plan
    with django_capture_on_commit_callbacks(execute=True):
        fields_service.custom_field_delete(field)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'contacts_cf_%%'")
        assert cursor.fetchone()[0] == 0


def test_an_address_created_by_another_writer_during_a_chunk_is_updated_not_duplicated(
    db, run_import, settings
):
    """New addresses are COPYed straight into the contacts; when a sign-up creates one of
    a chunk's addresses after the chunk was looked at, the unique index stops the COPY,
    the chunk's savepoint is rolled back and the chunk goes through the merge instead,
    which finds that address as an existing contact."""
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    # Something suppressed, so that chunks are looked up before they are written.
    Suppression.objects.create(kind="email", value="nobody@else.example")

    def race(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "unnest(" in sql and not Contact.objects.filter(email="Raced@example.com").exists():
            Contact.objects.create(email="Raced@example.com", first_name="Form")
        return result

    with connection.execute_wrapper(race):
        item = run_import(
            "email,first name\nann@example.com,Ann\nraced@example.com,Csv\nbob@example.com,Bob\n"
        )
    assert item.status == ContactImport.Status.DONE, item.error
    assert (item.created, item.updated, item.skipped) == (2, 1, 0)
    assert sorted(Contact.objects.values_list("email", "first_name")) == [
        ("Raced@example.com", "Csv"),
        ("ann@example.com", "Ann"),
        ("bob@example.com", "Bob"),
    ]
    assert Subscription.objects.count() == 3


def test_an_address_created_by_another_writer_during_the_merge_is_left_to_it(
    db, run_import, settings
):
    """The merge inserts new contacts without ON CONFLICT; when a sign-up creates one of the
    file's addresses after the merge looked for existing contacts, the insert is retried
    with ON CONFLICT DO NOTHING and that address is skipped, not failed or duplicated.
    (New addresses reach the merge when their chunk could not be COPYed straight in:
    here because another sign-up raced the chunk first.)"""
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    # Something suppressed, so that chunks are looked up before they are written.
    Suppression.objects.create(kind="email", value="nobody@else.example")

    def race(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "unnest(" in sql:
            Contact.objects.create(email="other@example.com", first_name="Form")
        if sql.lstrip().startswith("CREATE TEMP TABLE") and "_existing" in sql:
            Contact.objects.create(email="Raced@example.com", first_name="Form")
        return result

    with connection.execute_wrapper(race):
        item = run_import(
            "email,first name\nann@example.com,Ann\nraced@example.com,Csv\n"
            "bob@example.com,Bob\nother@example.com,\n"
        )
    assert item.status == ContactImport.Status.DONE, item.error
    assert (item.created, item.updated, item.skipped) == (2, 1, 1)
    assert sorted(Contact.objects.values_list("email", "first_name")) == [
        ("Raced@example.com", "Form"),
        ("ann@example.com", "Ann"),
        ("bob@example.com", "Bob"),
        ("other@example.com", "Form"),
    ]


@pytest.mark.parametrize("chunk", [1, 2, 3])
@pytest.mark.parametrize("mode", ContactImport.Mode.values)
def test_the_copy_path_in_small_chunks_matches_the_batch_path(
    db, run_import, settings, monkeypatch, chunk, mode
):
    """New addresses are COPYed straight in chunk by chunk; a later row of an address
    written in an earlier chunk is folded into that contact by the merge, as if the file
    had been one chunk."""
    from contacts.services import bulk_import

    monkeypatch.setattr(bulk_import, "PROGRESS_EVERY", chunk)
    fields_service.custom_field_create(key="age", label="Age", type="number")
    Suppression.objects.create(kind="domain", value="spam.example")
    content = (
        CSV + "GONE@example.com,,Back,40,\nbob@example.com,,,,Braga\nann@example.com,Anna,,,\n"
    )
    batch, copy = _run_both(
        run_import, settings, content, mode=mode, left_policy=ContactImport.LeftPolicy.UPDATE
    )
    assert batch == copy


def test_tabs_backslashes_and_line_breaks_survive_the_copy_format(db, run_import, settings):
    content = (
        "email,first name,last name,city\n"
        'tab@example.com,"Ann\tTab","back\\\\slash \\\\N","C:\\\\path\\\\to"\n'
        'nl@example.com,"two\nlines","cr\rhere","quote "" and \\\\t"\n'
    )
    batch, copy = _run_both(run_import, settings, content)
    assert batch == copy
    contacts = {c[0]: c[1:4] for c in copy[2]}
    assert contacts["tab@example.com"] == (
        "Ann\tTab",
        "back\\\\slash \\\\N",
        {"city": "C:\\\\path\\\\to"},
    )
    assert contacts["nl@example.com"][0] == "two\nlines"


def test_an_error_while_reading_rolls_back_the_chunks_already_written(
    db, run_import, settings, monkeypatch
):
    """The reading thread's error reaches the import, which fails; the chunks COPYed
    before it are in the same transaction and are rolled back with it."""
    from contacts.services import bulk_import

    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    monkeypatch.setattr(bulk_import, "PROGRESS_EVERY", 1)
    real = bulk_import.normalize_email

    def normalize(raw):
        if raw.startswith("c@"):
            raise RuntimeError("disk on fire")
        return real(raw)

    monkeypatch.setattr(bulk_import, "normalize_email", normalize)
    item = run_import("email\na@example.com\nb@example.com\nc@example.com\nd@example.com\n")
    assert item.status == ContactImport.Status.FAILED
    assert "disk on fire" in item.error
    assert "Nothing from this file was imported" in item.error
    assert Contact.objects.count() == 0
    assert Subscription.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_progress_is_seen_by_others_while_the_import_transaction_is_open(
    run_import, settings, monkeypatch
):
    from django.db import DEFAULT_DB_ALIAS, connections

    from contacts.services import bulk_import

    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    monkeypatch.setattr(bulk_import, "PROGRESS_EVERY", 2)
    seen_by_others = []
    real_write = bulk_import._ProgressWriter.write

    def write_then_look(writer, tally):
        real_write(writer, tally)
        other = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with other.cursor() as cursor:
                cursor.execute(
                    "SELECT rows_done FROM contacts_contactimport WHERE id = %s",
                    [writer.import_id],
                )
                seen_by_others.append(cursor.fetchone()[0])
                cursor.execute("SELECT count(*) FROM contacts_contact")
                seen_by_others.append(cursor.fetchone()[0])
        finally:
            other.close()

    monkeypatch.setattr(bulk_import._ProgressWriter, "write", write_then_look)
    item = run_import("email\n" + "".join(f"p{n}@example.com\n" for n in range(5)))
    assert item.status == ContactImport.Status.DONE, item.error
    # Rows done as each chunk is written; no contact visible before the commit.
    assert seen_by_others == [2, 0, 4, 0, 5, 0, 5, 0]
    assert Contact.objects.count() == 5
