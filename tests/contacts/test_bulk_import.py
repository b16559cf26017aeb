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
)
def test_importing_twice_is_importing_once(
    db, run_import, settings, mailing_list, rows, copy_min_rows, mode, left_policy
):
    """Whatever the path, mode and policy; and c@y.org, who unsubscribed, is never
    subscribed again (its ended subscription stays ended, its status stays)."""
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
