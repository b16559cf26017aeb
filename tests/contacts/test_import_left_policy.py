"""What an import does with contacts who unsubscribed, bounced or complained before.

*skip* (the default) leaves them as they are; *update* updates their details like any
known contact's under the mode. In no mode and under no policy is anyone subscribed again:
their status stays, no subscription is added, an ended one stays ended.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.models import Contact, ContactImport, Subscription, Suppression
from tests.contacts.helpers import confirm_mapping
from tests.factories import MailingListFactory

pytestmark = pytest.mark.django_db

CSV = (
    "email,first_name,city\n"
    "known@example.com,New,Riga\n"
    "fresh@example.com,Fresh,Oslo\n"
    "Gone@example.com,Back,Rome\n"
    "bounced@example.com,Same,\n"
    "blocked@example.com,Blocked,Nice\n"
    "bad\n"
)
PATHS = pytest.mark.parametrize("copy_min_rows", [10**9, 0], ids=["batch-path", "copy-path"])
Mode, Policy = ContactImport.Mode, ContactImport.LeftPolicy

LEFT = "unsubscribed, bounced or complained before: not subscribed again"
LEFT_UPDATED = "unsubscribed, bounced or complained before: details updated, kept unsubscribed"
LEFT_UNCHANGED = "unsubscribed, bounced or complained before: nothing to update, kept unsubscribed"
NOT_EXISTING = "not an existing contact (update only)"

# (policy, mode) → (created, updated, skipped, refused), gone's details, skipped rows.
GONE_BEFORE = ("Gone", {"city": "Paris"})
GONE_AFTER = ("Back", {"city": "Rome"})
EXPECTED = {
    (Policy.SKIP, Mode.ADD_UPDATE): (
        (1, 1, 2, 2),
        GONE_BEFORE,
        [(4, LEFT, False), (5, LEFT, False)],
    ),
    (Policy.SKIP, Mode.ADD_ONLY): ((1, 1, 2, 2), GONE_BEFORE, [(4, LEFT, False), (5, LEFT, False)]),
    (Policy.SKIP, Mode.UPDATE_ONLY): (
        (0, 1, 3, 2),
        GONE_BEFORE,
        [(3, NOT_EXISTING, False), (4, LEFT, False), (5, LEFT, False)],
    ),
    (Policy.UPDATE, Mode.ADD_UPDATE): (
        (1, 2, 1, 2),
        GONE_AFTER,
        [(4, LEFT_UPDATED, True), (5, LEFT_UNCHANGED, False)],
    ),
    # Add only updates nobody's details, so there is nothing to update for them either.
    (Policy.UPDATE, Mode.ADD_ONLY): (
        (1, 1, 2, 2),
        GONE_BEFORE,
        [(4, LEFT_UNCHANGED, False), (5, LEFT_UNCHANGED, False)],
    ),
    (Policy.UPDATE, Mode.UPDATE_ONLY): (
        (0, 2, 2, 2),
        GONE_AFTER,
        [(3, NOT_EXISTING, False), (4, LEFT_UPDATED, True), (5, LEFT_UNCHANGED, False)],
    ),
}


@pytest.fixture
def people(mailing_list):
    """A known active contact, and three who left: one who unsubscribed from this very
    list, one who bounced and whose row changes nothing, one who is also suppressed."""
    known = Contact.objects.create(email="known@example.com", first_name="Old")
    gone = Contact.objects.create(
        email="gone@example.com",
        first_name="Gone",
        attributes={"city": "Paris"},
        status=Contact.Status.UNSUBSCRIBED,
    )
    Subscription.objects.create(
        contact=gone, mailing_list=mailing_list, status=Subscription.Status.UNSUBSCRIBED
    )
    bounced = Contact.objects.create(
        email="bounced@example.com", first_name="Same", status=Contact.Status.BOUNCED
    )
    blocked = Contact.objects.create(
        email="blocked@example.com", first_name="Blocked", status=Contact.Status.COMPLAINED
    )
    Suppression.objects.create(kind=Suppression.Kind.EMAIL, value="blocked@example.com")
    return known, gone, bounced, blocked


def _subscriptions(*contacts: Contact) -> list[tuple[str, int, str]]:
    return sorted(
        Subscription.objects.filter(contact__in=contacts).values_list(
            "contact__email", "mailing_list_id", "status"
        )
    )


@PATHS
@pytest.mark.parametrize("mode", Mode.values)
@pytest.mark.parametrize("policy", Policy.values)
def test_people_who_left_are_never_subscribed_again(
    settings, run_import, mailing_list, people, copy_min_rows, mode, policy
):
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = copy_min_rows
    known, gone, bounced, blocked = people
    subscriptions_before = _subscriptions(gone, bounced, blocked)

    item = run_import(CSV, mode=mode, left_policy=policy)

    assert item.status == ContactImport.Status.DONE, item.error
    counts, gone_details, skipped = EXPECTED[(policy, mode)]
    assert (item.created, item.updated, item.skipped, item.refused) == counts
    assert [(r["row"], r["reason"], r.get("updated", False)) for r in item.skipped_rows] == (
        skipped
    )
    assert sorted((r["row"], r["reason"]) for r in item.refused_rows) == [
        (6, "suppressed"),
        (7, "“bad” is not a valid email address."),
    ]
    for contact in (gone, bounced, blocked):
        before = contact.status
        contact.refresh_from_db()
        assert contact.status == before
    assert (gone.first_name, gone.attributes) == gone_details
    assert (bounced.first_name, bounced.attributes) == ("Same", {})
    assert (blocked.first_name, blocked.attributes) == ("Blocked", {})
    # No new subscription, and the one gone ended stays ended.
    assert _subscriptions(gone, bounced, blocked) == subscriptions_before
    assert subscriptions_before == [
        ("gone@example.com", mailing_list.pk, Subscription.Status.UNSUBSCRIBED)
    ]
    # Active contacts still join the list in every combination.
    assert mailing_list.subscriptions.filter(
        contact=known, status=Subscription.Status.SUBSCRIBED
    ).exists()


@PATHS
def test_update_policy_counts_only_real_changes(settings, run_import, people, copy_min_rows):
    """The same file twice: the second time the people who left have nothing to change."""
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = copy_min_rows
    run_import(CSV, left_policy=Policy.UPDATE)

    again = run_import(CSV, left_policy=Policy.UPDATE)

    assert (again.created, again.updated, again.skipped, again.refused) == (0, 0, 4, 2)
    assert [(r["row"], r["reason"]) for r in again.skipped_rows] == [
        (4, LEFT_UNCHANGED),
        (5, LEFT_UNCHANGED),
    ]
    assert Contact.objects.get(email="gone@example.com").status == Contact.Status.UNSUBSCRIBED


def test_the_default_policy_is_skip(mailing_list):
    assert ContactImport(mailing_list=mailing_list).left_policy == Policy.SKIP


def _upload(auth_client, news):
    return auth_client.post(
        reverse("contacts:import"),
        {
            "mailing_list": news.pk,
            "file": SimpleUploadedFile("c.csv", CSV.encode(), content_type="text/csv"),
        },
    )


def test_mapping_page_offers_the_policy_and_the_summary_shows_it(
    auth_client, people, django_capture_on_commit_callbacks
):
    news = MailingListFactory()
    uploaded = _upload(auth_client, news)
    html = auth_client.get(uploaded["Location"]).content.decode()
    assert "Contacts who unsubscribed before" in html
    assert "Skip them" in html and "Update their details, keep them unsubscribed" in html
    assert '<input type="radio" name="left_policy" value="skip"' in html
    skip_radio = html[html.index('name="left_policy" value="skip"') :].split(">", 1)[0]
    assert "checked" in skip_radio

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_mapping(auth_client, uploaded, left_policy="update")

    item = ContactImport.objects.get()
    assert item.left_policy == Policy.UPDATE
    assert item.status == ContactImport.Status.DONE, item.error
    gone = Contact.objects.get(email="gone@example.com")
    assert (gone.first_name, gone.status) == ("Back", Contact.Status.UNSUBSCRIBED)
    assert not news.subscriptions.filter(contact=gone).exists()

    detail = auth_client.get(response["Location"]).content.decode()
    assert (
        "contacts who unsubscribed before: Update their details, keep them unsubscribed"
    ) in detail
    assert "Rows not subscribed, with the reason" in detail
    assert "updated: " + LEFT_UPDATED in detail
    download = auth_client.get(reverse("contacts:import-refused-csv", args=[item.pk]))
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert ["4", "Gone@example.com", f"updated: {LEFT_UPDATED}"] in rows
    assert ["5", "bounced@example.com", f"skipped: {LEFT_UNCHANGED}"] in rows


def test_mapping_page_without_a_choice_skips(
    auth_client, people, django_capture_on_commit_callbacks
):
    news = MailingListFactory()
    uploaded = _upload(auth_client, news)
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_mapping(auth_client, uploaded, left_policy="")

    item = ContactImport.objects.get()
    assert item.left_policy == Policy.SKIP
    assert Contact.objects.get(email="gone@example.com").first_name == "Gone"
    detail = auth_client.get(response["Location"]).content.decode()
    assert "contacts who unsubscribed before: Skip them" in detail
    assert "Skipped rows with a reason" in detail


def test_mapping_page_refuses_an_unknown_policy(auth_client, people):
    news = MailingListFactory()
    uploaded = _upload(auth_client, news)

    response = confirm_mapping(auth_client, uploaded, left_policy="resubscribe")

    assert response.status_code == 400
    assert "left_policy" in response.context["form"].errors
    assert ContactImport.objects.get().status == ContactImport.Status.MAPPING
