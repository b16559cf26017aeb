"""Every marketer page is behind login; only the public endpoints are not."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

PUBLIC_PREFIXES = ("t/", "u/", "accounts/", "api/", "admin/", "static/", "webhooks/anymail/")


def _paths(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _paths(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str) -> str:
    for converter in ("<int:pk>", "<int:list_pk>", "<int:campaign_pk>", "<int:import_pk>"):
        route = route.replace(converter, "1")
    return "/" + route.replace("^", "").replace("$", "")


def test_every_marketer_page_redirects_anonymous_users_to_login(client):
    checked = 0
    for route in _paths(get_resolver().url_patterns):
        if route.startswith(PUBLIC_PREFIXES) or "<" in _concrete(route) or "(?P" in route:
            continue
        path = _concrete(route)
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/login/"), path
        checked += 1
    assert checked >= 5


def test_api_without_token_is_a_json_401(client):
    response = client.get("/api/v1/lists/")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()


def test_unknown_api_path_is_json(client):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


def test_login_and_logout(client, user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    response = client.post(
        "/accounts/login/", {"username": "marketer", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_password_reset_mail_goes_through_the_default_sender(client, user, settings):
    from mailcenter.models import OutboxMessage

    # Django's test set-up swaps in the locmem backend; put ours back.
    settings.EMAIL_BACKEND = "mailcenter.delivery.django_backend.DeliveryEmailBackend"
    response = client.post("/accounts/password_reset/", {"email": "marketer@example.com"})
    assert response.status_code == 302
    item = OutboxMessage.objects.get()
    assert item.recipient == "marketer@example.com"
    assert b"/accounts/reset/" in bytes(item.raw)


def test_login_with_the_email_address(client, user):
    response = client.post(
        "/accounts/login/",
        {"username": "Marketer@Example.com", "password": "correct horse battery staple"},
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_wrong_password_says_so(client, user):
    response = client.post("/accounts/login/", {"username": "marketer", "password": "nope"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()


def test_login_attempts_are_rate_limited_per_address(client, user):
    for _ in range(10):
        response = client.post("/accounts/login/", {"username": "marketer", "password": "no"})
        assert response.status_code == 200
    response = client.post("/accounts/login/", {"username": "marketer", "password": "no"})
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert response["Retry-After"] == str(15 * 60)
    # another address is not affected
    other = client.post(
        "/accounts/login/",
        {"username": "marketer", "password": "correct horse battery staple"},
        REMOTE_ADDR="10.9.8.7",
    )
    assert other.status_code == 302


def test_password_reset_is_rate_limited(client, user, settings):
    for _ in range(5):
        assert (
            client.post("/accounts/password_reset/", {"email": "x@example.com"}).status_code == 302
        )
    assert client.post("/accounts/password_reset/", {"email": "x@example.com"}).status_code == 429
