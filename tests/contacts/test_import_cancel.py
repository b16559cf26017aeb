"""Cancelling an import: at once while it waits, between batches while it runs."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from contacts import services
from contacts.models import Contact, ContactImport
from contacts.services import bulk_import, imports
from tests.factories import MailingListFactory

pytestmark = pytest.mark.django_db

ROWS = "email,name\n" + "".join(f"p{n}@example.com,P{n}\n" for n in range(30))


def _stored(mailing_list, content: str = ROWS) -> ContactImport:
    item = ContactImport(mailing_list=mailing_list, original_name="c.csv")
    item.file.save("c.csv", ContentFile(content.encode()), save=False)
    item.save()
    return item


def test_cancelling_a_running_import_stops_between_batches(settings):
    settings.MAILCENTER_IMPORT_BATCH_SIZE = 7
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 10**9
    item = _stored(MailingListFactory())
    real_batch = imports._import_batch
    batches = []

    def batch_then_cancel(*args):
        real_batch(*args)
        batches.append(1)
        if len(batches) == 2:  # someone presses Cancel while the second batch is written
            services.contact_import_cancel(ContactImport.objects.get(pk=item.pk))

    with mock.patch.object(imports, "_import_batch", batch_then_cancel):
        services.contact_import_run(item.pk)

    item.refresh_from_db()
    assert len(batches) == 2
    assert item.status == ContactImport.Status.CANCELLED
    assert item.finished_at is not None
    # The two committed batches stay, counted; nothing after them was written.
    assert item.created == Contact.objects.count() == 14
    assert item.rows_done == 14


def test_a_cancelled_import_can_be_run_again_to_complete(settings):
    settings.MAILCENTER_IMPORT_BATCH_SIZE = 7
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 10**9
    news = MailingListFactory()
    first = _stored(news)
    # Cancel pressed between the claim and the first batch: the check before it stops.
    ContactImport.objects.filter(pk=first.pk).update(cancel_requested=True)
    services.contact_import_run(first.pk)
    first.refresh_from_db()
    assert first.status == ContactImport.Status.CANCELLED
    assert Contact.objects.count() == 0  # cancelled before the first batch

    again = _stored(news)
    services.contact_import_run(again.pk)
    again.refresh_from_db()
    assert again.status == ContactImport.Status.DONE
    assert again.created == Contact.objects.count() == 30


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
def test_cancelling_during_copy_writes_nothing(settings, monkeypatch):
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    monkeypatch.setattr(bulk_import, "PROGRESS_EVERY", 10)
    item = _stored(MailingListFactory())
    real_write = bulk_import._ProgressWriter.write

    def progress_then_cancel(writer, tally):
        real_write(writer, tally)
        services.contact_import_cancel(ContactImport.objects.get(pk=writer.import_id))

    monkeypatch.setattr(bulk_import._ProgressWriter, "write", progress_then_cancel)
    services.contact_import_run(item.pk)

    item.refresh_from_db()
    assert item.status == ContactImport.Status.CANCELLED
    assert item.rows_done == 10
    assert Contact.objects.count() == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f"contacts_import_stage_{item.pk}"])
        assert cursor.fetchone()[0] is None


def test_waiting_imports_are_cancelled_at_once_and_ended_ones_refuse():
    news = MailingListFactory()
    queued = _stored(news)
    services.contact_import_cancel(queued)
    assert queued.status == ContactImport.Status.CANCELLED
    services.contact_import_run(queued.pk)  # a task still in the queue does nothing
    assert Contact.objects.count() == 0

    with pytest.raises(ValidationError, match="already ended"):
        services.contact_import_cancel(queued)


def test_cancel_from_the_page(auth_client, django_capture_on_commit_callbacks):
    news = MailingListFactory()
    item = _stored(news)
    ContactImport.objects.filter(pk=item.pk).update(status=ContactImport.Status.RUNNING)
    detail = reverse("contacts:import-detail", args=[item.pk])
    cancel = reverse("contacts:import-cancel", args=[item.pk])

    page = auth_client.get(detail).content.decode()
    assert f'action="{cancel}"' in page and "data-confirm" in page
    assert auth_client.get(cancel).status_code == 405  # POST only

    response = auth_client.post(cancel)
    assert response["Location"] == detail
    item.refresh_from_db()
    assert item.cancel_requested and item.status == ContactImport.Status.RUNNING
    assert "Cancelling" in auth_client.get(detail).content.decode()

    # The importer stops at its next batch; the page says what stayed.
    ContactImport.objects.filter(pk=item.pk).update(
        status=ContactImport.Status.CANCELLED, created=3
    )
    page = auth_client.get(detail).content.decode()
    assert "The import was cancelled." in page and "3 contacts created" in page
    assert f'action="{cancel}"' not in page
    again = auth_client.post(cancel, follow=True)
    assert "already ended" in again.content.decode()


def test_cancel_from_the_mapping_page(auth_client):
    news = MailingListFactory()
    auth_client.post(
        reverse("contacts:import"),
        {
            "mailing_list": news.pk,
            "file": SimpleUploadedFile("c.csv", ROWS.encode(), content_type="text/csv"),
        },
    )
    item = ContactImport.objects.get()
    page = auth_client.get(reverse("contacts:import-mapping", args=[item.pk])).content.decode()
    assert reverse("contacts:import-cancel", args=[item.pk]) in page

    auth_client.post(reverse("contacts:import-cancel", args=[item.pk]))

    item.refresh_from_db()
    assert item.status == ContactImport.Status.CANCELLED
