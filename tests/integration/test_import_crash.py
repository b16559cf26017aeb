"""A worker SIGKILLed in the middle of a COPY import (PostgreSQL, Redis, real worker
processes): the list is as it was, the custom-field indexes the import had set aside are
missing, and the recovery runs the import again to the end, indexes included."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from contacts.models import Contact, ContactImport, Subscription
from contacts.services import fields as fields_service
from contacts.services import imports, indexes
from tests.factories import MailingListFactory
from tests.integration.crash import wait_for

ROWS = 300_000


def _cf_index_valid(name: str) -> bool | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            [name],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _lock_free(import_id: int) -> bool:
    if imports._run_lock(import_id, take=True):
        imports._run_lock(import_id, take=False)
        return True
    return False


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_import_leaves_the_list_as_it_was_and_the_import_runs_again(
    start_worker, settings, tmp_path
):
    var = tmp_path / "var"
    settings.MEDIA_ROOT = var / "media"
    field = fields_service.custom_field_create(key="score", label="Score", type="number")
    indexes.custom_field_index_ensure(field)
    index = indexes.custom_field_index_name(field.pk)
    assert _cf_index_valid(index) is True
    mailing_list = MailingListFactory()
    content = "email,Score\n" + "".join(f"k{n}@example.com,{n % 1000}\n" for n in range(ROWS))
    item = ContactImport(mailing_list=mailing_list, original_name="big.csv")
    item.file.save("big.csv", ContentFile(content.encode()), save=False)
    item.save()
    env = {"MAILCENTER_VAR_DIR": str(var)}
    worker = start_worker(**env)
    from contacts.tasks import contact_import_run_task

    contact_import_run_task.delay(item.pk)

    # Kill it once chunks are being written with the index set aside.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        item.refresh_from_db()
        if item.status not in (ContactImport.Status.QUEUED, ContactImport.Status.RUNNING):
            break
        if item.rows_done >= 20_000 and _cf_index_valid(index) is None:
            break
        time.sleep(0.02)
    assert item.status == ContactImport.Status.RUNNING, "the import ended before the kill"
    assert item.rows_done < ROWS
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)

    # Its database session ends with it: the transaction is rolled back, the locks freed.
    wait_for(lambda: _lock_free(item.pk), 30, "the killed import's session to end")
    assert Contact.objects.count() == 0
    assert Subscription.objects.count() == 0
    assert _cf_index_valid(index) is None
    item.refresh_from_db()
    assert item.status == ContactImport.Status.RUNNING

    start_worker(**env)
    assert imports.contact_imports_recover() == [item.pk]
    wait_for(
        lambda: ContactImport.objects.get(pk=item.pk).status != ContactImport.Status.RUNNING,
        120,
        "the import to run again to its end",
    )
    item.refresh_from_db()
    assert item.status == ContactImport.Status.DONE, item.error
    assert (item.rows_done, item.created, item.skipped, item.refused) == (ROWS, ROWS, 0, 0)
    assert Contact.objects.count() == ROWS
    assert Subscription.objects.filter(mailing_list=mailing_list).count() == ROWS
    assert _cf_index_valid(index) is True
