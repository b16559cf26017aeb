"""ESP tracking webhooks through django-anymail: real payloads posted to the mounted
URLs with the Django test client (no login, CSRF enforced), signed or authenticated as
each ESP does it, recorded through the same services as mailed bounces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from anymail.backends.test import EmailBackend as AnymailTestBackend
from django.core import mail
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.models import Message
from contacts.models import Contact
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory
from tracking import tokens
from tracking.models import CampaignHourly, Event, InboundReceipt, LinkStat, MessageActivity

MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"
UNISENDER_KEY = "6g4h9djhg5j8k3nfpz1tohg8k2e9a5rd"
BASIC = "esp-hooks:correct horse battery"


class IdESP(AnymailTestBackend):
    """Anymail's test ESP answering with message ids shaped like Mailgun's."""

    def get_esp_message_id(self, message):
        return f"<{mail.outbox.index(message)}.{message.to[0]}@mg.esp.test>"


@pytest.fixture(autouse=True)
def _anymail(settings):
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": BASIC,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        "UNISENDER_GO_API_KEY": UNISENDER_KEY,
    }
    settings.MAILCENTER_SENDERS = {
        "default": {"BACKEND": "anymail", "OPTIONS": {"esp": f"{__name__}.IdESP"}}
    }
    settings.MAILCENTER_TRACKING_QUEUE = "direct"
    mail.outbox = []


@pytest.fixture
def sent(db, django_capture_on_commit_callbacks):
    """Four messages sent through the ESP: {local part: Message}."""
    mailing_list = MailingListFactory()
    for name in ("ann", "bob", "cat", "dan"):
        SubscriptionFactory(
            mailing_list=mailing_list, contact=ContactFactory(email=f"{name}@example.org")
        )
    campaign = CampaignFactory(lists=[mailing_list])
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    messages = {m.email.split("@")[0]: m for m in Message.objects.filter(campaign=campaign)}
    assert all(m.status == "sent" and m.esp_message_id for m in messages.values())
    return messages


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)


def auth(credentials: str = BASIC) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def contact_status(message: Message) -> str:
    return Contact.objects.get(pk=message.contact_id).status


def hourly(message: Message, field: str) -> int:
    total = CampaignHourly.objects.filter(campaign_id=message.campaign_id).aggregate(n=Sum(field))
    return total["n"] or 0


def soon(seconds: int = 60):
    return timezone.now() + timedelta(seconds=seconds)


# --- Mailgun: HMAC-signed JSON ----------------------------------------------------------


def mailgun(event_data: dict, *, token: str, key: str = MAILGUN_KEY) -> str:
    timestamp = str(int(timezone.now().timestamp()))
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return json.dumps(
        {
            "signature": {
                "timestamp": timestamp,
                "token": token,
                "signature": signature.hexdigest(),
            },
            "event-data": event_data,
        }
    )


def mailgun_failed(message: Message, *, severity: str = "permanent") -> dict:
    return {
        "id": "CPgfbmQMTCKtHW6uIWtuVe",
        "timestamp": soon().timestamp(),
        "log-level": "error",
        "event": "failed",
        "severity": severity,
        "reason": "bounce" if severity == "permanent" else "generic",
        "recipient": message.email,
        "message": {"headers": {"message-id": message.esp_message_id.strip("<>")}},
        "delivery-status": {
            "code": 550 if severity == "permanent" else 452,
            "message": (
                "5.1.1 The email account that you tried to reach does not exist."
                if severity == "permanent"
                else "4.2.2 The email account that you tried to reach is over quota."
            ),
            "description": "",
            "attempt-no": 1,
        },
    }


MAILGUN_URL = "/webhooks/anymail/mailgun/tracking/"


def test_mailgun_hard_bounce_suppresses_and_a_retry_is_recorded_once(client, sent):
    ann = sent["ann"]
    body = mailgun(mailgun_failed(ann), token="a" * 50)
    for _attempt in range(2):  # Mailgun retries when it did not see the first 200
        response = client.post(MAILGUN_URL, body, content_type="application/json", **auth())
        assert response.status_code == 200
    event = Event.objects.get()
    assert (event.kind, event.message_id, event.severity) == ("bounce", ann.pk, "hard")
    assert (event.status_code, event.smtp_code) == ("5.1.1", 550)
    assert "does not exist" in event.diagnostic
    assert contact_status(ann) == "bounced"
    assert hourly(ann, "bounces_hard") == 1
    assert MessageActivity.objects.get(message=ann).bounce_severity == "hard"


def test_mailgun_temporary_failure_is_a_soft_bounce(client, sent):
    bob = sent["bob"]
    body = mailgun(mailgun_failed(bob, severity="temporary"), token="b" * 50)
    response = client.post(MAILGUN_URL, body, content_type="application/json", **auth())
    assert response.status_code == 200
    event = Event.objects.get()
    assert (event.severity, event.status_code) == ("soft", "4.2.2")
    assert contact_status(bob) == "active"
    assert hourly(bob, "bounces_soft") == 1


def test_mailgun_wrong_signature_or_missing_auth_records_nothing(client, sent):
    data = mailgun_failed(sent["ann"])
    forged = mailgun(data, token="c" * 50, key="key-not-the-right-one")
    response = client.post(MAILGUN_URL, forged, content_type="application/json", **auth())
    assert response.status_code == 400
    signed = mailgun(data, token="d" * 50)
    response = client.post(MAILGUN_URL, signed, content_type="application/json")
    assert response.status_code == 400
    response = client.post(
        MAILGUN_URL, signed, content_type="application/json", **auth("esp-hooks:guess")
    )
    assert response.status_code == 400
    assert not Event.objects.exists()
    assert not InboundReceipt.objects.exists()
    assert contact_status(sent["ann"]) == "active"


def test_an_unknown_message_is_answered_200_and_ignored(client, sent):
    data = mailgun_failed(sent["ann"])
    data["message"]["headers"]["message-id"] = "someone-elses@mg.esp.test"
    body = mailgun(data, token="e" * 50)
    response = client.post(MAILGUN_URL, body, content_type="application/json", **auth())
    assert response.status_code == 200
    assert not Event.objects.exists()
    assert contact_status(sent["ann"]) == "active"


# --- Postmark: basic auth ---------------------------------------------------------------

POSTMARK_URL = "/webhooks/anymail/postmark/tracking/"
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def postmark(client: Client, payload: dict, **extra):
    return client.post(POSTMARK_URL, json.dumps(payload), content_type="application/json", **extra)


def postmark_bounce(message: Message, kind: str, *, bounce_id: int, details: str) -> dict:
    return {
        "RecordType": "Bounce",
        "ID": bounce_id,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": message.esp_message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": details,
        "Email": message.email,
        "From": "news@example.com",
        "BouncedAt": soon().isoformat(),
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Hello",
    }


def test_postmark_opens_clicks_complaints_and_deliveries(client, sent):
    ann, bob = sent["ann"], sent["bob"]
    opened = {
        "RecordType": "Open",
        "MessageStream": "outbound",
        "FirstOpen": True,
        "Client": {"Name": "Chrome 131", "Company": "Google", "Family": "Chrome"},
        "OS": {"Name": "Windows 10", "Company": "Microsoft", "Family": "Windows"},
        "Platform": "Desktop",
        "UserAgent": BROWSER,
        "ReadSeconds": 5,
        "Geo": {},
        "MessageID": ann.esp_message_id,
        "Metadata": {},
        "ReceivedAt": soon(60).isoformat(),
        "Tag": "",
        "Recipient": ann.email,
    }
    for _attempt in range(2):
        assert postmark(client, opened, **auth()).status_code == 200
    clicked = {
        **opened,
        "RecordType": "Click",
        "ClickLocation": "HTML",
        "OriginalLink": "https://example.com/offer",
        "ReceivedAt": soon(120).isoformat(),
    }
    del clicked["FirstOpen"], clicked["ReadSeconds"]
    assert postmark(client, clicked, **auth()).status_code == 200
    delivered = {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": ann.esp_message_id,
        "Recipient": ann.email,
        "Tag": "",
        "DeliveredAt": soon(5).isoformat(),
        "Details": "Test delivery webhook details",
        "Metadata": {},
    }
    assert postmark(client, delivered, **auth()).status_code == 200
    complaint = {
        **postmark_bounce(bob, "SpamComplaint", bounce_id=42, details="Test spam complaint"),
        "RecordType": "SpamComplaint",
        "TypeCode": 512,
    }
    assert postmark(client, complaint, **auth()).status_code == 200

    assert sorted(Event.objects.values_list("kind", "message_id")) == sorted(
        [("open", ann.pk), ("click", ann.pk), ("complaint", bob.pk)]
    )
    click = Event.objects.get(kind="click")
    assert click.link.url == "https://example.com/offer" and not click.is_machine
    assert not Event.objects.get(kind="open").is_machine
    activity = MessageActivity.objects.get(message=ann)
    assert (activity.opens, activity.clicks) == (1, 1)
    assert LinkStat.objects.get(link=click.link).clicks_unique == 1
    assert (hourly(ann, "opens_unique"), hourly(ann, "clicks_unique")) == (1, 1)
    assert hourly(bob, "complaints") == 1
    assert contact_status(bob) == "complained"
    assert Message.objects.get(pk=ann.pk).status == "sent"  # delivered: nothing to change


def test_postmark_click_on_our_own_tracked_link(client, sent):
    ann = sent["ann"]
    link = ann.campaign.links.get(url="https://example.com/blog?a=1&b=2")
    ours = f"https://mail.example.test/t/c/{tokens.make_token('click', ann.pk, link.index)}/"
    clicked = {
        "RecordType": "Click",
        "OriginalLink": ours,
        "MessageID": ann.esp_message_id,
        "ReceivedAt": soon(300).isoformat(),
        "Recipient": ann.email,
        "UserAgent": BROWSER,
    }
    assert postmark(client, clicked, **auth()).status_code == 200
    assert Event.objects.get(kind="click").link_id == link.pk


def test_postmark_rejections_fail_the_message(client, sent):
    cat, dan = sent["cat"], sent["dan"]
    invalid = postmark_bounce(cat, "BadEmailAddress", bounce_id=7, details="Invalid email address")
    assert postmark(client, invalid, **auth()).status_code == 200
    api_error = postmark_bounce(dan, "SMTPApiError", bounce_id=8, details="SMTP API error")
    assert postmark(client, api_error, **auth()).status_code == 200
    failed = {m.pk: m for m in Message.objects.filter(pk__in=[cat.pk, dan.pk])}
    assert failed[cat.pk].status == failed[dan.pk].status == "failed"
    assert "Invalid email address" in failed[cat.pk].last_reply
    # An address the ESP knows to be invalid is suppressed; its own API error is not ours.
    assert contact_status(cat) == "bounced"
    assert contact_status(dan) == "active"
    assert list(Event.objects.values_list("kind", "message_id")) == [("bounce", cat.pk)]


def test_postmark_soft_bounce_with_a_transient_status_counts_as_soft(client, sent):
    bob = sent["bob"]
    payload = postmark_bounce(
        bob, "SoftBounce", bounce_id=9, details="smtp;452 4.2.2 Mailbox full, try later"
    )
    assert postmark(client, payload, **auth()).status_code == 200
    assert Event.objects.get().severity == "soft"
    assert contact_status(bob) == "active"


def test_postmark_without_the_basic_auth_records_nothing(client, sent):
    payload = postmark_bounce(sent["ann"], "HardBounce", bounce_id=10, details="smtp;550 5.1.1")
    assert postmark(client, payload).status_code == 400
    assert postmark(client, payload, **auth("esp-hooks:wrong")).status_code == 400
    assert not Event.objects.exists()
    assert contact_status(sent["ann"]) == "active"


# --- Unisender Go: MD5 of the body with the API key --------------------------------------

UNISENDER_URL = "/webhooks/anymail/unisender_go/tracking/"


def unisender(events: list[dict], *, key: str = UNISENDER_KEY) -> str:
    """The body Unisender Go posts: signed by replacing ``auth`` with the API key, hashing
    the body, and putting the hash back."""
    payload = {
        "auth": key,
        "events_by_user": [
            {
                "user_id": 456,
                "project_id": "6432890213745872",
                "project_name": "Mailcenter",
                "events": [
                    {"event_name": "transactional_email_status", "event_data": data}
                    for data in events
                ],
            }
        ],
    }
    unsigned = json.dumps(payload, ensure_ascii=False)
    digest = hashlib.md5(unsigned.encode()).hexdigest()  # noqa: S324 - Unisender Go's scheme
    return unsigned.replace(key, digest)


def unisender_event(message: Message, status: str, **delivery_info) -> dict:
    return {
        "job_id": "1a3Q2V-0000OZ-S0",
        "metadata": {"anymail_id": message.esp_message_id, "mailcenter_ref": str(message.pk)},
        "email": message.email,
        "status": status,
        "event_time": soon().strftime("%Y-%m-%d %H:%M:%S"),
        "url": None,
        "delivery_info": {"user_agent": None, "ip": None, **delivery_info},
    }


def test_unisender_go_bounce_complaint_and_unsubscribe(client, sent):
    ann, bob, cat = sent["ann"], sent["bob"], sent["cat"]
    body = unisender(
        [
            unisender_event(
                ann,
                "hard_bounced",
                delivery_status="err_user_unknown",
                destination_response="550 5.1.1 <ann@example.org>: Recipient address rejected",
            ),
            unisender_event(bob, "spam"),
            unisender_event(cat, "unsubscribed"),
        ]
    )
    for _attempt in range(2):  # Unisender Go retries too, without an event id
        response = client.post(UNISENDER_URL, body, content_type="application/json", **auth())
        assert response.status_code == 200
    assert sorted(Event.objects.values_list("kind", "message_id")) == sorted(
        [("bounce", ann.pk), ("complaint", bob.pk), ("unsubscribe", cat.pk)]
    )
    bounce = Event.objects.get(kind="bounce")
    assert (bounce.severity, bounce.status_code, bounce.smtp_code) == ("hard", "5.1.1", 550)
    assert [contact_status(m) for m in (ann, bob, cat)] == ["bounced", "complained", "unsubscribed"]
    assert hourly(cat, "unsubscribes") == 1


def test_unisender_go_with_a_wrong_signature_records_nothing(client, sent):
    body = unisender([unisender_event(sent["bob"], "spam")], key="not-our-api-key-at-all-00000000")
    response = client.post(UNISENDER_URL, body, content_type="application/json", **auth())
    assert response.status_code == 400
    assert not Event.objects.exists()
    assert contact_status(sent["bob"]) == "active"


def test_only_the_tracking_webhooks_are_mounted(client, db):
    response = client.post("/webhooks/anymail/mailgun/inbound/", "{}", content_type="text/plain")
    assert response.status_code == 404
    # Unisender Go checks the URL with a GET when it is configured.
    assert client.get(UNISENDER_URL).status_code == 200


def test_the_secrets_come_from_the_environment(tmp_path):
    env = {
        **os.environ,
        "MAILCENTER_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "mailcenter.settings",
        "MAILCENTER_ANYMAIL_WEBHOOK_SECRET": "new:one, old:two",
        "MAILGUN_WEBHOOK_SIGNING_KEY": "key-from-env",
        "UNISENDER_GO_API_KEY": "unisender-from-env",
    }
    env.pop("POSTAL_WEBHOOK_KEY", None)
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.ANYMAIL))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    anymail = json.loads(done.stdout.strip().splitlines()[-1])
    assert anymail["WEBHOOK_SECRET"] == ["new:one", "old:two"]
    assert anymail["MAILGUN_WEBHOOK_SIGNING_KEY"] == "key-from-env"
    assert anymail["UNISENDER_GO_API_KEY"] == "unisender-from-env"
    assert "POSTAL_WEBHOOK_KEY" not in anymail


def test_an_esp_that_is_not_configured_answers_404_not_500(client, db, settings, caplog):
    settings.ANYMAIL = {"WEBHOOK_SECRET": BASIC}  # no Mailgun signing key
    response = client.post(MAILGUN_URL, "{}", content_type="application/json", **auth())
    assert response.status_code == 404
    assert "is not configured" in caplog.text
    # boto3 is not a dependency: without it Amazon SES's endpoint says it is not in use.
    response = client.post(
        "/webhooks/anymail/amazon_ses/tracking/", "{}", content_type="application/json", **auth()
    )
    assert response.status_code == (404 if importlib.util.find_spec("boto3") is None else 400)


def test_without_a_webhook_secret_only_signing_esps_are_heard(client, sent, settings):
    """Postmark signs nothing: with no basic-auth secret set, anyone could post it a
    complaint that suppresses a real address, so its URL answers 404. Mailgun signs its
    calls, so its webhook still works on the signature alone."""
    settings.ANYMAIL = {
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        "UNISENDER_GO_API_KEY": UNISENDER_KEY,
    }
    bob = sent["bob"]
    forged = postmark_bounce(bob, "HardBounce", bounce_id=77, details="smtp;550 5.1.1 no")
    assert postmark(client, forged).status_code == 404
    assert not Event.objects.exists()
    assert contact_status(bob) == "active"
    ann = sent["ann"]
    body = mailgun(mailgun_failed(ann), token="b" * 50)
    response = client.post(MAILGUN_URL, body, content_type="application/json")
    assert response.status_code == 200
    assert Event.objects.get().message_id == ann.pk


def test_an_esp_that_signs_when_its_key_is_set_is_not_refused_for_want_of_a_secret(
    client, db, settings
):
    """SendGrid signs its calls once its verification key is set: then its webhook is
    checked by the signature (a forged call is a 400, not let through), not shut."""
    import base64
    import warnings

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    url = "/webhooks/anymail/sendgrid/tracking/"
    settings.ANYMAIL = {}
    assert client.post(url, "[]", content_type="application/json").status_code == 404
    settings.ANYMAIL = {
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": base64.b64encode(der).decode()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anymail's "SendGrid no longer supported" notice
        response = client.post(url, "[]", content_type="application/json")
    assert response.status_code == 400
    assert not Event.objects.exists()
