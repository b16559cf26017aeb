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
from anymail.utils import get_anymail_setting
from django.http import HttpResponseNotFound
from django.urls import URLPattern

logger = logging.getLogger(__name__)


def _configured_only(view):
    """Answer 404, not 500, for an ESP whose key is not set or whose optional package
    (boto3 for Amazon SES, svix for Resend) is not installed: such an endpoint is not in
    use, and anyone on the web could otherwise fill the error log through it.

    Also 404 for an ESP that signs nothing (Postmark, SparkPost, Brevo …) while
    ``MAILCENTER_ANYMAIL_WEBHOOK_SECRET`` is unset: anymail would only warn and then take
    anyone's bounces and complaints, and a forged complaint suppresses a real address."""
    view_class = getattr(view, "view_class", None)

    def unsigned(**initkwargs) -> bool:
        # Whether this ESP's calls carry no signature we check: anymail decides that per
        # view, for some (SendGrid, Resend) by whether their key is set.
        instance = view_class(**initkwargs)
        return bool(instance.warn_if_no_basic_auth)

    @functools.wraps(view)  # keeps csrf_exempt and login_not_required
    def guarded(request, *args, **kwargs):
        try:
            if (
                view_class is not None
                and not get_anymail_setting("webhook_secret", default=[])
                and unsigned(**getattr(view, "view_initkwargs", {}))
            ):
                logger.warning(
                    "ESP webhook %s refused: it is authenticated only by basic auth, and "
                    "MAILCENTER_ANYMAIL_WEBHOOK_SECRET is not set",
                    request.path,
                )
                return HttpResponseNotFound()
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
