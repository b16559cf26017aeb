"""Bounces, complaints, auto-replies and mailto unsubscribes arriving at our addresses:
the service, and the bounce server over real SMTP on loopback."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine

from campaigns import services as campaign_services
from campaigns.models import Message
from contacts.models import Contact, Subscription
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory
from tests.tracking.test_bounces import load
from tracking import tokens
from tracking.inbound import address_parse, bounce_controller
from tracking.models import Event
from tracking.services import inbound_mail_process

DOMAIN = "bounce.test"


@pytest.fixture(autouse=True)
def _bounce_domain(settings):
    settings.MAILCENTER_BOUNCE_DOMAIN = DOMAIN


@pytest.fixture
def messages(db, django_capture_on_commit_callbacks):
    mailing_list = MailingListFactory()
    for _ in range(3):
        SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    return list(Message.objects.filter(campaign=campaign).select_related("contact"))


def verp(message: Message) -> str:
    return f"bounces+{tokens.make_token('bounce', message.pk)}@{DOMAIN}"


def returned(name: str, message: Message) -> bytes:
    return load(name, tokens.make_token("bounce", message.pk), message.email)


def status(message: Message) -> str:
    return Contact.objects.get(pk=message.contact_id).status


def test_address_parse_accepts_only_signed_addresses_at_our_domain(messages):
    message = messages[0]
    token = tokens.make_token("bounce", message.pk)
    assert address_parse(f"bounces+{token}@{DOMAIN}").message_id == message.pk
    assert address_parse(f"<bounces+{token}@BOUNCE.test>").purpose == "bounce"
    unsub = tokens.make_token("unsubscribe", message.pk)
    assert address_parse(f"unsubscribe+{unsub}@{DOMAIN}").purpose == "unsubscribe"
    assert address_parse(f"bounces+{token}@other.test") is None
    assert address_parse(f"bounces+{unsub}@{DOMAIN}") is None  # wrong purpose
    assert address_parse(f"bounces+{token[:-2]}xx@{DOMAIN}") is None
    assert address_parse(f"postmaster@{DOMAIN}") is None
    assert address_parse("nonsense") is None


def test_hard_bounce_suppresses_at_once_and_records_the_details(messages):
    message, other, _ = messages
    outcome = inbound_mail_process([verp(message)], returned("postfix_user_unknown.eml", message))
    assert outcome == [(verp(message), "bounce hard 5.1.1")]
    event = Event.objects.get(kind="bounce")
    assert (event.message_id, event.campaign_id) == (message.pk, message.campaign_id)
    assert (event.severity, event.status_code, event.smtp_code) == ("hard", "5.1.1", 550)
    assert "User unknown" in event.diagnostic
    assert status(message) == "bounced"
    assert status(other) == "active"


@pytest.mark.parametrize(
    "name", ["gmail_does_not_exist.eml", "exchange_ndr.eml", "qmail_failure.eml"]
)
def test_other_hard_bounce_formats_suppress(messages, name):
    message = messages[0]
    inbound_mail_process([verp(message)], returned(name, message))
    assert Event.objects.get().severity == "hard"
    assert status(message) == "bounced"


def test_soft_bounces_suppress_after_the_limit_within_the_window(messages, settings):
    settings.MAILCENTER_SOFT_BOUNCE_LIMIT = 3
    settings.MAILCENTER_SOFT_BOUNCE_WINDOW_DAYS = 7
    message = messages[0]
    raw = returned("exim_mailbox_full.eml", message)
    with time_machine.travel("2026-11-01 12:00Z", tick=False):
        inbound_mail_process([verp(message)], raw)
    with time_machine.travel("2026-11-20 12:00Z", tick=False):
        inbound_mail_process([verp(message)], raw)  # the first is out of the window now
        assert status(message) == "active"
    with time_machine.travel("2026-11-21 12:00Z", tick=False):
        inbound_mail_process([verp(message)], raw)
        assert status(message) == "active"
    with time_machine.travel("2026-11-22 12:00Z", tick=False):
        inbound_mail_process([verp(message)], raw)
    assert status(message) == "bounced"
    assert Event.objects.filter(kind="bounce", severity="soft").count() == 4


def test_complaint_suppresses_and_unsubscribes_once(messages):
    message = messages[0]
    raw = returned("arf_complaint.eml", message)
    assert inbound_mail_process([verp(message)], raw)[0][1] == "complaint"
    inbound_mail_process([verp(message)], raw)
    assert Event.objects.filter(kind="complaint").count() == 1
    assert status(message) == "complained"
    assert not Subscription.objects.filter(
        contact_id=message.contact_id, status="subscribed"
    ).exists()


@pytest.mark.parametrize("name", ["vacation_autoreply.eml", "exchange_ooo.eml"])
def test_auto_replies_are_not_bounces(messages, name):
    message = messages[0]
    assert inbound_mail_process([verp(message)], returned(name, message))[0][1] == "autoreply"
    assert not Event.objects.exists()
    assert status(message) == "active"


def test_mail_to_the_unsubscribe_address_unsubscribes(messages):
    message = messages[0]
    address = f"unsubscribe+{tokens.make_token('unsubscribe', message.pk)}@{DOMAIN}"
    assert inbound_mail_process([address], b"Subject: unsubscribe\r\n\r\n")[0][1] == "unsubscribed"
    assert status(message) == "unsubscribed"
    assert Event.objects.get().kind == "unsubscribe"


def test_forged_and_unknown_addresses_do_nothing(messages):
    message = messages[0]
    raw = returned("postfix_user_unknown.eml", message)
    token = tokens.make_token("bounce", 999999)
    outcomes = inbound_mail_process(
        [f"bounces+{token}@{DOMAIN}", f"bounces+forged.sig@{DOMAIN}"], raw
    )
    assert [o for _r, o in outcomes] == ["unknown recipient", "unknown recipient"]
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_bounce_server_over_smtp(django_capture_on_commit_callbacks):
    mailing_list = MailingListFactory()
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    campaign_services.campaign_start(campaign.pk)
    message = Message.objects.get(campaign=campaign)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = bounce_controller("127.0.0.1", port, DOMAIN)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            # an address that is not ours, or a forged token, is refused at RCPT
            client.ehlo()
            assert client.mail("")[0] == 250
            assert client.rcpt(f"postmaster@{DOMAIN}")[0] == 550
            assert client.rcpt(f"bounces+forged.sig@{DOMAIN}")[0] == 550
            client.rset()
            client.sendmail("", [verp(message)], returned("postfix_user_unknown.eml", message))
    finally:
        controller.stop()
    event = Event.objects.get()
    assert (event.kind, event.severity, event.message_id) == ("bounce", "hard", message.pk)
    assert status(message) == "bounced"


def test_bounce_server_command_serves_and_stops_on_sigterm(tmp_path):
    """The real command in its own process: it listens, refuses strangers, exits on TERM."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MAILCENTER_VAR_DIR": str(tmp_path), "MAILCENTER_BOUNCE_DOMAIN": DOMAIN}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "bounce_server", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for _ in range(50):  # aiosmtpd logs a line or two before the command's own
            lines.append(process.stdout.readline())
            if "listening on" in lines[-1] or not lines[-1]:
                break
        assert f"listening on 127.0.0.1:{port} for @{DOMAIN}" in lines[-1], lines
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo()
            client.mail("")
            assert client.rcpt(f"bounces+forged.sig@{DOMAIN}")[0] == 550
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_bounce_is_shown_on_the_contact_page_and_the_report(auth_client, messages):
    message, complainer, _ = messages
    inbound_mail_process([verp(message)], returned("postfix_user_unknown.eml", message))
    inbound_mail_process([verp(complainer)], returned("arf_complaint.eml", complainer))
    page = auth_client.get(f"/contacts/{message.contact_id}/").content.decode()
    assert "Hard bounce" in page and "5.1.1" in page and "User unknown" in page
    assert auth_client.get(f"/contacts/{messages[2].contact_id}/").status_code == 200
    report = auth_client.get(f"/reports/{message.campaign_id}/").content.decode()
    assert 'data-stat="bounces_hard">1<' in report
    assert 'data-stat="complaints">1<' in report
    assert message.email in report and "User unknown" in report
    assert 'data-event="complaint"' in report
