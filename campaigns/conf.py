"""Settings the send loop reads, each with its default; read them through this module only.

Each is a Django setting of the same name when one is set (tests override them that way),
else the environment variable of that name, else the default. They are functions rather
than constants so that a test's ``settings`` override applies.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

# Greylisting servers accept a retry after a few minutes (Postfix's postgrey: 5 min), so
# the first retry waits that long; doubling from there, capped, for up to three days, which
# is how long Postfix and Exim keep a message before giving up (maximal_queue_lifetime).
DEFAULT_RETRY_BASE_SECONDS = 300.0
DEFAULT_RETRY_MAX_SECONDS = 4 * 3600.0
DEFAULT_RETRY_MAX_AGE_SECONDS = 3 * 24 * 3600.0
# How many attempt replies a message keeps; enough for three days of backoff.
DEFAULT_ATTEMPT_LOG_SIZE = 20
# A destination domain that answers 421, or defers this many messages of one batch, is
# left alone for the retry base delay: more connections would only prolong its throttling.
DEFAULT_DOMAIN_BURST = 5
# Auto-pause: when at least THRESHOLD of the last WINDOW attempts of a campaign failed or
# were deferred (and at least MIN_ATTEMPTS were made), sending stops and says why.
DEFAULT_AUTOPAUSE_WINDOW = 100
DEFAULT_AUTOPAUSE_THRESHOLD = 0.5
DEFAULT_AUTOPAUSE_MIN_ATTEMPTS = 20
# A sending campaign none of whose messages was claimed for this long has lost its task
# chains (broker restart, killed worker) and is restarted by the periodic tick.
DEFAULT_TICK_IDLE_SECONDS = 60.0


def _number(name: str, default: float) -> float:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def retry_base_seconds() -> float:
    """First retry delay after a 4xx or a lost connection (``MAILCENTER_RETRY_BASE_SECONDS``)."""
    return _number("MAILCENTER_RETRY_BASE_SECONDS", DEFAULT_RETRY_BASE_SECONDS)


def retry_max_seconds() -> float:
    """Longest retry delay (``MAILCENTER_RETRY_MAX_SECONDS``)."""
    return _number("MAILCENTER_RETRY_MAX_SECONDS", DEFAULT_RETRY_MAX_SECONDS)


def retry_max_age_seconds() -> float:
    """After this long since its first attempt a deferred message fails
    (``MAILCENTER_RETRY_MAX_AGE_SECONDS``)."""
    return _number("MAILCENTER_RETRY_MAX_AGE_SECONDS", DEFAULT_RETRY_MAX_AGE_SECONDS)


def attempt_log_size() -> int:
    """Attempt replies kept per message (``MAILCENTER_ATTEMPT_LOG_SIZE``)."""
    return int(_number("MAILCENTER_ATTEMPT_LOG_SIZE", DEFAULT_ATTEMPT_LOG_SIZE))


def domain_burst() -> int:
    """Deferrals from one domain in one batch that slow the domain down
    (``MAILCENTER_DOMAIN_BURST``)."""
    return int(_number("MAILCENTER_DOMAIN_BURST", DEFAULT_DOMAIN_BURST))


def autopause_window() -> int:
    """How many recent attempts the auto-pause looks at (``MAILCENTER_AUTOPAUSE_WINDOW``)."""
    return int(_number("MAILCENTER_AUTOPAUSE_WINDOW", DEFAULT_AUTOPAUSE_WINDOW))


def autopause_threshold() -> float:
    """Share of failed or deferred attempts that pauses a campaign, 0 to 1; 0 turns the
    auto-pause off (``MAILCENTER_AUTOPAUSE_THRESHOLD``)."""
    return _number("MAILCENTER_AUTOPAUSE_THRESHOLD", DEFAULT_AUTOPAUSE_THRESHOLD)


def autopause_min_attempts() -> int:
    """Attempts needed before the auto-pause judges (``MAILCENTER_AUTOPAUSE_MIN_ATTEMPTS``)."""
    return int(_number("MAILCENTER_AUTOPAUSE_MIN_ATTEMPTS", DEFAULT_AUTOPAUSE_MIN_ATTEMPTS))


def tick_idle_seconds() -> float:
    """Idle time after which the tick restarts a sending campaign's tasks
    (``MAILCENTER_TICK_IDLE_SECONDS``)."""
    return _number("MAILCENTER_TICK_IDLE_SECONDS", DEFAULT_TICK_IDLE_SECONDS)


# -- throttling ----------------------------------------------------------------------------

# Messages per minute per destination domain for the large mailbox providers, from one
# sending IP/account. They publish no numbers, only that bursts from a new or cold sender
# are deferred (Gmail 421 4.7.28, Outlook 451 4.7.650, Yahoo 421 4.7.0 [TS]); these
# figures are conservative and overridable with MAILCENTER_DOMAIN_RATES. "*" would apply
# to every other domain.
DEFAULT_DOMAIN_RATES: dict[str, int] = {
    **dict.fromkeys(["gmail.com", "googlemail.com"], 1200),
    **dict.fromkeys(["outlook.com", "hotmail.com", "live.com", "msn.com"], 600),
    **dict.fromkeys(["yahoo.com", "ymail.com", "aol.com"], 600),
    **dict.fromkeys(["icloud.com", "me.com", "mac.com"], 300),
    **dict.fromkeys(["mail.ru", "bk.ru", "list.ru", "inbox.ru", "yandex.ru", "ya.ru"], 300),
}
# Parallel connections per destination domain, for backends that connect to the
# recipient's own servers (``mx``). Gmail and Outlook start deferring past about ten.
DEFAULT_DOMAIN_CONNECTIONS: dict[str, int] = {"*": 10}
# Longest a send task waits for the limiter before handing over to a fresh task.
DEFAULT_THROTTLE_MAX_WAIT = 1.0
# Messages put back by a domain limit within this horizon are waited for by the task chain;
# longer holds (a slowed-down domain's minutes) are left to the periodic tick.
DEFAULT_THROTTLE_HORIZON = 60.0


def _mapping(name: str, default: dict[str, int]) -> dict[str, int]:
    value = getattr(settings, name, None)
    if value is None and os.environ.get(name):
        import json

        value = json.loads(os.environ[name])
    merged = dict(default)
    merged.update({str(k).lower(): int(v) for k, v in (value or {}).items()})
    return merged


def domain_rates() -> dict[str, int]:
    """Messages per minute per destination domain, the defaults above overridden by
    ``MAILCENTER_DOMAIN_RATES`` (a dict, or JSON in the environment); 0 means no limit."""
    return _mapping("MAILCENTER_DOMAIN_RATES", DEFAULT_DOMAIN_RATES)


def domain_connections() -> dict[str, int]:
    """Parallel connections per destination domain for the ``mx`` backend
    (``MAILCENTER_DOMAIN_CONNECTIONS``, "*" for any domain); 0 means no limit."""
    return _mapping("MAILCENTER_DOMAIN_CONNECTIONS", DEFAULT_DOMAIN_CONNECTIONS)


def domain_limit(table: dict[str, int], domain: str) -> int:
    """The domain's entry, else the "*" entry, else 0 (no limit)."""
    return table.get(domain, table.get("*", 0))


def throttle_max_wait() -> float:
    """Longest wait inside a send task for the limiter (``MAILCENTER_THROTTLE_MAX_WAIT``)."""
    return _number("MAILCENTER_THROTTLE_MAX_WAIT", DEFAULT_THROTTLE_MAX_WAIT)


def throttle_horizon() -> float:
    """Put-backs due within this many seconds keep the task chain waiting
    (``MAILCENTER_THROTTLE_HORIZON``)."""
    return _number("MAILCENTER_THROTTLE_HORIZON", DEFAULT_THROTTLE_HORIZON)


def sender_throttle(alias: str) -> tuple[list[Any], int]:
    """The sender's sliding windows and concurrency, from its OPTIONS: ``rate`` (messages
    per second), ``window`` ({"count": N, "seconds": S}, or a list of them) and
    ``concurrency`` (batches in flight at once). ([], 0) when it sets none."""
    from mailcenter.delivery import sender_config
    from mailcenter.delivery.throttle import Limit

    options = (sender_config(alias) or {}).get("OPTIONS") or {}
    limits: list[Limit] = []
    rate = float(options.get("rate") or 0)
    if rate > 0:
        # 10/s → 10 per second; 0.5/s → 1 per 2 seconds; 2.5/s → 2 per 0.8 s.
        count = max(int(rate), 1)
        limits.append(Limit(count, count / rate))
    windows = options.get("window") or []
    for window in [windows] if isinstance(windows, dict) else windows:
        count, seconds = int(window.get("count") or 0), float(window.get("seconds") or 0)
        if count > 0 and seconds > 0:
            limits.append(Limit(count, seconds))
    return limits, int(options.get("concurrency") or 0)
