"""Import modes (add only / add and update / update only) and the skipped-rows report."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts import services
from contacts.models import Contact, ContactImport, Subscription
from tests.contacts.helpers import confirm_mapping
from tests.factories import MailingListFactory

pytestmark = pytest.mark.django_db

CSV = (
    "email,first_name,city\n"
    "known@example.com,New,Riga\n"
    "fresh@example.com,Fresh,Oslo\n"
    "gone@example.com,Back,Rome\n"
    "bad\n"
)
PATHS = pytest.mark.parametrize("copy_min_rows", [10**9, 0], ids=["batch-path", "copy-path"])


def _run(mailing_list, mode: str) -> ContactImport:
    item = ContactImport(mailing_list=mailing_list, original_name="c.csv", mode=mode)
    item.file.save("c.csv", ContentFile(CSV.encode()), save=False)
    item.save()
    services.contact_import_run(item.pk)
    item.refresh_from_db()
    return item


@pytest.fixture
def people():
    known = Contact.objects.create(email="known@example.com", first_name="Old")
    gone = Contact.objects.create(
        email="gone@example.com", first_name="Gone", status=Contact.Status.UNSUBSCRIBED
    )
    return known, gone


def _state(mailing_list):
    contacts = {c.email: (c.first_name, c.attributes) for c in Contact.objects.all()}
    members = set(
        Subscription.objects.filter(mailing_list=mailing_list).values_list(
            "contact__email", flat=True
        )
    )
    return contacts, members


LEFT = "unsubscribed, bounced or complained before: not subscribed again"


@PATHS
def test_add_and_update_is_the_default(settings, people, copy_min_rows):
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = copy_min_rows
    news = MailingListFactory()
    item = _run(news, ContactImport.Mode.ADD_UPDATE)

    assert ContactImport().mode == ContactImport.Mode.ADD_UPDATE
    assert item.status == ContactImport.Status.DONE, item.error
    assert (item.created, item.updated, item.skipped, item.refused) == (1, 1, 1, 1)
    contacts, members = _state(news)
    assert contacts["known@example.com"] == ("New", {"city": "Riga"})
    assert contacts["gone@example.com"] == ("Gone", {})
    assert members == {"known@example.com", "fresh@example.com"}
    assert item.skipped_rows == [{"row": 4, "email": "gone@example.com", "reason": LEFT}]


@PATHS
def test_add_only_keeps_known_contacts_data(settings, people, copy_min_rows):
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = copy_min_rows
    news = MailingListFactory()
    item = _run(news, ContactImport.Mode.ADD_ONLY)

    assert item.status == ContactImport.Status.DONE, item.error
    # The known contact joins the list (updated) but keeps its name and fields.
    assert (item.created, item.updated, item.skipped, item.refused) == (1, 1, 1, 1)
    contacts, members = _state(news)
    assert contacts["known@example.com"] == ("Old", {})
    assert contacts["fresh@example.com"] == ("Fresh", {"city": "Oslo"})
    assert members == {"known@example.com", "fresh@example.com"}
    assert item.skipped_rows == [{"row": 4, "email": "gone@example.com", "reason": LEFT}]

    again = _run(news, ContactImport.Mode.ADD_ONLY)
    assert (again.created, again.updated, again.skipped) == (0, 0, 3)


@PATHS
def test_update_only_creates_nobody(settings, people, copy_min_rows):
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = copy_min_rows
    news = MailingListFactory()
    item = _run(news, ContactImport.Mode.UPDATE_ONLY)

    assert item.status == ContactImport.Status.DONE, item.error
    assert (item.created, item.updated, item.skipped, item.refused) == (0, 1, 2, 1)
    contacts, members = _state(news)
    assert "fresh@example.com" not in contacts
    assert contacts["known@example.com"] == ("New", {"city": "Riga"})
    assert members == {"known@example.com"}
    assert sorted((r["row"], r["reason"]) for r in item.skipped_rows) == [
        (3, "not an existing contact (update only)"),
        (4, LEFT),
    ]


def test_mapping_page_takes_the_mode_and_reports_skipped_rows(
    auth_client, people, django_capture_on_commit_callbacks
):
    news = MailingListFactory()
    uploaded = auth_client.post(
        reverse("contacts:import"),
        {
            "mailing_list": news.pk,
            "file": SimpleUploadedFile("c.csv", CSV.encode(), content_type="text/csv"),
        },
    )
    page = auth_client.get(uploaded["Location"])
    html = page.content.decode()
    assert "never subscribed again by an import" in html
    assert 'value="add_update"' in html and "checked" in html

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_mapping(auth_client, uploaded, mode="update")

    item = ContactImport.objects.get()
    assert item.mode == ContactImport.Mode.UPDATE_ONLY
    detail = auth_client.get(response["Location"]).content.decode()
    assert "Skipped rows with a reason" in detail
    assert "gone@example.com" in detail and "Update existing contacts only" in detail
    download = auth_client.get(reverse("contacts:import-refused-csv", args=[item.pk]))
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0] == ["Row", "Email", "Reason"]
    assert ["4", "gone@example.com", f"skipped: {LEFT}"] in rows
    assert ["5", "bad", "“bad” is not a valid email address."] in rows


def test_api_mode(api_client, people, django_capture_on_commit_callbacks):
    news = MailingListFactory()
    bad = api_client.post(
        "/api/v1/imports/",
        {
            "list": news.pk,
            "mode": "resubscribe",
            "file": SimpleUploadedFile("c.csv", CSV.encode(), content_type="text/csv"),
        },
        format="multipart",
    )
    assert bad.status_code == 400 and "mode" in bad.json()["errors"]

    with django_capture_on_commit_callbacks(execute=True):
        ok = api_client.post(
            "/api/v1/imports/",
            {
                "list": news.pk,
                "mode": "add",
                "file": SimpleUploadedFile("c.csv", CSV.encode(), content_type="text/csv"),
            },
            format="multipart",
        )

    assert ok.status_code == 201, ok.json()
    body = api_client.get(f"/api/v1/imports/{ok.json()['id']}/").json()
    assert body["mode"] == "add"
    assert body["skipped_rows"][0]["email"] == "gone@example.com"
    assert Contact.objects.get(email="known@example.com").first_name == "Old"
