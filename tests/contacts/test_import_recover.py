"""An import whose worker died is run again; one whose worker lives is left to it.
PostgreSQL only: the run lock is an advisory lock of the running process's session."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.core.files.base import ContentFile
from django.db import DEFAULT_DB_ALIAS, connection, connections

from contacts.models import Contact, ContactImport
from contacts.services import imports

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the run lock is a PostgreSQL advisory lock"
)


@pytest.fixture
def left_running(mailing_list):
    """An import marked running, as a worker killed in the middle leaves it."""
    item = ContactImport(mailing_list=mailing_list, original_name="c.csv")
    item.file.save("c.csv", ContentFile(b"email\na@example.com\nb@example.com\n"), save=False)
    item.status = ContactImport.Status.RUNNING
    item.rows_done = 1
    item.attempts = 1
    item.save()
    return item


@pytest.fixture
def sent(monkeypatch):
    from contacts.tasks import contact_import_run_task

    ids: list[int] = []
    monkeypatch.setattr(contact_import_run_task, "delay", ids.append)
    return ids


@contextmanager
def _held_elsewhere(import_id: int):
    """The run lock, held by another session (the live worker) meanwhile; released
    before it closes, since a closed session's locks outlive it for a moment."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    key = [imports.IMPORT_RUN_LOCK, import_id]
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", key)
        yield
    finally:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        other.close()


def test_an_import_whose_worker_died_is_sent_again_and_runs(left_running, sent):
    from contacts.tasks import contact_imports_recover_task

    contact_imports_recover_task()  # what the beat sends
    assert sent == [left_running.pk]
    imports.contact_import_run(left_running.pk)
    left_running.refresh_from_db()
    assert left_running.status == ContactImport.Status.DONE, left_running.error
    assert (left_running.rows_done, left_running.created, left_running.attempts) == (2, 2, 2)
    assert Contact.objects.count() == 2
    # The lock is released when the run ends.
    assert imports._run_lock(left_running.pk, take=True)
    imports._run_lock(left_running.pk, take=False)


def test_an_import_whose_worker_lives_is_left_to_it(left_running, sent):
    with _held_elsewhere(left_running.pk):
        assert imports.contact_imports_recover() == []
        imports.contact_import_run(left_running.pk)  # a second delivery of its task
    assert sent == []
    left_running.refresh_from_db()
    assert (left_running.status, left_running.rows_done) == (ContactImport.Status.RUNNING, 1)
    assert Contact.objects.count() == 0


def test_a_finished_import_is_not_run_again(left_running, sent):
    ContactImport.objects.filter(pk=left_running.pk).update(status=ContactImport.Status.DONE)
    assert imports.contact_imports_recover() == []
    imports.contact_import_run(left_running.pk)
    assert Contact.objects.count() == 0
    assert imports._run_lock(left_running.pk, take=True)
    imports._run_lock(left_running.pk, take=False)


def test_the_recovery_is_scheduled():
    from django.conf import settings

    entries = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "contacts.tasks.contact_imports_recover_task" in entries


@pytest.mark.parametrize(("rows_total", "says"), [(2, "rows before the stop"), (10**6, "Nothing")])
def test_an_import_that_kills_its_worker_every_time_is_failed_after_three_starts(
    left_running, sent, rows_total, says
):
    ContactImport.objects.filter(pk=left_running.pk).update(
        attempts=imports.MAX_ATTEMPTS, rows_total=rows_total
    )
    assert imports.contact_imports_recover() == []
    assert sent == []
    left_running.refresh_from_db()
    assert left_running.status == ContactImport.Status.FAILED
    assert "stopped 3 times" in left_running.error
    assert says in left_running.error
    imports.contact_import_run(left_running.pk)
    assert Contact.objects.count() == 0
