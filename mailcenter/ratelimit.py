"""Fixed-window rate limits on public forms, counted in the shared cache.

The cache is Redis when Redis is the broker, so the limit holds across web processes and
machines; on the embedded default it is a file cache under var/, shared by the web
workers of the one machine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def hit(key: str, limit: int, window: int) -> bool:
    """Count one hit for ``key``; return True when it is over ``limit`` in ``window`` s."""
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        count = 1
    return count > limit


def limit_posts(scope: str, limit: int, window: int) -> Callable:
    """Refuse a client's POSTs to a view beyond ``limit`` per ``window`` seconds (HTTP 429).

    Keyed by REMOTE_ADDR only: X-Forwarded-For is set by the client unless a proxy we
    trust rewrites it.
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method == "POST":
                ip = request.META.get("REMOTE_ADDR") or "unknown"
                if hit(f"ratelimit:{scope}:{ip}", limit, window):
                    response = render(
                        request, "mailcenter/rate_limited.html", {"minutes": window // 60}
                    )
                    response.status_code = 429
                    response["Retry-After"] = str(window)
                    return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
