"""The open pixel and the click redirect without Django's request machinery.

They are most of a campaign's HTTP traffic and need none of what a page needs (sessions,
authentication, CSRF, locale, the URL resolver, templates), which costs several times
the work they do. This WSGI wrapper answers them itself and hands every other request
to Django unchanged. Anything it is not sure about (a host Django would refuse, a token
that does not verify, a message or link that does not exist, another method) goes to
Django too, so errors look and behave exactly as before: 400, 404, 405.

A request here normally touches no database: the signed token is the authority (a hit for
a message deleted since is dropped by the writer), the hit goes to the Redis queue, and a
click token names its campaign, whose link table each process keeps for a minute (it is
fixed when the campaign starts). Only the embedded default (hits written in the request),
a link table not yet loaded, and click tokens made before they named their campaign use
the database, inside Django's request signals so connections are managed as for a view.
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate

from django.core import signals
from django.http.request import split_domain_port, validate_host
from django.utils.encoding import iri_to_uri

_PATH = re.compile(r"^/t/([oc])/([^/]+)/$")
_NO_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"
# What Django's middleware adds to these responses (security, clickjacking).
_COMMON = [
    ("Cache-Control", _NO_CACHE),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
]


# campaign id -> (loaded at, {link index: url}); bounded so a long-lived worker that
# sees many campaigns keeps only recent ones.
_LINKS: dict[int, tuple[float, dict[int, str]]] = {}
LINK_CACHE_SECONDS = 60.0
LINK_CACHE_MAX = 256


class TrackingFastPath:
    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        match = _PATH.match(environ.get("PATH_INFO", ""))
        if match is None or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.app(environ, start_response)
        database = _Database(environ)
        try:
            answer = _answer(environ, match.group(1), match.group(2), database)
        finally:
            database.finish()
        if answer is None:
            return self.app(environ, start_response)
        status, headers, body = answer
        headers = [*headers, *_COMMON, ("Expires", formatdate(usegmt=True))]
        start_response(status, headers)
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]


class _Database:
    """Send Django's request signals around database use, only when there is some: they
    close connections past CONN_MAX_AGE or broken, as Django's handler does."""

    def __init__(self, environ) -> None:
        self.environ = environ
        self.started = False

    def use(self) -> None:
        if not self.started:
            self.started = True
            signals.request_started.send(sender=TrackingFastPath, environ=self.environ)

    def finish(self) -> None:
        if self.started:
            signals.request_finished.send(sender=TrackingFastPath)


def _host_ok(environ) -> bool:
    from django.conf import settings

    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _record(hit, database: _Database) -> None:
    from tracking import conf, queue

    if conf.tracking_queue_url() is None:
        database.use()  # the embedded default writes the hit in the request
    queue.hit_record(hit)


def _campaign_link(campaign_id: int, index: int, database: _Database) -> str | None:
    from campaigns.models import CampaignLink

    now = time.monotonic()
    cached = _LINKS.get(campaign_id)
    if cached is None or now - cached[0] > LINK_CACHE_SECONDS:
        database.use()
        table = dict(
            CampaignLink.objects.filter(campaign_id=campaign_id).values_list("index", "url")
        )
        if len(_LINKS) >= LINK_CACHE_MAX:
            _LINKS.clear()
        cached = _LINKS[campaign_id] = (now, table)
    return cached[1].get(index)


def _message_link(message_id: int, index: int, database: _Database) -> str | None:
    from campaigns.models import CampaignLink

    database.use()
    return (
        CampaignLink.objects.filter(campaign__messages__pk=message_id, index=index)
        .values_list("url", flat=True)
        .first()
    )


def _answer(environ, kind: str, token: str, database: _Database):
    """(status, headers, body) for a request we can answer, else None."""
    from tracking import tokens
    from tracking.models import Event
    from tracking.services import Hit
    from tracking.views import PIXEL

    if not _host_ok(environ):
        return None
    if kind == "o":
        try:
            message_id, _index = tokens.read_token("open", token)
        except tokens.BadToken:
            return None
        _record(Hit.from_request(Event.Kind.OPEN, message_id, None, environ), database)
        headers = [("Content-Type", "image/gif"), ("Content-Length", str(len(PIXEL)))]
        return "200 OK", headers, PIXEL
    try:
        message_id, index, campaign_id = tokens.read_click_token(token)
    except tokens.BadToken:
        return None
    if campaign_id is None:
        url = _message_link(message_id, index, database)
    else:
        url = _campaign_link(campaign_id, index, database)
    if url is None or "\r" in url or "\n" in url:
        return None  # Django answers 404, or refuses a header that is not one line
    _record(Hit.from_request(Event.Kind.CLICK, message_id, index, environ), database)
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Location", iri_to_uri(url)),
        ("Content-Length", "0"),
    ]
    return "302 Found", headers, b""
