from __future__ import annotations

import pytest
import tablib
from django.urls import reverse

from contacts.admin import ContactResource
from contacts.models import Contact
from tests.factories import ContactFactory, MailingListFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", ["mailinglist", "contact", "subscription", "contactimport"])
def test_admin_changelists_render(auth_client, model):
    SubscriptionFactory(mailing_list=MailingListFactory())

    response = auth_client.get(reverse(f"admin:contacts_{model}_changelist"), {"q": "x"})

    assert response.status_code == 200


def test_contact_admin_filters_by_status_and_exports(auth_client):
    ContactFactory(status=Contact.Status.BOUNCED)

    response = auth_client.get(reverse("admin:contacts_contact_changelist"), {"status": "bounced"})

    assert response.status_code == 200
    assert reverse("admin:contacts_contact_export") in response.content.decode()


def test_contact_resource_matches_addresses_ignoring_case():
    ann = ContactFactory(email="ann@example.com", first_name="Ann")
    dataset = tablib.Dataset(headers=["email", "first_name", "last_name", "status", "attributes"])
    dataset.append(["ANN@Example.com", "Anna", "Lee", "active", '{"city": "Riga"}'])
    dataset.append(["new@Example.COM", "New", "", "active", "{}"])

    result = ContactResource().import_data(dataset, dry_run=False)

    assert not result.has_errors()
    assert not result.has_validation_errors()
    ann.refresh_from_db()
    assert (ann.first_name, ann.attributes) == ("Anna", {"city": "Riga"})
    assert Contact.objects.get(first_name="New").email == "new@example.com"


def test_contact_resource_reports_invalid_addresses():
    dataset = tablib.Dataset(headers=["email", "first_name"])
    dataset.append(["nope", "X"])

    result = ContactResource().import_data(dataset, dry_run=True)

    assert result.has_errors()
    assert not Contact.objects.exists()


def _import(rows: list[list[str]], dry_run: bool = False):
    dataset = tablib.Dataset(headers=["email", "first_name", "last_name", "status", "attributes"])
    for row in rows:
        dataset.append(row)
    return ContactResource().import_data(dataset, dry_run=dry_run)


def _row_errors(result) -> list[str]:
    return [str(error.error) for _number, errors in result.row_errors() for error in errors]


def test_contact_resource_never_makes_someone_who_left_active_again():
    gone = ContactFactory(email="gone@example.com", status=Contact.Status.UNSUBSCRIBED)

    result = _import([["Gone@example.com", "G", "", "active", "{}"]])

    assert "cannot be made active again by an import" in " ".join(_row_errors(result))
    gone.refresh_from_db()
    assert gone.status == Contact.Status.UNSUBSCRIBED


def test_contact_resource_refuses_suppressed_addresses_and_bad_typed_values():
    from contacts.services.fields import custom_field_create
    from contacts.services.suppression import suppression_add

    suppression_add("blocked.example")
    custom_field_create(key="age", label="Age", type="number")

    result = _import(
        [
            ["x@Blocked.example", "X", "", "active", "{}"],
            ["ann@example.com", "Ann", "", "active", '{"age": "forty"}'],
            ["bob@example.com", "Bob", "", "active", '{"age": "41"}'],
            ["cy@example.com", "Cy", "", "resubscribed", "{}"],
        ]
    )

    errors = " ".join(_row_errors(result))
    assert "x@blocked.example is on the suppression list" in errors
    assert "must be a number" in errors
    assert "Unknown status “resubscribed”" in errors
    # import_data rolls the whole file back on a row error: fix the file, import again.
    assert not Contact.objects.exists()
    assert not _import([["bob@example.com", "Bob", "", "active", '{"age": "41"}']]).has_errors()
    assert Contact.objects.get().attributes == {"age": 41}


def test_contact_resource_exports_what_it_imports():
    ContactFactory(email="ann@example.com", first_name="Ann", attributes={"city": "Riga"})

    exported = ContactResource().export()

    assert exported.headers == ["id", "email", "first_name", "last_name", "status", "attributes"]
    row = dict(zip(exported.headers, exported[0], strict=True))
    assert (row["email"], row["status"]) == ("ann@example.com", "active")
    assert '"city": "Riga"' in row["attributes"]


def test_admin_form_does_not_make_someone_who_left_active_again(auth_client, django_user_model):
    django_user_model.objects.filter(pk=auth_client.session["_auth_user_id"]).update(
        is_staff=True, is_superuser=True
    )
    gone = ContactFactory(email="gone@example.com", status=Contact.Status.BOUNCED)

    response = auth_client.post(
        reverse("admin:contacts_contact_change", args=[gone.pk]),
        {
            "email": "gone@example.com",
            "first_name": "G",
            "last_name": "",
            "attributes": "{}",
            "status": "active",
            "subscriptions-TOTAL_FORMS": "0",
            "subscriptions-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "they can only subscribe again themselves" in response.content.decode()
    gone.refresh_from_db()
    assert gone.status == Contact.Status.BOUNCED


def test_admin_import_page_previews_a_file(auth_client, django_user_model):
    from django.core.files.uploadedfile import SimpleUploadedFile

    django_user_model.objects.filter(pk=auth_client.session["_auth_user_id"]).update(
        is_staff=True, is_superuser=True
    )
    upload = SimpleUploadedFile(
        "contacts.csv",
        b"email,first_name,last_name,status,attributes\nANN@Example.COM,Ann,,active,{}\n",
        content_type="text/csv",
    )

    response = auth_client.post(
        reverse("admin:contacts_contact_import"),
        {"import_file": upload, "format": "0", "resource": "0"},
    )

    assert response.status_code == 200
    html = response.content.decode()
    # Normalised in the preview (the domain lower-cased), then a confirm step.
    assert "ANN@example.com" in html and "Confirm import" in html
    assert not Contact.objects.exists()  # the preview is a dry run
