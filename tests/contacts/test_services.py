from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from contacts import services
from contacts.models import Contact, ContactImport, MailingList, Subscription
from tests.factories import ContactFactory, MailingListFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


def test_mailing_list_names_are_unique_ignoring_case():
    services.mailing_list_create(name="News")

    with pytest.raises(ValidationError) as info:
        services.mailing_list_create(name=" NEWS ")

    assert "already exists" in info.value.message_dict["name"][0]


def test_mailing_list_update_may_keep_its_own_name():
    news = services.mailing_list_create(name="News")

    services.mailing_list_update(news, name="news", description="Weekly")

    news.refresh_from_db()
    assert (news.name, news.description) == ("news", "Weekly")


def test_mailing_list_delete_keeps_contacts_and_removes_import_files(
    django_capture_on_commit_callbacks,
):
    news = MailingListFactory()
    SubscriptionFactory(mailing_list=news)
    item = ContactImport(mailing_list=news)
    item.file.save("x.csv", ContentFile(b"email\n"))
    storage, name = item.file.storage, item.file.name

    with django_capture_on_commit_callbacks(execute=True):
        services.mailing_list_delete(news)

    assert not MailingList.objects.exists()
    assert not Subscription.objects.exists()
    assert Contact.objects.count() == 1
    assert not storage.exists(name)


def test_contact_create_normalises_and_refuses_duplicates():
    news = MailingListFactory()
    ann = services.contact_create(email="Ann@EXAMPLE.com", first_name="Ann", lists=[news])

    with pytest.raises(ValidationError) as info:
        services.contact_create(email="ann@example.com")

    assert ann.email == "Ann@example.com"
    assert list(ann.lists.all()) == [news]
    assert "already exists" in info.value.message_dict["email"][0]


def test_contact_update_lists_keeps_ended_subscriptions():
    news, offers, weekly = MailingListFactory.create_batch(3)
    ann = ContactFactory()
    SubscriptionFactory(contact=ann, mailing_list=news)
    SubscriptionFactory(contact=ann, mailing_list=offers, status=Subscription.Status.UNSUBSCRIBED)

    services.contact_update(ann, lists=[weekly])

    statuses = dict(Subscription.objects.filter(contact=ann).values_list("mailing_list", "status"))
    assert statuses == {offers.pk: "unsubscribed", weekly.pk: "subscribed"}


def test_contact_update_refuses_reactivation_but_allows_suppression():
    ann = ContactFactory()

    services.contact_update(ann, status=Contact.Status.COMPLAINED)
    with pytest.raises(ValidationError):
        services.contact_update(ann, status=Contact.Status.ACTIVE)

    ann.refresh_from_db()
    assert ann.status == Contact.Status.COMPLAINED


def test_contact_import_task_runs_the_service(mailing_list):
    from contacts.tasks import contact_import_run_task

    item = ContactImport(mailing_list=mailing_list)
    item.file.save("x.csv", ContentFile(b"email\nann@example.com\n"))

    contact_import_run_task.delay(item.pk)

    item.refresh_from_db()
    assert item.status == ContactImport.Status.DONE
    assert item.created == 1
