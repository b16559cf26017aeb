"""Outgoing webhooks against a real HTTP server on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.models import Message
from contacts.services import signup
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory
from tracking import services as tracking_services
from tracking import tokens
from tracking.models import WebhookDelivery, WebhookEndpoint
from tracking.webhooks import services as webhooks

pytestmark = pytest.mark.django_db


class Receiver:
    """A loopback HTTP server answering POSTs from a script of replies: an int is a status
    code, "slow" sleeps past the client's timeout. After the script, it answers 200."""

    def __init__(self, script=()):
        self.script = list(script)
        self.requests: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers), body))
                    reply = receiver.script.pop(0) if receiver.script else 200
                if reply == "slow":
                    time.sleep(1.0)
                    reply = 200
                try:
                    self.send_response(reply)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _headers, body in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(script=()):
        r = Receiver(script)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.MAILCENTER_WEBHOOK_TIMEOUT = 0.3
    settings.MAILCENTER_WEBHOOK_BACKOFF = 60


@pytest.fixture
def campaign_sent(django_capture_on_commit_callbacks):
    mailing_list = MailingListFactory()
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    return campaign, Message.objects.get(campaign=campaign)


def _unsubscribe(message):
    """Record an event through the real service (its deliveries are queued, not sent)."""
    tracking_services.contact_unsubscribe(message)


def _verify(secret: str, headers: dict, body: bytes) -> bool:
    stamp = headers["X-Mailcenter-Timestamp"]
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(headers["X-Mailcenter-Signature"], "sha256=" + expected.hexdigest())


def test_signed_delivery_verifies(receiver, campaign_sent):
    r = receiver()
    _endpoint, secret = webhooks.endpoint_create(r.url, ["unsubscribed"])
    _campaign, message = campaign_sent
    _unsubscribe(message)
    assert webhooks.deliveries_send_due() == 1
    ((headers, body),) = r.requests
    assert _verify(secret, headers, body)
    assert not _verify("whsec_wrong", headers, body)
    assert abs(int(headers["X-Mailcenter-Timestamp"]) - time.time()) < 60
    payload = json.loads(body)
    assert payload["event"] == "unsubscribed"
    assert payload["email"] == message.email
    assert payload["message_id"] == message.pk
    assert payload["campaign_id"] == message.campaign_id
    assert payload["occurred_at"].endswith("Z")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.response_code, delivery.attempts) == ("delivered", 200, 1)


def test_500_then_200_is_retried_with_backoff(receiver, campaign_sent):
    r = receiver([500, 503])
    webhooks.endpoint_create(r.url, ["unsubscribed"])
    _unsubscribe(campaign_sent[1])
    now = timezone.now()
    webhooks.deliveries_send_due(now=now)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.response_code, delivery.attempts) == ("pending", 500, 1)
    assert delivery.next_attempt_at == now + timedelta(minutes=1)
    assert webhooks.deliveries_send_due(now=now + timedelta(seconds=59)) == 0  # not yet due
    webhooks.deliveries_send_due(now=now + timedelta(minutes=1))
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == now + timedelta(minutes=1) + timedelta(minutes=2)
    webhooks.deliveries_send_due(now=now + timedelta(minutes=3))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_code, delivery.attempts) == ("delivered", 200, 3)
    assert len(r.requests) == 3


def test_backoff_doubles_up_to_a_day_and_gives_up():
    assert webhooks.retry_delay(1) == timedelta(minutes=1)
    assert webhooks.retry_delay(4) == timedelta(minutes=8)
    assert webhooks.retry_delay(20) == timedelta(hours=24)


def test_gives_up_after_max_attempts(receiver, campaign_sent, settings):
    settings.MAILCENTER_WEBHOOK_MAX_ATTEMPTS = 2
    r = receiver([500, 500, 500])
    webhooks.endpoint_create(r.url, ["unsubscribed"])
    _unsubscribe(campaign_sent[1])
    now = timezone.now()
    webhooks.deliveries_send_due(now=now)
    webhooks.deliveries_send_due(now=now + timedelta(days=2))
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert webhooks.deliveries_send_due(now=now + timedelta(days=4)) == 0


def test_timeout_is_retried(receiver, campaign_sent):
    r = receiver(["slow"])
    webhooks.endpoint_create(r.url, ["unsubscribed"])
    _unsubscribe(campaign_sent[1])
    now = timezone.now()
    webhooks.deliveries_send_due(now=now)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending"
    assert delivery.response_code is None
    assert "timed out" in delivery.last_error
    webhooks.deliveries_send_due(now=now + timedelta(minutes=1))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_connection_refused_is_retried(campaign_sent):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    webhooks.endpoint_create(f"http://127.0.0.1:{port}/hook", ["unsubscribed"])
    _unsubscribe(campaign_sent[1])
    webhooks.deliveries_send_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("pending", 1, None)
    assert "refused" in delivery.last_error.lower()


def test_disabled_endpoint_gets_nothing(receiver, campaign_sent):
    r = receiver()
    endpoint, _secret = webhooks.endpoint_create(r.url, ["unsubscribed"])
    webhooks.endpoint_set_enabled(endpoint, False)
    _unsubscribe(campaign_sent[1])
    assert webhooks.deliveries_send_due() == 0
    assert r.requests == []
    assert not WebhookDelivery.objects.exists()


def test_pending_deliveries_wait_while_disabled(receiver, campaign_sent):
    r = receiver()
    endpoint, _secret = webhooks.endpoint_create(r.url, ["unsubscribed"])
    _unsubscribe(campaign_sent[1])
    webhooks.endpoint_set_enabled(endpoint, False)
    assert webhooks.deliveries_send_due() == 0
    webhooks.endpoint_set_enabled(endpoint, True)
    assert webhooks.deliveries_send_due() == 1
    assert len(r.requests) == 1


def test_unsubscribed_events_are_not_sent(receiver, campaign_sent):
    r = receiver()
    webhooks.endpoint_create(r.url, ["opened", "bounced"])
    _unsubscribe(campaign_sent[1])
    assert webhooks.deliveries_send_due() == 0
    assert r.requests == []


def test_subscribed_event_on_single_opt_in(receiver, db):
    from contacts.models import SignupForm

    r = receiver()
    webhooks.endpoint_create(r.url, ["subscribed"])
    mailing_list = MailingListFactory()
    form = SignupForm.objects.create(name="Footer", double_opt_in=False)
    form.lists.add(mailing_list)
    signup.signup_submit(form, {"email": "new@example.com"})
    webhooks.deliveries_send_due()
    (payload,) = r.bodies()
    assert payload["event"] == "subscribed"
    assert payload["email"] == "new@example.com"
    assert payload["list_ids"] == [mailing_list.pk]


def test_subscribed_event_once_on_double_opt_in_confirmation(receiver, db):
    from contacts.models import SignupForm

    r = receiver()
    webhooks.endpoint_create(r.url, ["subscribed"])
    form = SignupForm.objects.create(name="Footer", double_opt_in=True)
    form.lists.add(MailingListFactory())
    consent = signup.signup_submit(form, {"email": "later@example.com"})
    assert not WebhookDelivery.objects.exists()  # not subscribed until confirmed
    token = signup.confirmation_token(consent)
    signup.signup_confirm(token)
    signup.signup_confirm(token)  # a second click changes nothing
    webhooks.deliveries_send_due()
    assert [p["email"] for p in r.bodies()] == ["later@example.com"]


def test_endpoint_validation():
    for bad in [
        "ftp://example.com/",
        "javascript:alert(1)",
        "http://exa mple.com/",
        "https://example.com/\r\nX-Evil: 1",
        "",
        "http:///path",
        "https://user:pw@example.com/",
    ]:
        with pytest.raises(webhooks.WebhookError):
            webhooks.endpoint_create(bad, ["opened"])
    with pytest.raises(webhooks.WebhookError):
        webhooks.endpoint_create("https://example.com/", [])
    with pytest.raises(webhooks.WebhookError):
        webhooks.endpoint_create("https://example.com/", ["exploded"])
    assert not WebhookEndpoint.objects.exists()


def test_full_flow_send_open_and_see_the_delivery(
    receiver, auth_client, client, django_capture_on_commit_callbacks
):
    r = receiver()
    endpoint, secret = webhooks.endpoint_create(r.url, ["delivered", "opened"])
    mailing_list = MailingListFactory()
    subscription = SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    message = Message.objects.get(campaign=campaign)
    assert message.status == Message.Status.SENT
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(f"/t/o/{tokens.make_token('open', message.pk)}/")
    assert response.status_code == 200
    events = sorted(r.bodies(), key=lambda p: p["event"])
    assert [p["event"] for p in events] == ["delivered", "opened"]
    for payload in events:
        assert payload["message_id"] == message.pk
        assert payload["campaign_id"] == campaign.pk
        assert payload["email"] == subscription.contact.email
    assert all(_verify(secret, h, b) for h, b in r.requests)
    page = auth_client.get(f"/settings/webhooks/{endpoint.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "opened" in html and "delivered" in html and "200" in html
    assert secret not in html  # write-only after creation


def test_pages_secret_shown_once_test_event_disable_delete(receiver, auth_client):
    r = receiver()
    response = auth_client.post(
        "/settings/webhooks/", {"url": r.url, "events": ["opened", "clicked"]}, follow=True
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in response.content.decode()
    listing = auth_client.get("/settings/webhooks/")
    assert listing.status_code == 200
    assert r.url in listing.content.decode()
    assert endpoint.secret not in listing.content.decode()
    again = auth_client.get(f"/settings/webhooks/{endpoint.pk}/")
    assert endpoint.secret not in again.content.decode()
    response = auth_client.post(f"/settings/webhooks/{endpoint.pk}/test/", follow=True)
    (payload,) = r.bodies()
    assert payload["event"] == "test"
    assert _verify(endpoint.secret, *r.requests[0])
    assert "delivered" in response.content.decode().lower()
    auth_client.post(f"/settings/webhooks/{endpoint.pk}/toggle/")
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    bad = auth_client.post("/settings/webhooks/", {"url": "gopher://x", "events": ["opened"]})
    assert bad.status_code == 400
    auth_client.post(f"/settings/webhooks/{endpoint.pk}/delete/")
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert auth_client.get("/settings/").content.decode().count("/settings/webhooks/") == 1


def test_pages_need_login(client):
    assert client.get("/settings/webhooks/").status_code == 302
