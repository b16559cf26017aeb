"""Settings → Webhooks. Thin: writes go through ``tracking.webhooks.services``. A secret
reaches a page once, right after it is generated (through the session), never again."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tracking.models import WebhookEndpoint
from tracking.webhooks import services

_SESSION_SLOT = "webhook_new_secret"


def _show_secret_once(request, endpoint: WebhookEndpoint, secret: str) -> None:
    request.session[_SESSION_SLOT] = {"pk": endpoint.pk, "secret": secret}


def webhook_list(request):
    context = {"endpoints": WebhookEndpoint.objects.all(), "events": services.EVENTS}
    if request.method == "POST":
        try:
            endpoint, secret = services.endpoint_create(
                request.POST.get("url", ""), request.POST.getlist("events")
            )
        except services.WebhookError as exc:
            messages.error(request, str(exc))
            context.update(value=request.POST.get("url", ""), chosen=request.POST.getlist("events"))
            return render(request, "tracking/webhook_list.html", context, status=400)
        _show_secret_once(request, endpoint, secret)
        messages.success(request, _("Endpoint added. Copy its secret now: it is shown once."))
        return redirect("settings:webhook-detail", pk=endpoint.pk)
    return render(request, "tracking/webhook_list.html", context)


def webhook_detail(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    shown = request.session.get(_SESSION_SLOT)
    secret = None
    if shown and shown.get("pk") == endpoint.pk:
        secret = shown["secret"]
        del request.session[_SESSION_SLOT]
    labels = dict(services.EVENTS)
    return render(
        request,
        "tracking/webhook_detail.html",
        {
            "endpoint": endpoint,
            "event_labels": [labels.get(name, name) for name in endpoint.events],
            "deliveries": services.endpoint_deliveries(endpoint),
            "secret": secret,
        },
    )


@require_POST
def webhook_toggle(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    services.endpoint_set_enabled(endpoint, not endpoint.enabled)
    if endpoint.enabled:
        messages.success(request, _("Endpoint enabled."))
    else:
        messages.success(request, _("Endpoint disabled: it receives nothing until enabled."))
    return redirect("settings:webhook-detail", pk=endpoint.pk)


@require_POST
def webhook_delete(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    services.endpoint_delete(endpoint)
    messages.success(request, _("Endpoint and its delivery history deleted."))
    return redirect("settings:webhooks")


@require_POST
def webhook_secret(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    _show_secret_once(request, endpoint, services.endpoint_secret_rotate(endpoint))
    messages.success(request, _("New secret generated; the old one no longer verifies."))
    return redirect("settings:webhook-detail", pk=endpoint.pk)


@require_POST
def webhook_test(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    delivery = services.endpoint_send_test(endpoint)
    if delivery.status == delivery.Status.DELIVERED:
        messages.success(
            request, _("Test event delivered (HTTP %(code)s).") % {"code": delivery.response_code}
        )
    else:
        messages.error(
            request,
            _("Test event not delivered: %(error)s")
            % {"error": delivery.last_error or delivery.response_code},
        )
    return redirect("settings:webhook-detail", pk=endpoint.pk)
