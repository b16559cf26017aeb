"""The open pixel and the click redirect without Django's request machinery.

They are most of a campaign's HTTP traffic and need none of what a page needs (sessions,
authentication, CSRF, locale, the URL resolver, templates), which costs several times
the work they do. This WSGI wrapper answers them itself and hands every other request
to Django unchanged. Anything it is not sure about (a host Django would refuse, a token
that does not verify, a message or link that does not exist, another method) goes to
Django too, so errors look and behave exactly as before: 400, 404, 405.
"""

from __future__ import annotations

import re
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


class TrackingFastPath:
    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        match = _PATH.match(environ.get("PATH_INFO", ""))
        if match is None or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.app(environ, start_response)
        # The signals Django's own handler sends: connections past CONN_MAX_AGE or broken
        # are closed at both ends of a request (tests disconnect them, as for Django's).
        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            answer = _answer(environ, match.group(1), match.group(2))
        finally:
            signals.request_finished.send(sender=self.__class__)
        if answer is None:
            return self.app(environ, start_response)
        status, headers, body = answer
        headers = [*headers, *_COMMON, ("Expires", formatdate(usegmt=True))]
        start_response(status, headers)
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def _host_ok(environ) -> bool:
    from django.conf import settings

    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _answer(environ, kind: str, token: str):
    """(status, headers, body) for a request we can answer, else None."""
    from campaigns.models import CampaignLink, Message
    from tracking import queue, tokens
    from tracking.models import Event
    from tracking.services import Hit
    from tracking.views import PIXEL

    if not _host_ok(environ):
        return None
    try:
        message_id, index = tokens.read_token("open" if kind == "o" else "click", token)
    except tokens.BadToken:
        return None
    if kind == "o":
        if not Message.objects.filter(pk=message_id).exists():
            return None
        queue.hit_record(Hit.from_request(Event.Kind.OPEN, message_id, None, environ))
        headers = [("Content-Type", "image/gif"), ("Content-Length", str(len(PIXEL)))]
        return "200 OK", headers, PIXEL
    url = (
        CampaignLink.objects.filter(campaign__messages__pk=message_id, index=index)
        .values_list("url", flat=True)
        .first()
    )
    if url is None or "\r" in url or "\n" in url:
        return None  # a header must be one line: Django refuses it, as before
    queue.hit_record(Hit.from_request(Event.Kind.CLICK, message_id, index, environ))
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Location", iri_to_uri(url)),
        ("Content-Length", "0"),
    ]
    return "302 Found", headers, b""
