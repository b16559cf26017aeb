"""Project-wide middleware."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as _DjangoLoginRequired
from django.utils import timezone

# The REST API authenticates with tokens and answers 401/403 itself, in JSON.
_API_PREFIX = "/api/"
SESSION_KEY = "mailcenter_time_zone"


class LoginRequiredMiddleware(_DjangoLoginRequired):
    """Every page needs a login unless its view is marked ``login_not_required``."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(_API_PREFIX):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class UserTimezoneMiddleware:
    """Show times in the operator's zone; they are stored in UTC."""

    def __init__(self, get_response):
        self.get_response = get_response
        try:
            self.zone = zoneinfo.ZoneInfo(settings.MAILCENTER_DISPLAY_TIME_ZONE)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.zone = zoneinfo.ZoneInfo("UTC")

    def __call__(self, request):
        name = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            # Cached in the session so the preference costs no query per request.
            if SESSION_KEY not in request.session:
                from mailcenter.models import UserSettings

                prefs = UserSettings.objects.filter(user=user).first()
                request.session[SESSION_KEY] = prefs.time_zone if prefs else ""
            name = request.session.get(SESSION_KEY)
        zone = self.zone
        if name:
            try:
                zone = zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                zone = self.zone
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
