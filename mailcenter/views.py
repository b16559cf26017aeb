from __future__ import annotations

import zoneinfo
from email import message_from_bytes, policy

from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.generic import DetailView, ListView, TemplateView

from campaigns.models import Campaign
from contacts.models import Contact, MailingList
from mailcenter.api import json_not_found, json_server_error
from mailcenter.middleware import SESSION_KEY
from mailcenter.models import OutboxMessage, UserSettings
from mailcenter.senders import selectors as sender_selectors

# Campaign HTML shown inside the app runs in an opaque origin with no script.
SANDBOX_CSP = "sandbox allow-popups allow-popups-to-escape-sandbox; script-src 'none'"


class DashboardView(TemplateView):
    template_name = "mailcenter/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["contact_counts"] = Contact.objects.aggregate(
            total=Count("id"), active=Count("id", filter=Q(status=Contact.Status.ACTIVE))
        )
        context["list_count"] = MailingList.objects.count()
        context["recent_campaigns"] = Campaign.objects.order_by("-id")[:5]
        return context


class SettingsView(TemplateView):
    template_name = "mailcenter/settings.html"

    def post(self, request, *args, **kwargs):
        name = request.POST.get("time_zone", "").strip()
        if name and name not in zoneinfo.available_timezones():
            messages.error(request, _("“%(zone)s” is not a time zone we know.") % {"zone": name})
            return redirect("settings:index")
        UserSettings.objects.update_or_create(user=request.user, defaults={"time_zone": name})
        request.session[SESSION_KEY] = name
        messages.success(request, _("Times are now shown in %(zone)s.") % {"zone": name or "UTC"})
        return redirect("settings:index")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["senders"] = sender_selectors.sender_list()
        context["base_url"] = settings.BASE_URL
        context["bounce_domain"] = settings.MAILCENTER_BOUNCE_DOMAIN
        context["time_zones"] = sorted(zoneinfo.available_timezones())
        context["current_time_zone"] = timezone.get_current_timezone_name()
        return context


class OutboxListView(ListView):
    model = OutboxMessage
    paginate_by = 50
    template_name = "mailcenter/outbox_list.html"

    def get_queryset(self):
        qs = OutboxMessage.objects.defer("raw").order_by("-id")
        query = self.request.GET.get("q", "").strip()
        if query:
            qs = qs.filter(Q(recipient__icontains=query) | Q(subject__icontains=query))
        return qs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["q"] = self.request.GET.get("q", "")
        return context


def _parts(raw: bytes) -> tuple[object, str, str]:
    parsed = message_from_bytes(bytes(raw), policy=policy.default)
    html_part = parsed.get_body(preferencelist=("html",))
    text_part = parsed.get_body(preferencelist=("plain",))
    html_body = html_part.get_content() if html_part is not None else ""
    text_body = text_part.get_content() if text_part is not None else ""
    return parsed, html_body, text_body


class OutboxDetailView(DetailView):
    model = OutboxMessage
    template_name = "mailcenter/outbox_detail.html"
    context_object_name = "item"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        parsed, _html, text_body = _parts(self.object.raw)
        context["headers"] = list(parsed.items())
        context["text_body"] = text_body
        context["source"] = bytes(self.object.raw).decode("utf-8", "replace")
        return context


@xframe_options_sameorigin
def outbox_html(request, pk: int) -> HttpResponse:
    item = get_object_or_404(OutboxMessage, pk=pk)
    _parsed, html_body, _text = _parts(item.raw)
    response = HttpResponse(html_body)
    response["Content-Security-Policy"] = SANDBOX_CSP
    return response


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return json_server_error(request)
    return render(request, "500.html", status=500)
