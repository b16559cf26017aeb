from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.models import Contact, ContactImport, MailingList, Subscription
from tests.contacts.helpers import confirm_mapping
from tests.factories import ContactFactory, MailingListFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("contacts:list", []),
        ("contacts:lists", []),
        ("contacts:list-create", []),
        ("contacts:detail", [1]),
        ("contacts:list-detail", [1]),
        ("contacts:list-delete", [1]),
        ("contacts:import", []),
        ("contacts:import-detail", [1]),
        ("contacts:import-mapping", [1]),
        ("contacts:import-cancel", [1]),
        ("contacts:import-progress", [1]),
        ("contacts:import-refused-csv", [1]),
    ],
)
def test_pages_need_a_login(client, name, args):
    url = reverse(name, args=args)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_contact_list_searches_and_paginates(auth_client):
    for n in range(60):
        ContactFactory(email=f"member{n:02}@example.org", first_name=f"Member{n}")
    ContactFactory(email="ann.lee@example.com", first_name="Ann", last_name="Lee")

    page1 = auth_client.get(reverse("contacts:list"))
    page2 = auth_client.get(reverse("contacts:list"), {"page": 2})
    search = auth_client.get(reverse("contacts:list"), {"q": "ann lee"})
    by_name = auth_client.get(reverse("contacts:list"), {"q": "member5"})

    assert page1.status_code == 200
    assert len(page1.context["contacts"]) == 50
    assert "61 contacts" in page1.content.decode()
    assert len(page2.context["contacts"]) == 11
    assert [c.email for c in search.context["contacts"]] == ["ann.lee@example.com"]
    expected = {f"Member{n}" for n in range(50, 60)} | {"Member5"}
    assert {c.first_name for c in by_name.context["contacts"]} == expected


def test_contact_list_filters_by_list_and_status_and_keeps_filters_across_pages(auth_client):
    news = MailingListFactory(name="News")
    SubscriptionFactory.create_batch(55, mailing_list=news)
    gone = ContactFactory(email="gone@example.org", status=Contact.Status.UNSUBSCRIBED)
    SubscriptionFactory(mailing_list=news, contact=gone)
    ContactFactory(email="elsewhere@example.org")

    in_list = auth_client.get(reverse("contacts:list"), {"list": news.pk})
    unsubscribed = auth_client.get(
        reverse("contacts:list"), {"list": news.pk, "status": "unsubscribed"}
    )

    assert in_list.context["paginator"].count == 56
    html = in_list.content.decode()
    assert f"list={news.pk}" in html and "page=2" in html
    assert [c.email for c in unsubscribed.context["contacts"]] == ["gone@example.org"]


@pytest.mark.parametrize(
    "params",
    [{"list": "abc"}, {"list": "99999"}, {"status": "nope"}, {"page": "x"}, {"page": "999"}],
)
def test_contact_list_bad_filters_do_not_break_the_page(auth_client, params):
    ContactFactory()

    response = auth_client.get(reverse("contacts:list"), params)

    assert response.status_code == 200


def test_contact_detail_shows_fields_attributes_and_lists(auth_client):
    contact = ContactFactory(
        email="ann@example.com", first_name="Ann", attributes={"city": "Riga", "plan": "pro"}
    )
    SubscriptionFactory(contact=contact, mailing_list=MailingListFactory(name="Weekly"))
    SubscriptionFactory(
        contact=contact,
        mailing_list=MailingListFactory(name="Offers"),
        status=Subscription.Status.UNSUBSCRIBED,
    )

    response = auth_client.get(reverse("contacts:detail", args=[contact.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    for text in (
        "ann@example.com",
        "Riga",
        "plan",
        "Weekly",
        "Offers",
        "Unsubscribed",
        "badge-active",
    ):
        assert text in html


def test_contact_detail_edits_names_and_attributes(auth_client):
    contact = ContactFactory(first_name="Ann")
    url = reverse("contacts:detail", args=[contact.pk])

    response = auth_client.post(
        url, {"first_name": "Anna", "last_name": "Lee", "attributes": '{"city": "Tartu"}'}
    )
    bad = auth_client.post(url, {"first_name": "X", "attributes": "[1, 2]"})

    assert response.status_code == 302
    contact.refresh_from_db()
    assert (contact.first_name, contact.last_name, contact.attributes) == (
        "Anna",
        "Lee",
        {"city": "Tartu"},
    )
    assert bad.status_code == 400
    assert "JSON object" in bad.content.decode()


def test_lists_page_shows_subscriber_counts(auth_client):
    news = MailingListFactory(name="News")
    SubscriptionFactory.create_batch(3, mailing_list=news)
    SubscriptionFactory(mailing_list=news, status=Subscription.Status.UNSUBSCRIBED)
    SubscriptionFactory(mailing_list=news, contact=ContactFactory(status=Contact.Status.BOUNCED))

    response = auth_client.get(reverse("contacts:lists"))

    assert response.status_code == 200
    [item] = response.context["lists"]
    assert item.subscriber_count == 3
    assert "New list" in response.content.decode()


def test_create_list(auth_client):
    response = auth_client.post(
        reverse("contacts:list-create"), {"name": " VIP ", "description": ""}
    )
    duplicate = auth_client.post(reverse("contacts:list-create"), {"name": "vip"})
    empty = auth_client.post(reverse("contacts:list-create"), {"name": ""})

    vip = MailingList.objects.get()
    assert vip.name == "VIP"
    assert response["Location"] == reverse("contacts:list-detail", args=[vip.pk])
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.content.decode()
    assert empty.status_code == 400


def test_list_detail_shows_subscribers_with_search_and_import_button(auth_client):
    news = MailingListFactory(name="News")
    for n in range(51):
        SubscriptionFactory(mailing_list=news, contact=ContactFactory(email=f"s{n}@example.org"))
    SubscriptionFactory(mailing_list=news, contact=ContactFactory(email="zed@example.org"))
    url = reverse("contacts:list-detail", args=[news.pk])

    response = auth_client.get(url)
    search = auth_client.get(url, {"q": "zed"})

    html = response.content.decode()
    assert len(response.context["subscriptions"]) == 50
    assert f"{reverse('contacts:import')}?list={news.pk}" in html
    assert "data-confirm" in html
    assert reverse("contacts:list-delete", args=[news.pk]) in html
    assert [s.contact.email for s in search.context["subscriptions"]] == ["zed@example.org"]


def test_delete_list_asks_then_deletes_and_keeps_contacts(auth_client):
    news = MailingListFactory(name="News")
    SubscriptionFactory(mailing_list=news)
    url = reverse("contacts:list-delete", args=[news.pk])

    confirm = auth_client.get(url)
    response = auth_client.post(url)

    assert confirm.status_code == 200
    assert "Delete the list" in confirm.content.decode()
    assert response["Location"] == reverse("contacts:lists")
    assert not MailingList.objects.exists()
    assert Contact.objects.count() == 1


def test_missing_objects_are_404(auth_client):
    assert auth_client.get(reverse("contacts:detail", args=[999])).status_code == 404
    assert auth_client.get(reverse("contacts:list-detail", args=[999])).status_code == 404
    assert auth_client.get(reverse("contacts:import-progress", args=[999])).status_code == 404


def _upload(content: bytes, name: str = "people.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def test_upload_flow_end_to_end(auth_client, django_capture_on_commit_callbacks):
    news = MailingListFactory(name="News")
    form_page = auth_client.get(reverse("contacts:import"), {"list": news.pk})
    content = b"Email Address;First Name\nann@example.com;Ann\nbob@example.com;Bob\nnope;X\n"

    uploaded = auth_client.post(
        reverse("contacts:import"), {"mailing_list": news.pk, "file": _upload(content)}
    )
    item = ContactImport.objects.get()
    # Every upload stops at the mapping page first; nothing is imported yet.
    assert uploaded["Location"] == reverse("contacts:import-mapping", args=[item.pk])
    assert Contact.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_mapping(auth_client, uploaded)

    assert form_page.status_code == 200
    assert form_page.context["form"].initial["mailing_list"] == news
    assert "Upload and import" not in form_page.content.decode()
    assert response["Location"] == reverse("contacts:import-detail", args=[item.pk])
    page = auth_client.get(response["Location"])
    html = page.content.decode()
    progress_url = reverse("contacts:import-progress", args=[item.pk])
    assert f'data-progress-url="{progress_url}"' in html
    assert '<div class="progress"' in html and 'class="bar"' in html
    assert "data-reload-when-done" in html
    assert page.context["item"].created == 2
    assert page.context["item"].refused == 1
    assert "nope" in html
    assert reverse("contacts:import-refused-csv", args=[item.pk]) in html
    progress = auth_client.get(reverse("contacts:import-progress", args=[item.pk])).json()
    assert progress == {
        "status": "done",
        "status_display": "Done",
        "running": False,
        "percent": 100,
        "rows_done": 3,
        "rows_total": 3,
        "created": 2,
        "updated": 0,
        "skipped": 0,
        "refused": 1,
    }


def test_upload_into_a_new_list(auth_client, django_capture_on_commit_callbacks):
    uploaded = auth_client.post(
        reverse("contacts:import"),
        {"new_list_name": "Fresh", "file": _upload(b"email\nann@example.com\n")},
    )
    with django_capture_on_commit_callbacks(execute=True):
        confirm_mapping(auth_client, uploaded)

    fresh = MailingList.objects.get(name="Fresh")
    assert list(fresh.contacts.values_list("email", flat=True)) == ["ann@example.com"]


def test_a_file_without_an_email_column_is_explained_on_the_mapping_page(auth_client):
    news = MailingListFactory()
    uploaded = auth_client.post(
        reverse("contacts:import"),
        {"mailing_list": news.pk, "file": _upload(b"name,city\nIvan,Moscow\n")},
    )

    page = confirm_mapping(auth_client, uploaded)

    assert page.status_code == 400
    assert "Choose exactly one column that holds the email addresses" in page.content.decode()
    assert ContactImport.objects.get().status == ContactImport.Status.MAPPING


def test_failed_import_page_shows_the_error(auth_client):
    item = ContactImport.objects.create(
        mailing_list=MailingListFactory(),
        file="imports/x.csv",
        status=ContactImport.Status.FAILED,
        error="The file is not UTF-8 text.",
    )

    page = auth_client.get(reverse("contacts:import-detail", args=[item.pk]))

    assert "The import failed." in page.content.decode()
    assert "The file is not UTF-8 text." in page.content.decode()


def test_progress_of_a_running_import_keeps_polling(auth_client):
    item = ContactImport.objects.create(
        mailing_list=MailingListFactory(),
        file="imports/x.csv",
        status=ContactImport.Status.RUNNING,
        rows_total=200,
        rows_done=50,
    )

    data = auth_client.get(reverse("contacts:import-progress", args=[item.pk])).json()

    assert data["running"] is True
    assert data["percent"] == 25


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"file": b"email\na@x.org\n"}, "Choose a list"),
        ({"file": b""}, "empty"),
        ({}, "This field is required"),
        ({"file": b"PK\x03\x04zip"}, "workbook"),
    ],
)
def test_upload_errors_are_explained(auth_client, data, message):
    news = MailingListFactory()
    post = {"mailing_list": news.pk} if "Choose" not in message else {}
    if "file" in data:
        post["file"] = _upload(data["file"])

    response = auth_client.post(reverse("contacts:import"), post)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ContactImport.objects.exists()


def test_upload_refuses_a_file_over_the_limit(auth_client, settings):
    settings.MAILCENTER_IMPORT_MAX_BYTES = 1024 * 1024
    news = MailingListFactory()

    response = auth_client.post(
        reverse("contacts:import"),
        {"mailing_list": news.pk, "file": _upload(b"email\n" + b"a@example.org\n" * 100_000)},
    )

    assert response.status_code == 400
    assert "largest file accepted is 1.0" in response.content.decode()


def test_upload_refuses_both_or_a_taken_new_list_name(auth_client):
    news = MailingListFactory(name="News")
    both = auth_client.post(
        reverse("contacts:import"),
        {"mailing_list": news.pk, "new_list_name": "Other", "file": _upload(b"email\n")},
    )
    taken = auth_client.post(
        reverse("contacts:import"), {"new_list_name": "news", "file": _upload(b"email\na@b.cd\n")}
    )

    assert both.status_code == 400 and "not both" in both.content.decode()
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    assert MailingList.objects.count() == 1


def test_refused_csv_is_safe_against_formula_injection(auth_client):
    item = ContactImport.objects.create(
        mailing_list=MailingListFactory(),
        file="imports/x.csv",
        status=ContactImport.Status.DONE,
        refused=5,
        refused_rows=[
            {"row": 2, "email": '=HYPERLINK("http://evil")', "reason": "bad"},
            {"row": 3, "email": "+1", "reason": "-x"},
            {"row": 4, "email": "@SUM(A1)", "reason": "\tTab"},
            {"row": 5, "email": "\rCR", "reason": "ok"},
            {"row": 6, "email": "plain@", "reason": "“plain@” is not valid."},
        ],
    )

    response = auth_client.get(reverse("contacts:import-refused-csv", args=[item.pk]))

    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Row", "Email", "Reason"]
    assert rows[1] == ["2", '\'=HYPERLINK("http://evil")', "bad"]
    assert rows[2] == ["3", "'+1", "'-x"]
    assert rows[3] == ["4", "'@SUM(A1)", "'\tTab"]
    assert rows[4] == ["5", "'\rCR", "ok"]
    assert rows[5] == ["6", "plain@", "“plain@” is not valid."]
    for row in rows[1:]:
        assert not any(cell[:1] in "=+-@\t\r" and cell for cell in row)
