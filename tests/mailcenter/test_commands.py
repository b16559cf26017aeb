from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

User = get_user_model()
GENERATED = re.compile(r"Admin account created: user (\S+), password (\S+) — shown only once")


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def no_admin_env(monkeypatch):
    monkeypatch.delenv("MAILCENTER_ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("MAILCENTER_ADMIN_PASSWORD", raising=False)


def test_bootstrap_admin_from_environment(monkeypatch, no_admin_env):
    monkeypatch.setenv("MAILCENTER_ADMIN_EMAIL", "boss@example.com")
    monkeypatch.setenv("MAILCENTER_ADMIN_PASSWORD", "a long operator chosen pass phrase")
    output = _run("bootstrap_admin")
    user = User.objects.get()
    assert (user.username, user.email) == ("boss", "boss@example.com")
    assert user.is_superuser and user.is_staff and user.is_active
    assert user.check_password("a long operator chosen pass phrase")
    assert "a long operator chosen pass phrase" not in output  # it was never ours to show


def test_bootstrap_admin_generates_a_password_and_shows_it_once(no_admin_env):
    output = _run("bootstrap_admin")
    match = GENERATED.search(output)
    assert match, output
    username, password = match.groups()
    assert username == "admin"
    assert len(password) >= 12
    user = User.objects.get(username="admin")
    assert user.is_superuser
    assert user.check_password(password)

    again = _run("bootstrap_admin")
    assert password not in again
    assert "created" not in again
    assert len(again.strip().splitlines()) <= 1


def test_bootstrap_admin_with_email_but_no_password_generates_one(monkeypatch, no_admin_env):
    monkeypatch.setenv("MAILCENTER_ADMIN_EMAIL", "ops@example.org")
    match = GENERATED.search(_run("bootstrap_admin"))
    assert match
    assert match.group(1) == "ops"
    assert User.objects.get(username="ops").check_password(match.group(2))


def test_bootstrap_admin_is_idempotent(monkeypatch, no_admin_env):
    monkeypatch.setenv("MAILCENTER_ADMIN_PASSWORD", "first password of the admin")
    _run("bootstrap_admin")
    monkeypatch.setenv("MAILCENTER_ADMIN_PASSWORD", "a different password later")
    _run("bootstrap_admin")
    _run("bootstrap_admin")
    assert User.objects.count() == 1
    # A restart never resets the password of the account that exists.
    assert User.objects.get().check_password("first password of the admin")


def test_bootstrap_admin_leaves_an_existing_superuser_alone(no_admin_env):
    UserFactory(username="founder")
    output = _run("bootstrap_admin")
    assert list(User.objects.values_list("username", flat=True)) == ["founder"]
    assert "password" not in output


def test_bootstrap_admin_refuses_to_take_over_an_ordinary_user(no_admin_env):
    UserFactory(username="admin", is_superuser=False, is_staff=False)
    with pytest.raises(CommandError, match="not a superuser"):
        _run("bootstrap_admin")
    assert not User.objects.get(username="admin").is_superuser


def test_create_api_token_prints_a_key_that_authenticates(client):
    user = UserFactory(username="crm")
    key = _run("create_api_token", "crm").strip()
    assert re.fullmatch(r"[0-9a-f]{40}", key)
    assert Token.objects.get(user=user).key == key

    assert client.get("/api/v1/lists/").status_code in {401, 403}
    response = client.get("/api/v1/lists/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200


def test_create_api_token_is_stable(client):
    UserFactory(username="crm")
    assert _run("create_api_token", "crm") == _run("create_api_token", "crm")
    assert Token.objects.count() == 1


def test_create_api_token_unknown_user():
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        _run("create_api_token", "ghost")
    assert not Token.objects.exists()
