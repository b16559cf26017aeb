"""The anymail backend through Anymail's own test ESP, which can be told to fail."""

from __future__ import annotations

import pytest
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.exceptions import AnymailAPIError
from anymail.message import AnymailRecipientStatus
from django.core import mail

from campaigns import services
from campaigns.models import Campaign, Message
from mailcenter.delivery import Accepted, Deferred, OutgoingMessage, Rejected, get_backend
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory


class ScriptedESP(AnymailTestBackend):
    """Anymail's test backend, answering by recipient: ``api-error@`` gets an API error,
    ``refused@`` a rejected status, ``queued@`` a queued one; others are sent."""

    def post_to_esp(self, payload, message):
        rcpt = payload.recipient_emails[0]
        if rcpt.startswith("api-error@"):
            message.anymail_test_response = AnymailAPIError("503 try later", status_code=503)
        elif rcpt.startswith(("refused@", "queued@")):
            status = "rejected" if rcpt.startswith("refused@") else "queued"
            message.anymail_test_response = {
                "recipient_status": {
                    rcpt: AnymailRecipientStatus(message_id=f"q-{rcpt}", status=status)
                }
            }
        return super().post_to_esp(payload, message)


ESP = f"{__name__}.ScriptedESP"


@pytest.fixture(autouse=True)
def _outbox():
    mail.outbox = []


def _msg(ref: str, rcpt: str) -> OutgoingMessage:
    raw = (
        b"From: News <news@example.com>\r\nReply-To: help@example.com\r\nTo: x\r\n"
        b"Subject: Hi\r\n\r\nbody\r\n"
    )
    return OutgoingMessage(
        ref=ref,
        recipient=rcpt,
        return_path=f"bounces+{ref}@example.com",
        from_email="news@example.com",
        subject="Hi",
        raw=raw,
        headers={
            "List-Unsubscribe": "<https://x.test/u/1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        html="<p>Hi</p>",
        text="Hi",
    )


def test_results_and_esp_message_ids(settings):
    settings.MAILCENTER_SENDERS = {"esp": {"BACKEND": "anymail", "OPTIONS": {"esp": ESP}}}
    with get_backend("esp") as backend:
        results = backend.send_batch(
            [
                _msg("1", "ok@example.org"),
                _msg("2", "api-error@example.org"),
                _msg("3", "refused@example.org"),
                _msg("4", "queued@example.org"),
            ]
        )
    assert isinstance(results[0], Accepted) and results[0].message_id == "0"
    assert isinstance(results[1], Deferred) and "503" in results[1].reply
    assert isinstance(results[2], Rejected) and results[2].code == 550
    assert isinstance(results[3], Accepted) and results[3].message_id == "q-queued@example.org"
    sent = mail.outbox[0]
    assert sent.from_email == "News <news@example.com>" and sent.to == ["ok@example.org"]
    params = sent.anymail_test_params
    assert params["extra_headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [str(a) for a in params["reply_to"]] == ["help@example.com"]
    assert params["html_body"] == "<p>Hi</p>" and params["text_body"] == "Hi"
    assert params["metadata"] == {"mailcenter_ref": "1"}
    assert params["track_clicks"] is False and "envelope_sender" not in params


def test_envelope_sender_and_esp_settings_are_passed(settings):
    settings.MAILCENTER_SENDERS = {
        "esp": {"BACKEND": "anymail", "OPTIONS": {"esp": ESP, "envelope_sender": True}}
    }
    get_backend("esp").send_batch([_msg("7", "ok@example.org")])
    assert mail.outbox[0].anymail_test_params["envelope_sender"] == "bounces+7@example.com"


def test_an_unknown_esp_is_a_delivery_error(settings):
    settings.MAILCENTER_SENDERS = {"esp": {"BACKEND": "anymail", "OPTIONS": {"esp": "nope"}}}
    results = None
    with pytest.raises(Exception, match=r"cannot use anymail\.backends\.nope"):
        results = get_backend("esp").send_batch([_msg("1", "a@example.org")])
    assert results is None


@pytest.mark.django_db
def test_a_campaign_through_an_esp_stores_its_message_ids(
    settings, django_capture_on_commit_callbacks
):
    settings.MAILCENTER_SENDERS = {"default": {"BACKEND": "anymail", "OPTIONS": {"esp": ESP}}}
    mailing_list = MailingListFactory()
    for email in ("one@example.org", "queued@example.org", "api-error@example.org"):
        SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email=email))
    campaign = CampaignFactory(lists=[mailing_list])
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_start(campaign.pk)
    rows = {m.email: m for m in Message.objects.filter(campaign=campaign)}
    assert rows["one@example.org"].status == "sent"
    assert rows["one@example.org"].esp_message_id in {"0", "1"}
    assert rows["queued@example.org"].esp_message_id == "q-queued@example.org"
    assert rows["api-error@example.org"].status == "deferred"
    assert rows["api-error@example.org"].esp_message_id == ""
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENDING
    # what the webhook side will look the message up by
    assert Message.objects.get(esp_message_id="q-queued@example.org").email == "queued@example.org"
