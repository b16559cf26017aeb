from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from campaigns.selectors import campaign_audience
from contacts import services
from contacts.models import Consent, Contact, SignupForm, Subscription, Suppression
from contacts.services import fields as fields_service
from contacts.services import signup as signup_service
from contacts.services import suppression as suppression_service
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory

CONSENT = "I agree to receive the newsletter."


@pytest.fixture
def news(db):
    return MailingListFactory(name="News")


@pytest.fixture
def doi_form(news, settings):
    settings.BASE_URL = "https://mail.example.com"
    fields_service.custom_field_create(key="age", label="Age", type="number")
    return signup_service.signup_form_save(
        None,
        name="Footer",
        lists=[news],
        fields=["first_name", "age"],
        consent_text=CONSENT,
        double_opt_in=True,
    )


def submit(form, client=None, **data):
    client = client or Client(enforce_csrf_checks=True)  # embedded forms carry no token
    payload = {"email": "new@example.com", "consent": "1", **data}
    return client.post(
        reverse("contacts:signup", args=[form.key]),
        payload,
        REMOTE_ADDR=data.pop("ip", "203.0.113.5"),
        HTTP_USER_AGENT="Browser/1.0",
    )


def confirm_link(message) -> str:
    return re.search(r"https://mail\.example\.com(/contacts/confirm/\S+/)", message.body).group(1)


def test_double_opt_in_end_to_end(doi_form, news, django_capture_on_commit_callbacks):
    page = Client().get(reverse("contacts:signup", args=[doi_form.key]))
    assert page.status_code == 200 and CONSENT in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(doi_form, first_name="Ann", age="41")
    assert response.status_code == 200
    assert "Check your mailbox" in response.content.decode()
    contact = Contact.objects.get()
    assert contact.status == Contact.Status.UNCONFIRMED
    assert contact.attributes == {"age": 41} and contact.first_name == "Ann"
    assert Subscription.objects.get().status == Subscription.Status.UNCONFIRMED

    consent = Consent.objects.get()
    assert (consent.form_name, consent.text, consent.ip) == ("Footer", CONSENT, "203.0.113.5")
    assert consent.list_ids == [news.pk] and consent.confirmed_at is None
    assert consent.user_agent == "Browser/1.0"

    # Unconfirmed: in no audience, whether by list or by segment.
    campaign = CampaignFactory(lists=[news])
    everyone = services.segment_create(name="All", rules={})
    services.campaign_audience_set(campaign, segments=[everyone])
    assert not campaign_audience(campaign).exists()

    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@example.com"]
    link = confirm_link(mail.outbox[0])
    client = Client()
    assert "Yes, subscribe me" in client.get(link).content.decode()  # GET does not confirm
    assert Contact.objects.get().status == Contact.Status.UNCONFIRMED
    assert "You are subscribed" in client.post(link).content.decode()
    assert Contact.objects.get().status == Contact.Status.ACTIVE
    assert Subscription.objects.get().status == Subscription.Status.SUBSCRIBED
    assert Consent.objects.get().confirmed_at is not None
    assert list(campaign_audience(campaign)) == [contact]
    client.post(link)  # twice: nothing changes
    assert Consent.objects.count() == 1


def test_forged_confirmation_is_404(db):
    response = Client().post(reverse("contacts:signup-confirm", args=["1:abc:def"]))
    assert response.status_code == 404


def test_confirmation_mail_at_most_once_an_hour(doi_form, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        submit(doi_form)
        submit(doi_form)
        submit(doi_form, email="NEW@example.com")
    assert len(mail.outbox) == 1
    assert Consent.objects.count() == 3


def test_honeypot_does_nothing_but_looks_fine(doi_form):
    response = submit(doi_form, website="http://spam.example")
    assert response.status_code == 200 and "Check your mailbox" in response.content.decode()
    assert not Contact.objects.exists()


def test_rate_limits_per_ip_and_per_address(doi_form, settings):
    settings.MAILCENTER_SIGNUP_LIMIT_PER_IP = 3
    settings.MAILCENTER_SIGNUP_LIMIT_PER_ADDRESS = 2
    assert submit(doi_form, email="a@example.com").status_code == 200
    assert submit(doi_form, email="a@example.com").status_code == 200
    limited = submit(doi_form, email="a@example.com")
    assert limited.status_code == 429 and "try again in an hour" in limited.content.decode()
    # Another address from another IP is fine; a fourth sign-up from the first IP is not.
    assert submit(doi_form, email="b@example.com", ip="198.51.100.1").status_code == 200
    assert submit(doi_form, email="c@example.com").status_code == 429


def test_bad_input_is_explained(doi_form):
    response = submit(doi_form, email="nope", age="old", consent="")
    assert response.status_code == 400
    body = response.content.decode()
    assert "is not a valid email address" in body
    assert "“Age” must be a number." in body
    assert "Please tick the box" in body
    assert not Contact.objects.exists()


def test_strangers_cannot_change_or_bring_back_anyone(news, doi_form, settings):
    ann = ContactFactory(email="ann@example.com", first_name="Ann", attributes={})
    Subscription.objects.create(contact=ann, mailing_list=news)
    submit(doi_form, email="ann@example.com", first_name="Mallory", age="3")
    ann.refresh_from_db()
    assert ann.first_name == "Ann" and ann.attributes == {"age": 3}  # empty ones filled only
    assert Subscription.objects.get(contact=ann).status == Subscription.Status.SUBSCRIBED

    ContactFactory(email="gone@example.com", status=Contact.Status.BOUNCED)
    suppression_service.suppression_add("blocked.org")
    submit(doi_form, email="gone@example.com")
    submit(doi_form, email="x@blocked.org")
    assert not Contact.objects.filter(email="x@blocked.org").exists()
    assert Consent.objects.filter(contact__email="gone@example.com").count() == 0


def test_unsubscribed_come_back_only_by_confirming(
    news, doi_form, django_capture_on_commit_callbacks
):
    single = signup_service.signup_form_save(None, name="Single", lists=[news], double_opt_in=False)
    bob = ContactFactory(email="bob@example.com", status=Contact.Status.UNSUBSCRIBED)
    Subscription.objects.create(
        contact=bob, mailing_list=news, status=Subscription.Status.UNSUBSCRIBED
    )
    suppression_service.suppression_add("bob@example.com", "unsubscribe")
    submit(single, email="bob@example.com")
    bob.refresh_from_db()
    assert bob.status == Contact.Status.UNSUBSCRIBED

    with django_capture_on_commit_callbacks(execute=True):
        submit(doi_form, email="bob@example.com")
    Client().post(confirm_link(mail.outbox[0]))
    bob.refresh_from_db()
    assert bob.status == Contact.Status.ACTIVE
    assert Subscription.objects.get(contact=bob).status == Subscription.Status.SUBSCRIBED
    assert not Suppression.objects.exists()


def test_single_opt_in_subscribes_at_once(news):
    form = signup_service.signup_form_save(None, name="Quick", lists=[news], double_opt_in=False)
    submit(form, email="q@example.com")
    assert Contact.objects.get().status == Contact.Status.ACTIVE
    assert Subscription.objects.get().status == Subscription.Status.SUBSCRIBED
    assert Consent.objects.get().confirmed_at is not None
    assert not mail.outbox


def test_marketer_pages_and_snippet(auth_client, news, db):
    fields_service.custom_field_create(key="city", label="City")
    bad = auth_client.post(reverse("contacts:signup-form-create"), {"name": "X"})
    assert bad.status_code == 400 and "This field is required." in bad.content.decode()
    auth_client.post(
        reverse("contacts:signup-form-create"),
        {
            "name": "Footer",
            "lists": [news.pk],
            "fields": ["first_name", "city"],
            "consent_text": CONSENT,
            "double_opt_in": "on",
        },
    )
    form = SignupForm.objects.get()
    assert form.fields == ["first_name", "city"] and form.double_opt_in
    page = auth_client.get(reverse("contacts:signup-form-edit", args=[form.pk])).content.decode()
    action = reverse("contacts:signup", args=[form.key])
    assert f'action="http://testserver{action}"' not in page  # BASE_URL, not the request
    assert action in page and "name=&quot;website&quot;" in page and "name=&quot;city&quot;" in page
    auth_client.post(reverse("contacts:signup-form-delete", args=[form.pk]))
    assert not SignupForm.objects.exists()
