from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from contacts import services
from contacts.models import Contact, CustomField
from contacts.services import fields as fields_service
from tests.factories import ContactFactory


@pytest.fixture
def typed_fields(db) -> dict[str, CustomField]:
    create = fields_service.custom_field_create
    return {
        "age": create(key="age", label="Age", type="number"),
        "born": create(key="born", label="Birthday", type="date"),
        "vip": create(key="vip", label="VIP", type="boolean"),
        "plan": create(key="plan", label="Plan", type="choice", options=["Free", "Pro"]),
        "city": create(key="city", label="City", type="text"),
    }


@pytest.mark.parametrize(
    ("field", "raw", "stored"),
    [
        ("age", "42", 42),
        ("age", "007", 7),
        ("age", "-0", 0),
        ("age", "123456789012345", 123456789012345),
        ("age", "12345678901234567", 12345678901234567.0),
        ("age", "٤٢", 42),
        ("age", "1,5", 1.5),
        ("age", 3.0, 3),
        ("age", " 1 000 ", 1000),
        ("born", "2024-05-31", "2024-05-31"),
        ("born", "31.05.2024", "2024-05-31"),
        ("born", "2024-05-31T10:00:00Z", "2024-05-31"),
        ("vip", "yes", True),
        ("vip", "0", False),
        ("vip", True, True),
        ("plan", "pro", "Pro"),
        ("city", "  Lisbon ", "Lisbon"),
        ("city", "", None),
        ("age", None, None),
    ],
)
def test_values_are_typed(typed_fields, field, raw, stored):
    assert fields_service.custom_value_clean(typed_fields[field], raw) == stored


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("age", "forty"),
        ("age", "nan"),
        ("age", True),
        ("born", "05/31/2024"),
        ("born", "2024-02-30"),
        ("vip", "maybe"),
        ("plan", "Gold"),
        ("city", "x" * 1001),
        ("city", {"a": 1}),
    ],
)
def test_bad_values_are_refused_with_the_field_named(typed_fields, field, raw):
    with pytest.raises(ValidationError) as exc:
        fields_service.custom_value_clean(typed_fields[field], raw)
    assert typed_fields[field].label in exc.value.messages[0]


def test_field_definitions_are_checked(db):
    with pytest.raises(ValidationError, match="lower-case"):
        fields_service.custom_field_create(key="Bad Key", label="x")
    with pytest.raises(ValidationError, match="at least one option"):
        fields_service.custom_field_create(key="plan", label="Plan", type="choice")
    with pytest.raises(ValidationError, match="type must be"):
        fields_service.custom_field_create(key="plan", label="Plan", type="colour")
    fields_service.custom_field_create(key="plan", label="Plan")
    with pytest.raises(ValidationError, match="exists already"):
        fields_service.custom_field_create(key="plan", label="Other")
    field = CustomField.objects.get(key="plan")
    with pytest.raises(ValidationError, match="cannot change"):
        fields_service.custom_field_update(field, key="other")


def test_contact_service_types_attributes_and_keeps_other_keys(typed_fields):
    contact = services.contact_create(
        email="a@example.com", attributes={"age": "7", "vip": "no", "free": "text", "city": ""}
    )
    assert contact.attributes == {"age": 7, "vip": False, "free": "text"}
    with pytest.raises(ValidationError) as exc:
        services.contact_update(contact, attributes={"age": "old", "plan": "Gold"})
    assert len(exc.value.message_dict["attributes"]) == 2


def test_import_types_columns_and_refuses_bad_values(typed_fields, run_import):
    item = run_import(
        "email,Age,Birthday,VIP,plan,Notes\n"
        "a@example.com,30,2000-01-02,yes,Pro,hello\n"
        "b@example.com,thirty,,,,\n"
        "c@example.com,,31.12.1999,,gold,\n"
    )
    assert (item.created, item.refused) == (1, 2)
    assert [r["reason"] for r in item.refused_rows] == ["bad value for age", "bad value for plan"]
    assert Contact.objects.get().attributes == {
        "age": 30,
        "born": "2000-01-02",
        "vip": True,
        "plan": "Pro",
        "Notes": "hello",
    }


def test_contact_form_has_an_input_per_field(auth_client, typed_fields):
    contact = ContactFactory(attributes={"age": 5, "vip": True, "other": "x"})
    url = reverse("contacts:detail", args=[contact.pk])
    page = auth_client.get(url).content.decode()
    assert 'name="cf_age"' in page and 'value="5"' in page
    assert 'name="cf_born"' in page and 'type="date"' in page

    bad = auth_client.post(url, {"cf_age": "many", "attributes": '{"other": "x"}'})
    assert bad.status_code == 400
    assert "“Age” must be a number." in bad.content.decode()

    auth_client.post(
        url,
        {"cf_age": "6", "cf_vip": "false", "cf_plan": "Free", "attributes": '{"other": "y"}'},
    )
    contact.refresh_from_db()
    assert contact.attributes == {"age": 6, "vip": False, "plan": "Free", "other": "y"}


def test_fields_page_creates_edits_and_deletes(auth_client, db):
    url = reverse("contacts:fields")
    assert auth_client.get(reverse("settings:index")).content.decode().count(url) == 1
    bad = auth_client.post(url, {"label": "Plan", "key": "plan", "type": "choice"})
    assert bad.status_code == 400
    assert "at least one option" in bad.content.decode()
    auth_client.post(url, {"label": "Plan", "key": "plan", "type": "choice", "options": "A\nB"})
    field = CustomField.objects.get()
    assert field.options == ["A", "B"]
    auth_client.post(
        reverse("contacts:field-edit", args=[field.pk]),
        {"label": "Tier", "type": "choice", "options": "A\nB\nC", "key": "ignored"},
    )
    field.refresh_from_db()
    assert (field.key, field.label, field.options) == ("plan", "Tier", ["A", "B", "C"])
    auth_client.post(reverse("contacts:field-delete", args=[field.pk]))
    assert not CustomField.objects.exists()


def test_api_crud_and_typed_contact_attributes(api_client):
    response = api_client.post(
        "/api/v1/fields/", {"key": "score", "label": "Score", "type": "number"}, format="json"
    )
    assert response.status_code == 201, response.json()
    field_id = response.json()["id"]
    bad = api_client.post("/api/v1/fields/", {"key": "score", "label": "x"}, format="json")
    assert bad.status_code == 400 and "key" in bad.json()["errors"]

    contact = api_client.post(
        "/api/v1/contacts/",
        {"email": "x@example.com", "attributes": {"score": "12.5"}},
        format="json",
    )
    assert contact.status_code == 201 and contact.json()["attributes"] == {"score": 12.5}
    refused = api_client.post(
        "/api/v1/contacts/",
        {"email": "y@example.com", "attributes": {"score": "high"}},
        format="json",
    )
    assert refused.status_code == 400
    assert "“Score” must be a number." in str(refused.json())

    renamed = api_client.patch(f"/api/v1/fields/{field_id}/", {"label": "Points"}, format="json")
    assert renamed.json()["label"] == "Points"
    assert api_client.delete(f"/api/v1/fields/{field_id}/").status_code == 204
