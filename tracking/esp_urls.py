"""django-anymail's tracking webhooks, one URL per ESP (``<esp>/tracking/``), mounted at
``/webhooks/anymail/``. Its inbound-mail webhooks are left out: nothing here receives
mail that way, and an endpoint nobody uses is one more to secure.

Anymail's views need no login (the ESP has none) and no CSRF token; each checks the
basic auth of ``ANYMAIL["WEBHOOK_SECRET"]`` and, where the ESP signs its calls, the
signature (see settings.ANYMAIL).
"""

from __future__ import annotations

import functools
import logging

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailConfigurationError
from django.http import HttpResponseNotFound
from django.urls import URLPattern

logger = logging.getLogger(__name__)


def _configured_only(view):
    """Answer 404, not 500, for an ESP whose key is not set or whose optional package
    (boto3 for Amazon SES, svix for Resend) is not installed: such an endpoint is not in
    use, and anyone on the web could otherwise fill the error log through it."""

    @functools.wraps(view)  # keeps csrf_exempt and login_not_required
    def guarded(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except AnymailConfigurationError as exc:
            logger.warning("ESP webhook %s is not configured: %s", request.path, exc)
            return HttpResponseNotFound()

    return guarded


app_name = "anymail"
urlpatterns = [
    URLPattern(
        pattern.pattern, _configured_only(pattern.callback), pattern.default_args, pattern.name
    )
    for pattern in anymail_urls.urlpatterns
    if pattern.name and pattern.name.endswith("_tracking_webhook")
]
