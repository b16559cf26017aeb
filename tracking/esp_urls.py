"""django-anymail's tracking webhooks, one URL per ESP (``<esp>/tracking/``), mounted at
``/webhooks/anymail/``. Its inbound-mail webhooks are left out: nothing here receives
mail that way, and an endpoint nobody uses is one more to secure.

Anymail's views need no login (the ESP has none) and no CSRF token; each checks the
basic auth of ``ANYMAIL["WEBHOOK_SECRET"]`` and, where the ESP signs its calls, the
signature (see settings.ANYMAIL).
"""

from __future__ import annotations

from anymail import urls as anymail_urls

app_name = "anymail"
urlpatterns = [
    pattern
    for pattern in anymail_urls.urlpatterns
    if pattern.name and pattern.name.endswith("_tracking_webhook")
]
