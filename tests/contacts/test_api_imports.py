"""The imports API with a mapping: upload, review the columns, map, poll, read the result."""

from __future__ import annotations

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from contacts.models import Contact, ContactImport, CustomField
from contacts.services.fields import custom_field_create
from tests.factories import ContactFactory, MailingListFactory

pytestmark = pytest.mark.django_db

IMPORTS = "/api/v1/imports/"
CSV = "E-mail;Given;Town;Score\nann@example.com;Ann;Riga;5\nbad;X;Y;1\ngone@example.com;G;Z;2\n"


def _upload(content: str = CSV) -> SimpleUploadedFile:
    return SimpleUploadedFile("people.csv", content.encode(), content_type="text/csv")


def test_create_with_an_object_mapping_a_new_typed_field_and_a_mode(
    api_client, django_capture_on_commit_callbacks
):
    news = MailingListFactory()
    ContactFactory(email="gone@example.com", status=Contact.Status.UNSUBSCRIBED)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            IMPORTS,
            {
                "list": news.pk,
                "file": _upload(),
                "mode": "add",
                "mapping": '{"Given": "first_name", "town": "ignore", "4": "new:score:number"}',
            },
            format="multipart",
        )

    assert response.status_code == 201, response.json()
    item_id = response.json()["id"]
    result = api_client.get(f"{IMPORTS}{item_id}/").json()
    assert result["status"] == "done"
    assert result["mode"] == "add"
    assert result["mapping"] == ["email", "first_name", "ignore", "field:score"]
    assert (result["created"], result["skipped"], result["refused"]) == (1, 1, 1)
    assert result["refused_rows"] == [
        {"row": 3, "email": "bad", "reason": "“bad” is not a valid email address."}
    ]
    assert result["skipped_rows"][0]["email"] == "gone@example.com"
    assert CustomField.objects.get(key="score").type == "number"
    ann = Contact.objects.get(email="ann@example.com")
    assert (ann.first_name, ann.attributes) == ("Ann", {"score": 5})


def test_review_columns_then_map_then_poll(api_client, django_capture_on_commit_callbacks):
    custom_field_create(key="city", label="City")
    news = MailingListFactory()
    created = api_client.post(
        IMPORTS, {"list": news.pk, "file": _upload(), "review": "true"}, format="multipart"
    )
    assert created.status_code == 201, created.json()
    item_id = created.json()["id"]
    assert created.json()["status"] == "mapping"
    assert not Contact.objects.exists()

    columns = api_client.get(f"{IMPORTS}{item_id}/columns/").json()
    assert [c["header"] for c in columns] == ["E-mail", "Given", "Town", "Score"]
    assert [c["guess"] for c in columns] == ["email", "new", "new", "new"]
    assert columns[2]["samples"] == ["Riga", "Y", "Z"]
    assert columns[3]["new_field_key"] == "score"

    with django_capture_on_commit_callbacks(execute=True):
        mapped = api_client.post(
            f"{IMPORTS}{item_id}/mapping/",
            {"mapping": ["email", "first_name", "field:city", "ignore"], "mode": "add_update"},
            format="json",
        )

    assert mapped.status_code == 200, mapped.json()
    progress = api_client.get(f"{IMPORTS}{item_id}/progress/").json()
    assert progress["status"] == "done" and progress["running"] is False
    assert (progress["percent"], progress["rows_done"], progress["created"]) == (100, 3, 2)
    assert Contact.objects.get(email="ann@example.com").attributes == {"city": "Riga"}
    # Started once: mapping it again is refused in words.
    again = api_client.post(f"{IMPORTS}{item_id}/mapping/", {}, format="json")
    assert again.status_code == 400
    assert "already started" in str(again.json())


def test_mapping_without_a_mapping_uses_the_guesses(api_client, django_capture_on_commit_callbacks):
    news = MailingListFactory()
    item_id = api_client.post(
        IMPORTS, {"list": news.pk, "file": _upload(), "review": "true"}, format="multipart"
    ).json()["id"]

    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(f"{IMPORTS}{item_id}/mapping/", {}, format="json")

    item = ContactImport.objects.get()
    assert item.mapping == ["email", "field:given", "field:town", "field:score"]
    assert item.status == ContactImport.Status.DONE, item.error


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"mapping": ["email", "email", "ignore", "ignore"]}, "exactly one column"),
        ({"mapping": {"Phone": "email"}}, "no column “Phone”"),
        ({"mapping": {"Town": "new:Town Name"}}, "cannot be the name of the new field"),
        ({"mapping": "email"}, "JSON list"),
        ({"mode": "resubscribe"}, "is not a valid choice"),
    ],
)
def test_a_bad_mapping_is_refused_and_the_import_keeps_waiting(api_client, body, message):
    news = MailingListFactory()
    item_id = api_client.post(
        IMPORTS, {"list": news.pk, "file": _upload(), "review": "true"}, format="multipart"
    ).json()["id"]

    response = api_client.post(f"{IMPORTS}{item_id}/mapping/", body, format="json")

    assert response.status_code == 400
    assert message in str(response.json())
    assert ContactImport.objects.get().status == ContactImport.Status.MAPPING
    assert not CustomField.objects.exists()


def test_progress_of_a_running_import_has_rate_and_time_left(api_client):
    item = ContactImport.objects.create(
        mailing_list=MailingListFactory(),
        file="imports/x.csv",
        status=ContactImport.Status.RUNNING,
        rows_total=300,
        rows_done=100,
        started_at=timezone.now() - datetime.timedelta(seconds=10),
    )

    progress = api_client.get(f"{IMPORTS}{item.pk}/progress/").json()

    assert progress["running"] is True and progress["percent"] == 33
    assert 5 <= progress["rate"] <= 10
    assert progress["seconds_left"] >= 20


def test_cancel_a_waiting_import_and_refuse_cancelling_it_twice(api_client):
    news = MailingListFactory()
    item_id = api_client.post(
        IMPORTS, {"list": news.pk, "file": _upload(), "review": "true"}, format="multipart"
    ).json()["id"]

    cancelled = api_client.post(f"{IMPORTS}{item_id}/cancel/")
    again = api_client.post(f"{IMPORTS}{item_id}/cancel/")

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert again.status_code == 400 and "already ended" in str(again.json())


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", "columns/"), ("post", "mapping/"), ("get", "progress/"), ("post", "cancel/")],
)
def test_import_actions_need_a_token(method, suffix):
    item = ContactImport.objects.create(mailing_list=MailingListFactory(), file="imports/x.csv")

    response = getattr(APIClient(), method)(f"{IMPORTS}{item.pk}/{suffix}")

    assert response.status_code in {401, 403}


def test_schema_documents_every_contacts_endpoint(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]

    for path in (
        "/api/v1/contacts/",
        "/api/v1/contacts/{id}/",
        "/api/v1/lists/",
        "/api/v1/fields/",
        "/api/v1/segments/",
        "/api/v1/segments/count/",
        "/api/v1/suppressions/",
        "/api/v1/imports/",
        "/api/v1/imports/{id}/",
        "/api/v1/imports/{id}/columns/",
        "/api/v1/imports/{id}/mapping/",
        "/api/v1/imports/{id}/progress/",
        "/api/v1/imports/{id}/cancel/",
    ):
        assert path in paths, path
    segment = schema["components"]["schemas"]["Segment"]["properties"]
    assert "count" in segment and "reachable" in segment
    create = paths["/api/v1/imports/"]["post"]["requestBody"]["content"]
    fields = create["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"file", "list", "mode", "mapping", "review"} <= set(
        schema["components"]["schemas"][fields]["properties"]
    )
    progress = paths["/api/v1/imports/{id}/progress/"]["get"]["responses"]["200"]
    assert "ContactImportProgress" in str(progress)


def test_create_with_the_update_left_policy_keeps_them_unsubscribed(
    api_client, django_capture_on_commit_callbacks
):
    news = MailingListFactory()
    gone = ContactFactory(
        email="gone@example.com",
        first_name="Old",
        attributes={"city": "Lisbon"},
        status=Contact.Status.UNSUBSCRIBED,
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            IMPORTS,
            {
                "list": news.pk,
                "file": _upload(),
                "left_policy": "update",
                "mapping": '{"Given": "first_name", "Town": "ignore", "Score": "ignore"}',
            },
            format="multipart",
        )

    assert response.status_code == 201, response.json()
    result = api_client.get(f"{IMPORTS}{response.json()['id']}/").json()
    assert result["left_policy"] == "update"
    assert (result["created"], result["updated"], result["refused"]) == (1, 1, 1)
    assert result["skipped_rows"] == [
        {
            "row": 4,
            "email": "gone@example.com",
            "reason": "unsubscribed, bounced or complained before: details updated, "
            "kept unsubscribed",
            "updated": True,
        }
    ]
    gone.refresh_from_db()
    assert (gone.first_name, gone.attributes) == ("G", {"city": "Lisbon"})
    assert gone.status == Contact.Status.UNSUBSCRIBED
    assert not gone.subscriptions.exists()


def test_create_defaults_to_skip_and_refuses_an_unknown_policy(api_client):
    news = MailingListFactory()
    bad = api_client.post(
        IMPORTS,
        {"list": news.pk, "file": _upload(), "left_policy": "resubscribe"},
        format="multipart",
    )
    assert bad.status_code == 400 and "left_policy" in bad.json()["errors"]

    created = api_client.post(
        IMPORTS, {"list": news.pk, "file": _upload(), "review": "true"}, format="multipart"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["left_policy"] == "skip"


def test_mapping_sets_the_left_policy_or_keeps_the_one_given_at_creation(
    api_client, django_capture_on_commit_callbacks
):
    news = MailingListFactory()
    ContactFactory(email="gone@example.com", status=Contact.Status.UNSUBSCRIBED)
    first = api_client.post(
        IMPORTS, {"list": news.pk, "file": _upload(), "review": "true"}, format="multipart"
    ).json()["id"]
    second = api_client.post(
        IMPORTS,
        {"list": news.pk, "file": _upload(), "review": "true", "left_policy": "update"},
        format="multipart",
    ).json()["id"]

    refused = api_client.post(
        f"{IMPORTS}{first}/mapping/", {"left_policy": "resubscribe"}, format="json"
    )
    assert refused.status_code == 400 and "is not a valid choice" in str(refused.json())
    with django_capture_on_commit_callbacks(execute=True):
        mapped = api_client.post(
            f"{IMPORTS}{first}/mapping/", {"left_policy": "update"}, format="json"
        )
        kept = api_client.post(f"{IMPORTS}{second}/mapping/", {}, format="json")

    assert mapped.status_code == 200, mapped.json()
    assert mapped.json()["left_policy"] == "update"
    assert kept.json()["left_policy"] == "update"
    assert ContactImport.objects.get(pk=first).updated == 1
    assert Contact.objects.get(email="gone@example.com").status == Contact.Status.UNSUBSCRIBED


def test_schema_documents_the_left_policy(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]
    create = components["ContactImportCreate"]["properties"]["left_policy"]
    assert create["default"] == "skip"
    assert "they stay unsubscribed" in create["description"]
    assert "left_policy" in components["ContactImportConfirm"]["properties"]
    assert "left_policy" in components["ContactImportDetail"]["properties"]
    assert components["LeftPolicyEnum"]["enum"] == ["skip", "update"]
