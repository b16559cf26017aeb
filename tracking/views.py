"""Public endpoints reached from inside an email: no login, authorised by signed tokens.

A forged or altered token is a 404, never a 500. Click targets come from the campaign's
stored link table, so these URLs cannot be turned into an open redirect.
"""

from __future__ import annotations

import base64

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns import rendering
from campaigns.models import CampaignLink, Message
from mailcenter.views import SANDBOX_CSP
from tracking import queue, services, tokens
from tracking.models import Event
from tracking.services import Hit

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _message(kind: str, token: str) -> tuple[Message, int | None]:
    try:
        message_id, link_index = tokens.read_token(kind, token)
    except tokens.BadToken:
        raise Http404 from None
    message = Message.objects.select_related("campaign", "contact").filter(pk=message_id).first()
    if message is None:
        raise Http404
    return message, link_index


def _token(kind: str, token: str) -> tuple[int, int | None]:
    try:
        return tokens.read_token(kind, token)
    except tokens.BadToken:
        raise Http404 from None


@login_not_required
@never_cache
@require_http_methods(["GET", "HEAD"])
def open_pixel(request, token: str) -> HttpResponse:
    """Answer at once: the hit is queued (tracking.queue) and written by the writer. The
    signed token is the authority: a hit for a message deleted since is dropped by the
    writer, and the reader still sees an image rather than a broken one."""
    message_id, _index = _token("open", token)
    queue.hit_record(Hit.from_request(Event.Kind.OPEN, message_id, None, request.META))
    return HttpResponse(PIXEL, content_type="image/gif")


@login_not_required
@never_cache
@require_http_methods(["GET", "HEAD"])
def click(request, token: str) -> HttpResponse:
    """Redirect to the campaign's stored link (one indexed read), queue the hit."""
    message_id, index = _token("click", token)
    url = (
        CampaignLink.objects.filter(campaign__messages__pk=message_id, index=index)
        .values_list("url", flat=True)
        .first()
    )
    if url is None:
        raise Http404
    queue.hit_record(Hit.from_request(Event.Kind.CLICK, message_id, index, request.META))
    return HttpResponseRedirect(url)


@login_not_required
@csrf_exempt  # RFC 8058: mail clients POST without a cookie or a CSRF token
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str) -> HttpResponse:
    """GET shows a confirmation page; POST (the page's button or a one-click client) acts."""
    message, _index = _message("unsubscribe", token)
    context = {"message": message, "email": message.email, "done": False}
    if request.method == "POST":
        services.contact_unsubscribe(message, meta=request.META)
        context["done"] = True
    return render(request, "tracking/unsubscribe.html", context)


@login_not_required
@never_cache
@require_http_methods(["GET"])
def webview(request, token: str) -> HttpResponse:
    message, _index = _message("webview", token)
    compiled = rendering.compile_campaign(message.campaign)
    contact = message.contact
    rendered = rendering.render_message(
        compiled,
        rendering.contact_context(
            message.email, contact.first_name, contact.last_name, contact.attributes
        ),
        message.pk,
    )
    response = HttpResponse(rendered.html)
    # Campaign HTML runs with no script and an opaque origin, even though it is our page.
    response["Content-Security-Policy"] = SANDBOX_CSP
    return response
