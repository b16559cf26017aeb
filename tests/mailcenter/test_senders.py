"""Settings → Senders: senders defined in the UI, write-only secrets, connection tests."""

from __future__ import annotations

import logging
import socket

import pytest

from campaigns import services as campaign_services
from campaigns.forms import CampaignForm
from campaigns.models import Campaign, Message
from mailcenter.delivery import get_backend, sender_names
from mailcenter.models import Sender
from mailcenter.senders import selectors, services
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory
from tests.smtppeers import ScriptedSMTPServer, self_signed_tls
from tests.smtpsink import SMTPSink

pytestmark = [
    pytest.mark.django_db,
    # AUTH over plaintext is what a loopback sink wants; aiosmtpd warns about it.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]

PASSWORD = "s3cret-Pa55-word"
API_KEY = "key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    settings.MAILCENTER_SENDERS = {"default": {"BACKEND": "outbox", "OPTIONS": {}}}
    selectors.clear_cache()
    yield
    selectors.clear_cache()


@pytest.fixture
def auth_sink():
    sink = SMTPSink(auth=("mailer", PASSWORD)).start()
    yield sink
    sink.stop()


def _form(sink_port: int, **extra) -> dict:
    return {
        "alias": "relay",
        "backend": "smtp",
        "host": "127.0.0.1",
        "port": sink_port,
        "security": "none",
        "timeout": "5",
        "username": "mailer",
        "password": PASSWORD,
        **extra,
    }


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_settings_links_to_senders_and_lists_configuration_ones(auth_client, settings):
    assert "/settings/senders/" in auth_client.get("/settings/").content.decode()
    body = auth_client.get("/settings/senders/").content.decode()
    assert "default" in body
    assert "from configuration" in body


def test_create_a_sender_test_it_and_the_password_never_shows(auth_client, auth_sink, caplog):
    caplog.set_level(logging.DEBUG)
    response = auth_client.post("/settings/senders/new/", _form(auth_sink.port))
    assert response.status_code == 302
    assert response["Location"] == "/settings/senders/relay/"
    sender = Sender.objects.get(alias="relay")
    assert PASSWORD not in sender.password_encrypted
    assert sender.password_encrypted.startswith("fernet1:")
    assert PASSWORD not in repr(sender) and PASSWORD not in str(sender)

    response = auth_client.post("/settings/senders/relay/test/", follow=True)
    body = response.content.decode()
    assert "Connected to 127.0.0.1:" in body
    assert "Logged in as mailer" in body
    assert auth_sink.logins == [("mailer", True)]

    for url in ("/settings/senders/", "/settings/senders/relay/", "/settings/"):
        page = auth_client.get(url).content.decode()
        assert PASSWORD not in page, url
    edit = auth_client.get("/settings/senders/relay/").content.decode()
    assert "leave empty to keep" in edit
    assert 'name="password"' in edit
    assert "Clear the stored password" in edit
    assert PASSWORD not in caplog.text


def test_a_wrong_password_is_reported_in_plain_words(auth_client, auth_sink):
    auth_client.post("/settings/senders/new/", _form(auth_sink.port, password="not-it-at-all"))
    body = auth_client.post("/settings/senders/relay/test/", follow=True).content.decode()
    assert "Connection test failed" in body
    assert "refused the user name or password" in body
    assert "535" in body
    assert "not-it-at-all" not in body
    assert "Traceback" not in body


def test_a_closed_port_is_reported_in_plain_words(auth_client, settings):
    settings.MAILCENTER_SENDER_TEST_TIMEOUT = 2
    port = _closed_port()
    auth_client.post("/settings/senders/new/", _form(port))
    response = auth_client.post("/settings/senders/relay/test/", follow=True)
    assert response.status_code == 200
    body = response.content.decode()
    assert f"Connection refused: nothing accepts connections on 127.0.0.1:{port}" in body
    assert PASSWORD not in body


def test_a_campaign_sends_through_a_sender_made_in_the_ui(
    auth_client, auth_sink, django_capture_on_commit_callbacks
):
    auth_client.post("/settings/senders/new/", _form(auth_sink.port))
    assert "relay" in sender_names()
    form = CampaignForm()
    assert ("relay", "relay") in form.fields["sender"].choices
    assert ("default", "default") in form.fields["sender"].choices

    mailing_list = MailingListFactory()
    emails = {f"ui{i}@example.org" for i in range(3)}
    for email in emails:
        SubscriptionFactory(mailing_list=mailing_list, contact__email=email)
    campaign = CampaignFactory(lists=[mailing_list], sender="relay")
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert {r for m in auth_sink.received for r in m.rcpt_tos} == emails
    assert Message.objects.filter(campaign=campaign, status="sent").count() == 3
    assert auth_sink.logins and all(ok for _login, ok in auth_sink.logins)


def test_an_empty_password_keeps_it_and_clear_removes_it(auth_client, auth_sink):
    auth_client.post("/settings/senders/new/", _form(auth_sink.port))
    stored = Sender.objects.get().password_encrypted
    response = auth_client.post(
        "/settings/senders/relay/", _form(auth_sink.port, password="", timeout="7")
    )
    assert response.status_code == 302
    sender = Sender.objects.get()
    assert sender.password_encrypted == stored
    assert sender.timeout == 7
    assert get_backend("relay").password == PASSWORD

    auth_client.post(
        "/settings/senders/relay/", _form(auth_sink.port, password="", clear_password="on")
    )
    assert Sender.objects.get().password_encrypted == ""
    assert "leave empty to keep" not in auth_client.get("/settings/senders/relay/").content.decode()


def test_configuration_senders_are_read_only_and_keep_their_secrets(auth_client, settings):
    settings.MAILCENTER_SENDERS = {
        "default": {
            "BACKEND": "smtp",
            "OPTIONS": {"host": "relay.example.net", "port": 587, "password": "cfg-secret-9"},
        }
    }
    page = auth_client.get("/settings/senders/default/").content.decode()
    assert "from configuration" in page
    assert "relay.example.net:587" in page
    assert "cfg-secret-9" not in page
    assert 'name="host"' not in page
    assert "cfg-secret-9" not in auth_client.get("/settings/senders/").content.decode()

    response = auth_client.post(
        "/settings/senders/new/", {**_form(25), "alias": "default", "password": ""}
    )
    assert response.status_code == 400
    assert "defined in the configuration" in response.content.decode()
    auth_client.post("/settings/senders/default/", _form(25))
    assert not Sender.objects.exists()
    assert auth_client.get("/settings/senders/default/delete/").status_code == 404
    with pytest.raises(services.SenderError):
        services.sender_create("default", {"backend": "outbox", "security": "none"})


def test_delete_asks_first_and_is_refused_while_a_campaign_uses_the_sender(auth_client):
    services.sender_create("bulk", {"backend": "outbox", "security": "none"})
    campaign = CampaignFactory(sender="bulk", status=Campaign.Status.SENDING)
    page = auth_client.get("/settings/senders/bulk/delete/").content.decode()
    assert "cannot be deleted until" in page
    response = auth_client.post("/settings/senders/bulk/delete/", follow=True)
    assert "cannot be deleted: 1 campaign(s) sending or paused use it" in response.content.decode()
    assert Sender.objects.filter(alias="bulk").exists()

    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENT)
    page = auth_client.get("/settings/senders/bulk/delete/").content.decode()
    assert "This cannot be undone" in page
    response = auth_client.post("/settings/senders/bulk/delete/")
    assert response["Location"] == "/settings/senders/"
    assert not Sender.objects.filter(alias="bulk").exists()
    assert "bulk" not in sender_names()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host": "smtp.example.com\r\nRCPT TO:<x@y>"}, "without spaces"),
        ({"host": "smtp example.com"}, "without spaces"),
        ({"host": ""}, "needs a host"),
        ({"port": "70000"}, "65535"),
        ({"port": "0"}, "1"),
        ({"alias": "My Sender"}, "lower-case letters"),
        ({"alias": "new"}, "reserved"),
        ({"timeout": "0"}, "1"),
        ({"backend": "anymail", "esp": ""}, "Name the Anymail ESP"),
        ({"backend": "mx", "security": "tls"}, "STARTTLS"),
        ({"username": "a\r\nb"}, "line breaks"),
        ({"backend": "carrier-pigeon"}, "Select a valid choice"),
    ],
)
def test_bad_input_is_refused_with_a_message(auth_client, changes, message):
    response = auth_client.post("/settings/senders/new/", _form(2525, **changes))
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert PASSWORD not in body
    assert not Sender.objects.exists()


def test_an_alias_is_unique(auth_client):
    auth_client.post("/settings/senders/new/", _form(2525))
    response = auth_client.post("/settings/senders/new/", _form(2526))
    assert response.status_code == 400
    assert "already a sender named" in response.content.decode()


def test_anymail_sender_gets_its_api_key_and_never_shows_it(auth_client):
    response = auth_client.post(
        "/settings/senders/new/",
        {
            "alias": "esp",
            "backend": "anymail",
            "esp": "test",
            "security": "none",
            "timeout": "30",
            "api_key": API_KEY,
        },
    )
    assert response.status_code == 302
    config = selectors.sender_config("esp")
    assert config == {
        "BACKEND": "anymail",
        "OPTIONS": {"esp": "test", "envelope_sender": False, "esp_settings": {"api_key": API_KEY}},
    }
    for url in ("/settings/senders/", "/settings/senders/esp/"):
        assert API_KEY not in auth_client.get(url).content.decode()
    body = auth_client.post("/settings/senders/esp/test/", follow=True).content.decode()
    assert "The ESP backend loads" in body
    assert API_KEY not in body


def test_workers_see_a_ui_change_after_the_cache_time(settings):
    services.sender_create("bulk", {"backend": "outbox", "security": "none"})
    assert selectors.sender_config("bulk")["BACKEND"] == "outbox"
    # Another process's edit: this process's cache is not cleared by it.
    settings.MAILCENTER_SENDERS_CACHE_SECONDS = 3600
    Sender.objects.filter(alias="bulk").update(backend="mx")
    assert selectors.sender_config("bulk")["BACKEND"] == "outbox"
    selectors.clear_cache()
    settings.MAILCENTER_SENDERS_CACHE_SECONDS = 0
    assert selectors.sender_config("bulk")["BACKEND"] == "mx"
    Sender.objects.filter(alias="bulk").delete()
    assert selectors.sender_config("bulk") is None


def test_a_secret_that_cannot_be_decrypted_fails_the_start(
    settings, django_capture_on_commit_callbacks
):
    services.sender_create(
        "relay",
        {"backend": "smtp", "host": "127.0.0.1", "security": "none", "username": "u"},
        password="pw",
    )
    settings.MAILCENTER_DKIM_KEY_SECRET = "another secret entirely"
    selectors.clear_cache()
    mailing_list = MailingListFactory()
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list], sender="relay")
    with pytest.raises(campaign_services.CampaignError, match="not configured"):
        campaign_services.campaign_start(campaign.pk)


def test_tls_and_starttls_problems_are_reported_in_plain_words(auth_client, smtp_sink, tmp_path):
    context, _cert = self_signed_tls(tmp_path)
    with ScriptedSMTPServer(ssl_context=context) as server:
        tls = {"security": "tls", "username": "", "password": ""}
        auth_client.post("/settings/senders/new/", _form(server.port, **tls, verify_tls="on"))
        body = auth_client.post("/settings/senders/relay/test/", follow=True).content.decode()
        assert "TLS certificate is not trusted" in body
        # An unchecked box is absent from the form data: verification off.
        auth_client.post("/settings/senders/relay/", _form(server.port, **tls))
        body = auth_client.post("/settings/senders/relay/test/", follow=True).content.decode()
        assert "The connection is encrypted" in body
    # The sink offers no STARTTLS: a sender that requires it must say so, not send in clear.
    auth_client.post(
        "/settings/senders/new/",
        _form(smtp_sink.port, alias="plain", security="starttls", username=""),
    )
    body = auth_client.post("/settings/senders/plain/test/", follow=True).content.decode()
    assert "does not offer this: STARTTLS extension not supported by server" in body


def test_a_deleted_sender_refuses_the_start_even_through_a_stale_cache(settings):
    settings.MAILCENTER_SENDERS_CACHE_SECONDS = 3600
    services.sender_create("bulk", {"backend": "outbox", "security": "none"})
    assert selectors.sender_config("bulk") is not None
    Sender.objects.filter(alias="bulk").delete()  # as another process would
    assert selectors.sender_config("bulk") is not None  # this process has not seen it yet
    mailing_list = MailingListFactory()
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list], sender="bulk")
    with pytest.raises(campaign_services.CampaignError, match="not configured"):
        campaign_services.campaign_start(campaign.pk)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DRAFT


def test_error_reports_mask_the_posted_secrets(auth_client):
    from django.views.debug import SafeExceptionReporterFilter

    response = auth_client.post("/settings/senders/new/", _form(2525, api_key=API_KEY))
    posted = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert posted["password"] != PASSWORD
    assert posted["api_key"] != API_KEY
    assert posted["host"] == "127.0.0.1"


def test_a_ui_sender_can_be_throttled(auth_client):
    from campaigns import conf as campaign_conf
    from mailcenter.delivery.throttle import Limit

    response = auth_client.post("/settings/senders/new/", _form(2525, rate="0.5", concurrency="3"))
    assert response.status_code == 302
    assert campaign_conf.sender_throttle("relay") == ([Limit(1, 2.0)], 3)
    response = auth_client.post("/settings/senders/relay/", _form(2525, rate="-1"))
    assert response.status_code == 400
    assert Sender.objects.get().rate == 0.5


def test_tls_is_verified_unless_turned_off():
    fields = {"backend": "smtp", "host": "127.0.0.1", "security": "tls"}
    assert services.sender_create("strict", fields).verify_tls is True
    assert services.sender_create("lax", {**fields, "verify_tls": False}).verify_tls is False
    assert selectors.sender_config("lax")["OPTIONS"]["verify_tls"] is False
    assert selectors.sender_config("strict")["OPTIONS"]["port"] == 465
