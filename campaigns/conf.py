"""Settings the send loop reads, each with its default; read them through this module only.

Each is a Django setting of the same name when one is set (tests override them that way),
else the environment variable of that name, else the default. They are functions rather
than constants so that a test's ``settings`` override applies.
"""

from __future__ import annotations

import os

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
