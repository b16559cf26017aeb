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
