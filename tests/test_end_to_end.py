"""The foundation's story in one test, on the default stack (SQLite, tasks inline): a CSV
in, a personalised campaign out through a real SMTP server on loopback, opens, clicks and
an unsubscribe back in against the live server, and a report that matches."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns import services
from campaigns.models import Campaign
from contacts.models import ContactImport, MailingList
from contacts.services import contact_import_create
from tests import flow
from tests.factories import CampaignFactory

CSV = (
    "\ufeffEmail;First Name;Last Name;City\r\n"
    "ann@example.org;Ann;Lee;Porto\r\n"
    'BOB@Example.ORG;Bob;;"Rio; de Janeiro"\r\n'
    "carl@example.org;;Smith;Oslo\r\n"
    "not-an-address;Bad;Row;Nowhere\r\n"
    "ann@EXAMPLE.org;Ann;Lee;Porto\r\n"
)

EXPECTED = {
    "ann@example.org": {"first_name": "Ann", "city": "Porto"},
    "BOB@example.org": {"first_name": "Bob", "city": "Rio; de Janeiro"},
    "carl@example.org": {"first_name": "", "city": "Oslo"},
}


@pytest.mark.django_db(transaction=True)
def test_csv_to_report_through_a_real_smtp_server(live_server, smtp_sender, settings):
    settings.BASE_URL = live_server.url
    mailing_list = MailingList.objects.create(name="Customers")
    upload = SimpleUploadedFile("export.csv", CSV.encode("utf-8"), content_type="text/csv")
    contact_import = contact_import_create(mailing_list, upload)
    contact_import.refresh_from_db()
    assert contact_import.status == ContactImport.Status.DONE, contact_import.error
    assert contact_import.created == 3
    assert contact_import.refused == 1
    assert contact_import.refused_rows[0]["email"] == "not-an-address"

    campaign = CampaignFactory(
        lists=[mailing_list],
        subject="Hi {{ contact.first_name|default:'friend' }}",
        html=(
            "<html><body><p>Hi {{ contact.first_name|default:'friend' }} in "
            "{{ contact.attributes.City }}</p>"
            '<p><a href="https://example.com/offer">Offer</a></p>'
            '<p><a href="https://example.com/blog">Blog</a></p>'
            '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
        ),
    )
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT

    by_rcpt = flow.check_messages(smtp_sender.received, EXPECTED)
    expected = flow.follow_links(campaign, by_rcpt, live_server.url, "carl@example.org")
    flow.check_report(campaign, expected, recipients=3)

    # the unsubscribed contact is left out of the next campaign
    second = CampaignFactory(lists=[mailing_list])
    services.campaign_start(second.pk)
    second.refresh_from_db()
    assert second.recipients_count == 2
