"""The WSGI fast path for the pixel and the redirect answers like the Django views do,
and leaves everything it is not sure about to Django."""

from __future__ import annotations

import pytest
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import RequestFactory

from campaigns import services as campaign_services
from campaigns.models import Message
from mailcenter.wsgi import application
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory
from tracking import tokens
from tracking.fastpath import TrackingFastPath
from tracking.models import Event

pytestmark = pytest.mark.django_db
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def message(django_capture_on_commit_callbacks, settings):
    settings.MAILCENTER_SCANNER_SECONDS = 0
    mailing_list = MailingListFactory()
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    return Message.objects.get(campaign=campaign)


class Call:
    def __init__(self, app, path, method="GET", **extra):
        environ = RequestFactory().generic(method, path, HTTP_USER_AGENT=BROWSER, **extra).environ
        self.status = None
        self.headers = {}
        # As Django's test client does: the test's transaction holds the connection, so
        # the request signals must not close it.
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        try:
            self.body = b"".join(app(environ, self.start_response))
        finally:
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)

    def start_response(self, status, headers):
        self.status = int(status.split()[0])
        self.headers = dict(headers)


def test_deployed_wsgi_app_uses_the_fast_path():
    assert isinstance(application, TrackingFastPath)


def test_pixel_and_redirect_match_the_views(message, client):
    app = TrackingFastPath(get_wsgi_application())
    pixel = f"/t/o/{tokens.make_token('open', message.pk)}/"
    link = f"/t/c/{tokens.make_token('click', message.pk, 1)}/"
    fast, slow = Call(app, pixel), client.get(pixel, HTTP_USER_AGENT=BROWSER)
    assert fast.status == slow.status_code == 200
    assert fast.body == slow.content
    for name in ("Content-Type", "Cache-Control", "X-Content-Type-Options", "X-Frame-Options"):
        assert fast.headers[name] == slow[name], name
    fast, slow = Call(app, link), client.get(link, HTTP_USER_AGENT=BROWSER)
    assert fast.status == slow.status_code == 302
    assert fast.headers["Location"] == slow["Location"] == "https://example.com/blog?a=1&b=2"
    head = Call(app, pixel, method="HEAD")
    assert head.status == 200 and head.body == b""
    events = Event.objects.order_by("id")
    assert [(e.kind, e.is_machine) for e in events] == [
        ("open", False),
        ("open", False),
        ("click", False),
        ("click", False),
        ("open", True),  # HEAD
    ]


@pytest.mark.parametrize(
    ("path", "method", "extra", "status"),
    [
        ("/t/o/nonsense/", "GET", {}, 404),
        ("/t/c/1-0.forged/", "GET", {}, 404),
        ("/t/c/{nolink}/", "GET", {}, 404),
        ("/t/o/{open}/", "POST", {}, 403),  # CSRF refuses it before the view
        ("/t/o/{open}/", "GET", {"HTTP_HOST": "evil.example"}, 400),
        ("/t/o/{open}", "GET", {}, 301),  # no trailing slash: Django's APPEND_SLASH
    ],
)
def test_anything_unsure_goes_to_django(message, path, method, extra, status):
    app = TrackingFastPath(get_wsgi_application())
    path = path.format(
        missing=tokens.make_token("open", 999999),
        nolink=tokens.make_token("click", message.pk, 9),
        open=tokens.make_token("open", message.pk),
    )
    assert Call(app, path, method=method, **extra).status == status
    assert not Event.objects.exists()


def test_pixel_of_a_deleted_message_is_an_image_and_records_nothing(message):
    """The signed token is the authority: no database read in the request, and the writer
    drops the hit of a message that no longer exists."""
    app = TrackingFastPath(get_wsgi_application())
    call = Call(app, f"/t/o/{tokens.make_token('open', 999999)}/")
    assert call.status == 200 and call.headers["Content-Type"] == "image/gif"
    assert not Event.objects.exists()


def test_click_tokens_name_their_campaign_and_old_ones_still_work(message):
    app = TrackingFastPath(get_wsgi_application())
    new = tokens.make_token("click", message.pk, 1, message.campaign_id)
    old = tokens.make_token("click", message.pk, 1)
    assert tokens.read_click_token(new) == (message.pk, 1, message.campaign_id)
    assert tokens.read_click_token(old) == (message.pk, 1, None)
    for token in (new, old):
        call = Call(app, f"/t/c/{token}/")
        assert call.status == 302
        assert call.headers["Location"] == "https://example.com/blog?a=1&b=2"
    assert Event.objects.filter(kind="click").count() == 2


def test_click_token_with_another_campaign_id_is_refused(message):
    """The campaign id is inside the signature: it cannot be swapped to reach another
    campaign's links."""
    token = tokens.make_token("click", message.pk, 1, message.campaign_id)
    value, signature = token.rsplit(".", 1)
    tampered = f"{value[:-1]}{'2' if value[-1] != '2' else '3'}.{signature}"
    app = TrackingFastPath(get_wsgi_application())
    assert Call(app, f"/t/c/{tampered}/").status == 404
    assert not Event.objects.exists()


def test_rendered_messages_carry_campaign_click_tokens(message):
    from campaigns import rendering

    urls = rendering.tracking_urls(message.pk, 2, message.campaign_id)
    token = urls["links"][1].rsplit("/t/c/", 1)[1].strip("/")
    assert tokens.read_click_token(token) == (message.pk, 1, message.campaign_id)
