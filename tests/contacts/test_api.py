from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from contacts.models import Contact, ContactImport, MailingList, Subscription
from tests.factories import ContactFactory, MailingListFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

LISTS = "/api/v1/lists/"
CONTACTS = "/api/v1/contacts/"
IMPORTS = "/api/v1/imports/"


@pytest.mark.parametrize("url", [LISTS, CONTACTS, IMPORTS, f"{CONTACTS}1/"])
def test_without_a_token_the_answer_is_401_json(url):
    response = APIClient().get(url)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_a_wrong_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token nope")

    assert client.get(CONTACTS).status_code == 401


def test_list_crud(api_client):
    created = api_client.post(LISTS, {"name": "News", "description": "Weekly"}, format="json")
    pk = created.json()["id"]
    duplicate = api_client.post(LISTS, {"name": "news"}, format="json")
    listed = api_client.get(LISTS)
    patched = api_client.patch(f"{LISTS}{pk}/", {"description": "Monthly"}, format="json")
    deleted = api_client.delete(f"{LISTS}{pk}/")

    assert created.status_code == 201
    assert created.json() == {"id": pk, "name": "News", "description": "Weekly"}
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.json()["errors"]["name"][0]
    assert listed.json()["count"] == 1
    assert set(listed.json()) >= {"count", "next", "results"}
    assert patched.json()["description"] == "Monthly"
    assert deleted.status_code == 204
    assert not MailingList.objects.exists()


def test_contact_crud(api_client):
    news = MailingListFactory(name="News")
    other = MailingListFactory(name="Other")

    created = api_client.post(
        CONTACTS,
        {
            "email": " Ann@Example.COM ",
            "first_name": "Ann",
            "attributes": {"city": "Riga"},
            "lists": [news.pk],
        },
        format="json",
    )
    pk = created.json()["id"]
    fetched = api_client.get(f"{CONTACTS}{pk}/")
    updated = api_client.put(
        f"{CONTACTS}{pk}/",
        {
            "email": "ann@example.com",
            "first_name": "Anna",
            "last_name": "Lee",
            "attributes": {"city": "Tartu"},
            "status": "active",
            "lists": [other.pk],
        },
        format="json",
    )
    deleted = api_client.delete(f"{CONTACTS}{pk}/")

    assert created.status_code == 201, created.json()
    assert created.json() == {
        "id": pk,
        "email": "Ann@example.com",
        "first_name": "Ann",
        "last_name": "",
        "attributes": {"city": "Riga"},
        "status": "active",
        "lists": [news.pk],
    }
    assert fetched.json() == created.json()
    assert updated.status_code == 200, updated.json()
    assert updated.json()["email"] == "ann@example.com"
    assert updated.json()["lists"] == [other.pk]
    assert updated.json()["attributes"] == {"city": "Tartu"}
    assert deleted.status_code == 204
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "not a valid email address"),
        ({"email": "a@b.cd\r\nBcc: x@y.z"}, "email", "line break"),
        ({"email": "ANN@example.com"}, "email", "already exists"),
        ({"email": "new@example.com", "attributes": [1, 2]}, "attributes", "JSON object"),
        ({"email": "new@example.com", "attributes": "x"}, "attributes", "JSON object"),
        ({"email": "new@example.com", "lists": [999]}, "lists", "no list with id 999"),
        ({"email": "new@example.com", "status": "vip"}, "status", "valid choice"),
    ],
)
def test_contact_create_refuses_bad_input_with_a_clear_message(api_client, payload, field, message):
    ContactFactory(email="ann@example.com")

    response = api_client.post(CONTACTS, payload, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["detail"]
    assert message in " ".join(str(m) for m in body["errors"][field])


def test_contact_update_refuses_a_duplicate_email(api_client):
    ContactFactory(email="ann@example.com")
    bob = ContactFactory(email="bob@example.com")

    response = api_client.patch(f"{CONTACTS}{bob.pk}/", {"email": "Ann@Example.com"}, format="json")

    assert response.status_code == 400
    assert "already exists" in response.json()["errors"]["email"][0]


def test_contact_update_never_reactivates_or_resubscribes(api_client):
    news = MailingListFactory()
    gone = ContactFactory(status=Contact.Status.UNSUBSCRIBED)
    left = ContactFactory()
    SubscriptionFactory(contact=left, mailing_list=news, status=Subscription.Status.UNSUBSCRIBED)

    reactivate = api_client.patch(f"{CONTACTS}{gone.pk}/", {"status": "active"}, format="json")
    resubscribe = api_client.patch(f"{CONTACTS}{left.pk}/", {"lists": [news.pk]}, format="json")
    unsubscribe = api_client.patch(f"{CONTACTS}{left.pk}/", {"status": "bounced"}, format="json")

    assert reactivate.status_code == 400
    assert "cannot be made active" in reactivate.json()["errors"]["status"][0]
    assert resubscribe.status_code == 400
    assert "unsubscribed" in resubscribe.json()["errors"]["lists"][0]
    assert unsubscribe.status_code == 200
    assert Subscription.objects.get(contact=left).status == Subscription.Status.UNSUBSCRIBED


def test_contact_filters(api_client):
    news = MailingListFactory()
    ann = ContactFactory(email="Ann@example.com")
    SubscriptionFactory(contact=ann, mailing_list=news)
    ContactFactory(email="annabel@example.com")

    by_email = api_client.get(CONTACTS, {"email": "ann@EXAMPLE.com"}).json()
    by_list = api_client.get(CONTACTS, {"list": news.pk}).json()
    bad_list = api_client.get(CONTACTS, {"list": "abc"})

    assert [c["email"] for c in by_email["results"]] == ["Ann@example.com"]
    assert [c["id"] for c in by_list["results"]] == [ann.pk]
    assert by_list["count"] == 1
    assert bad_list.status_code == 400
    assert "list" in bad_list.json()["errors"]


def test_contact_list_paginates_without_a_query_per_contact(
    api_client, django_assert_max_num_queries
):
    news = MailingListFactory()
    for _n in range(60):
        SubscriptionFactory(mailing_list=news)

    with django_assert_max_num_queries(6):
        body = api_client.get(CONTACTS).json()

    assert body["count"] == 60
    assert len(body["results"]) == 50
    assert body["next"]
    assert all(c["lists"] == [news.pk] for c in body["results"])


def test_multipart_import_creates_contacts(api_client, django_capture_on_commit_callbacks):
    news = MailingListFactory()
    upload = SimpleUploadedFile(
        "crm.csv", b"email,first_name,company\nann@example.com,Ann,ACME\nbad,,\n"
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(IMPORTS, {"file": upload, "list": news.pk}, format="multipart")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued"
    assert body["list"] == news.pk
    item = api_client.get(f"{IMPORTS}{body['id']}/").json()
    assert item["status"] == "done"
    assert (item["created"], item["updated"], item["skipped"], item["refused"]) == (1, 0, 0, 1)
    assert item["error"] == ""
    assert item["refused_rows"][0]["row"] == 3
    listed = api_client.get(IMPORTS).json()
    assert listed["count"] == 1
    assert "refused_rows" not in listed["results"][0]
    ann = Contact.objects.get()
    assert ann.attributes == {"company": "ACME"}
    assert ContactImport.objects.get().created_by.username == "marketer"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "file", "No file was submitted"),
        ({"file": b"email\n"}, "list", "required"),
        ({"file": b"", "list": True}, "file", "empty"),
        ({"file": b"PK\x03\x04", "list": True}, "file", "workbook"),
        ({"file": b"email\n", "list": 999}, "list", "Invalid pk"),
    ],
)
def test_import_create_refuses_bad_input(api_client, data, field, message):
    news = MailingListFactory()
    payload = {}
    if "file" in data:
        payload["file"] = SimpleUploadedFile("x.csv", data["file"])
    if "list" in data:
        payload["list"] = news.pk if data["list"] is True else data["list"]

    response = api_client.post(IMPORTS, payload, format="multipart")

    assert response.status_code == 400
    assert message in " ".join(response.json()["errors"][field])
    assert not ContactImport.objects.exists()


def test_schema_describes_the_import_upload_as_multipart(api_client):
    response = api_client.get("/api/schema/", {"format": "json"})

    schema = response.json()
    post = schema["paths"]["/api/v1/imports/"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    contact = schema["components"]["schemas"]["Contact"]["properties"]
    assert set(contact) == {
        "id",
        "email",
        "first_name",
        "last_name",
        "attributes",
        "status",
        "lists",
    }
    assert contact["lists"]["items"]["type"] == "integer"
