"""Settings come from the environment; each case imports them afresh in a subprocess,
because settings are read once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from mailcenter.envparse import database_from_url, env_bool

ROOT = Path(__file__).resolve().parents[2]

# Variables that would leak this machine's configuration into the case under test.
_SCRUBBED = (
    "MAILCENTER_MODE",
    "SECRET_KEY",
    "DEBUG",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "MAILCENTER_SENDERS",
    "SMTP_HOST",
    "MAILCENTER_BASE_URL",
    "ALLOWED_HOSTS",
)

_PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": settings.SECRET_KEY,
    "ENGINE": settings.DATABASES["default"]["ENGINE"],
    "DB_NAME": str(settings.DATABASES["default"]["NAME"]),
    "BROKER": settings.CELERY_BROKER_URL,
    "SENDERS": settings.MAILCENTER_SENDERS,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
}))
"""


def _settings_process(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    clean.update(
        {"DJANGO_SETTINGS_MODULE": "mailcenter.settings", "MAILCENTER_VAR_DIR": str(tmp_path)}
    )
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", _PRINT_SETTINGS],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _loaded(tmp_path: Path, **env: str) -> dict:
    proc = _settings_process(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "secret",
    [None, "", "django-insecure-mailcenter-development-key", "django-insecure-abc123"],
    ids=["absent", "empty", "development-key", "django-insecure"],
)
def test_production_mode_refuses_a_missing_or_development_secret_key(tmp_path, secret):
    env = {"MAILCENTER_MODE": "production"}
    if secret is not None:
        env["SECRET_KEY"] = secret
    proc = _settings_process(tmp_path, **env)
    assert proc.returncode != 0
    assert "ImproperlyConfigured" in proc.stderr
    assert "SECRET_KEY" in proc.stderr
    assert "refusing to start" in proc.stderr


def test_production_mode_refuses_at_manage_py_check(tmp_path):
    clean = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    clean.update({"MAILCENTER_MODE": "production", "MAILCENTER_VAR_DIR": str(tmp_path)})
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "SECRET_KEY" in proc.stderr


def test_production_mode_starts_with_a_real_secret_key(tmp_path):
    key = "x" * 20 + "a-real-long-random-production-value"
    loaded = _loaded(tmp_path, MAILCENTER_MODE="production", SECRET_KEY=key)
    assert loaded["SECRET_KEY"] == key
    assert not (tmp_path / "secret_key").exists()


def test_embedded_defaults_debug_off_sqlite_filesystem_broker_outbox(tmp_path):
    loaded = _loaded(tmp_path)
    assert loaded["DEBUG"] is False
    assert loaded["ENGINE"] == "django.db.backends.sqlite3"
    assert loaded["DB_NAME"] == str(tmp_path / "mailcenter.sqlite3")
    assert loaded["BROKER"] == "filesystem://"
    assert (tmp_path / "celery" / "in").is_dir()
    assert loaded["SENDERS"] == {"default": {"BACKEND": "outbox", "OPTIONS": {}}}
    assert "127.0.0.1" in loaded["ALLOWED_HOSTS"]


def test_embedded_mode_generates_and_keeps_a_secret_key(tmp_path):
    first = _loaded(tmp_path)["SECRET_KEY"]
    second = _loaded(tmp_path)["SECRET_KEY"]
    assert first == second
    assert len(first) >= 50
    assert not first.startswith("django-insecure")
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_debug_is_read_as_a_strict_boolean(tmp_path):
    assert _loaded(tmp_path, DEBUG="1")["DEBUG"] is True
    proc = _settings_process(tmp_path, DEBUG="maybe")
    assert proc.returncode != 0
    assert "DEBUG must be a boolean" in proc.stderr


def test_smtp_variables_configure_the_default_sender(tmp_path):
    loaded = _loaded(tmp_path, SMTP_HOST="smtp.example.net", SMTP_PORT="2525")
    sender = loaded["SENDERS"]["default"]
    assert sender["BACKEND"] == "smtp"
    assert sender["OPTIONS"]["host"] == "smtp.example.net"
    assert sender["OPTIONS"]["port"] == 2525
    assert sender["OPTIONS"]["security"] == "starttls"


def test_senders_json_wins_and_bad_json_is_refused(tmp_path):
    senders = {"default": {"BACKEND": "outbox"}, "relay": {"BACKEND": "smtp", "OPTIONS": {}}}
    loaded = _loaded(tmp_path, MAILCENTER_SENDERS=json.dumps(senders), SMTP_HOST="ignored")
    assert loaded["SENDERS"] == senders
    proc = _settings_process(tmp_path, MAILCENTER_SENDERS="{not json")
    assert proc.returncode != 0
    assert "MAILCENTER_SENDERS is not valid JSON" in proc.stderr


def test_unknown_mode_is_refused(tmp_path):
    proc = _settings_process(tmp_path, MAILCENTER_MODE="staging")
    assert proc.returncode != 0
    assert "MAILCENTER_MODE" in proc.stderr


def test_database_url_postgres():
    db = database_from_url(
        "postgres://mailer:p%40ss%2Fword@db.internal:6432/mail_center?sslmode=require"
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert db["NAME"] == "mail_center"
    assert db["USER"] == "mailer"
    assert db["PASSWORD"] == "p@ss/word"
    assert db["HOST"] == "db.internal"
    assert db["PORT"] == "6432"
    assert db["OPTIONS"] == {"sslmode": "require"}
    assert db["CONN_HEALTH_CHECKS"] is True


def test_database_url_postgres_minimal():
    db = database_from_url("postgresql://postgres@127.0.0.1/mailcenter")
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "postgres",
        "",
        "127.0.0.1",
        "",
        "mailcenter",
    )
    assert db["OPTIONS"] == {}


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:////srv/mailcenter/db.sqlite3", "/srv/mailcenter/db.sqlite3"),
        ("sqlite:///var/db.sqlite3", "/var/db.sqlite3"),
        ("sqlite://", ":memory:"),
    ],
)
def test_database_url_sqlite(url, name):
    db = database_from_url(url)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == name
    # Web and worker write at once: they wait for the lock instead of failing.
    assert db["OPTIONS"]["timeout"] >= 5


def test_database_url_unknown_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="mysql"):
        database_from_url("mysql://root@localhost/mail")


def test_env_bool(monkeypatch):
    monkeypatch.delenv("MC_TEST_FLAG", raising=False)
    assert env_bool("MC_TEST_FLAG") is False
    assert env_bool("MC_TEST_FLAG", default=True) is True
    for raw, value in [("1", True), ("Yes", True), ("on", True), ("0", False), ("off", False)]:
        monkeypatch.setenv("MC_TEST_FLAG", raw)
        assert env_bool("MC_TEST_FLAG") is value
