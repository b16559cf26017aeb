"""Project-wide middleware."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as _DjangoLoginRequired
from django.utils import timezone

# The REST API authenticates with tokens and answers 401/403 itself, in JSON.
_API_PREFIX = "/api/"


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
        name = request.session.get("timezone") if hasattr(request, "session") else None
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
