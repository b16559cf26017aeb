"""The PostgreSQL COPY path of the importer gives the batch path's outcome, rule for rule;
and custom fields get the expression index segments use. Skipped on SQLite."""

from __future__ import annotations

import pytest
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from contacts import segments, selectors
from contacts.models import Contact, ContactImport, Subscription, Suppression
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


def _run_both(run_import, settings, content):
    outcomes = []
    for min_rows in (10**9, 0):  # batch path, then COPY path
        Contact.objects.all().delete()
        settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = min_rows
        kept = Contact.objects.create(email="kept@example.com", first_name="Kept")
        Contact.objects.create(email="gone@example.com", status=Contact.Status.UNSUBSCRIBED)
        item = run_import(content)
        assert item.status == ContactImport.Status.DONE, item.error
        outcomes.append(
            (
                (item.created, item.updated, item.skipped, item.refused),
                sorted((r["row"], r["reason"]) for r in item.refused_rows),
                sorted(
                    Contact.objects.values_list("email", "first_name", "last_name", "attributes")
                ),
                Subscription.objects.filter(contact=kept).count(),
            )
        )
    return outcomes


def test_copy_path_matches_the_batch_path(db, run_import, settings):
    fields_service.custom_field_create(key="age", label="Age", type="number")
    Suppression.objects.create(kind="domain", value="spam.example")
    batch, copy = _run_both(run_import, settings, CSV)
    assert batch == copy
    counts, refused, contacts, kept_subscribed = copy
    assert counts == (1, 1, 2, 4)
    assert refused == [
        (3, "bad value for age"),
        (5, "“not-an-address” is not a valid email address."),
        (8, "suppressed"),
        (9, "No email address."),
    ]
    assert ("ann@example.com", "Ann", "Lee", {"age": 31, "city": "Lisbon"}) in contacts
    assert kept_subscribed == 1


@hsettings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a@x.com", "A@x.com", "b@x.com", "c@y.org", "bad", ""]),
            st.sampled_from(["", "Ann", "Bob"]),
            st.sampled_from(["", "1", "2", "z"]),
        ),
        max_size=12,
    )
)
def test_importing_twice_is_importing_once(db, run_import, settings, rows):
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    Contact.objects.all().delete()
    if not fields_service.custom_fields_by_key():
        fields_service.custom_field_create(key="n", label="N", type="number")
    content = "email,first name,N\n" + "".join(f"{e},{f},{n}\n" for e, f, n in rows)

    def snapshot():
        return sorted(Contact.objects.values_list("email", "first_name", "attributes", "status"))

    first = run_import(content)
    once = snapshot()
    second = run_import(content)
    assert snapshot() == once
    assert (second.created, second.updated) == (0, 0)
    assert second.refused == first.refused


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


def test_an_address_created_by_another_writer_during_the_merge_is_left_to_it(
    db, run_import, settings
):
    """The merge inserts new contacts without ON CONFLICT; when a sign-up creates one of the
    file's addresses after the merge looked for existing contacts, the insert is retried
    with ON CONFLICT DO NOTHING and that address is skipped, not failed or duplicated."""
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0

    def race(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.lstrip().startswith("CREATE TEMP TABLE") and "_existing" in sql:
            Contact.objects.create(email="Raced@example.com", first_name="Form")
        return result

    with connection.execute_wrapper(race):
        item = run_import(
            "email,first name\nann@example.com,Ann\nraced@example.com,Csv\nbob@example.com,Bob\n"
        )
    assert item.status == ContactImport.Status.DONE, item.error
    assert (item.created, item.skipped) == (2, 1)
    assert sorted(Contact.objects.values_list("email", "first_name")) == [
        ("Raced@example.com", "Form"),
        ("ann@example.com", "Ann"),
        ("bob@example.com", "Bob"),
    ]
