from __future__ import annotations

import uuid

import pytest

from mailcenter.celery import app as celery_app
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _eager_celery(request):
    """Run tasks inline in the default suite; integration tests use a real worker."""
    if request.node.get_closest_marker("integration"):
        yield
        return
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _tracking_queue(request, settings):
    """Opens and clicks are written in the request, except in the integration tests, which
    queue them in Redis as deployed (keys of their own) and drain the queue to count."""
    if request.node.get_closest_marker("integration"):
        settings.MAILCENTER_TRACKING_QUEUE_PREFIX = f"mailcenter:test:{uuid.uuid4().hex}"
    else:
        settings.MAILCENTER_TRACKING_QUEUE = "direct"


@pytest.fixture(autouse=True)
def _fresh_link_tables():
    """The redirect keeps campaigns' link tables per process; test databases reuse ids."""
    from tracking import fastpath

    fastpath._LINKS.clear()
    yield
    fastpath._LINKS.clear()


@pytest.fixture(autouse=True)
def _private_cache(settings):
    """Each test gets an empty cache, so rate limits and cached lookups never leak."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{uuid.uuid4().hex}",
        }
    }


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    # Password hashing is deliberately slow; tests log in often.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(db):
    return UserFactory(username="marketer", email="marketer@example.com")


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def smtp_sink():
    """A real SMTP server on 127.0.0.1 that keeps every message it accepts."""
    from tests.smtpsink import SMTPSink

    sink = SMTPSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp_sender(settings, smtp_sink):
    """Make the default sender relay to ``smtp_sink``."""
    settings.MAILCENTER_SENDERS = {"default": smtp_sink.sender_config()}
    return smtp_sink


@pytest.fixture
def browser(monkeypatch):
    """A headless Chromium, closed after the test."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    from django.db import connections

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    # Playwright's sync API keeps an event loop on this thread, which Django takes for an
    # async context; the ORM calls a test makes between browser steps are plain blocking
    # calls, so that guard does not apply.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()
        # ORM calls made while Playwright's loop ran got their own connections; close them
        # here or they outlive the test and block dropping a PostgreSQL test database.
        connections.close_all()
