from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from mailcenter.celery import app as celery_app
from tests.integration.crash import SlowPeer
from tests.smtppeers import ScriptedSMTPServer

ROOT = Path(__file__).resolve().parents[2]
# The crash-safety tests' worker: processes and messages per batch. A crash can put at most
# CONCURRENCY x BATCH messages in doubt, which is the duplicate bound they check.
BATCH = 5
CONCURRENCY = 2


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def services_available() -> str | None:
    """Return why the integration tests cannot run here, or None when they can."""
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return "DATABASE_URL does not point at PostgreSQL"
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        return "CELERY_BROKER_URL does not point at Redis"
    if not _reachable("127.0.0.1", 6379):
        return "Redis is not reachable on 127.0.0.1:6379"
    return None


def pytest_collection_modifyitems(config, items):
    reason = services_available()
    if reason and "integration" in os.environ.get("MAILCENTER_REQUIRE", ""):
        # CI set the services up: a skip here would hide a broken environment.
        raise pytest.UsageError(f"MAILCENTER_REQUIRE asks for the integration tests: {reason}")
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def celery_worker(env: dict[str, str], log_path: Path, concurrency: int) -> subprocess.Popen:
    """``celery -A mailcenter worker`` in its own process group (so a signal to the group
    takes the pool too), its output going to ``log_path`` rather than a pipe nobody reads."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mailcenter",
                "worker",
                "-l",
                "warning",
                "--concurrency",
                str(concurrency),
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture
def slow_server():
    with ScriptedSMTPServer(SlowPeer()) as server:
        yield server


@pytest.fixture
def start_worker(slow_server, settings, tmp_path):
    """Start Celery workers in their own process groups (so SIGKILL takes the pool too).

    ``start(**env)`` overrides the worker's environment (another broker or database); its
    log goes to ``tmp_path/worker-N.log``, shown when a test fails.
    """
    db = django_settings.DATABASES["default"]
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    database_url = f"postgres://{db['USER'] or 'postgres'}@{host}/{db['NAME']}"
    senders = {"default": slow_server.sender_config(timeout=5)}
    settings.MAILCENTER_SENDERS = senders
    settings.MAILCENTER_CLAIM_TIMEOUT = 3
    settings.MAILCENTER_TICK_IDLE_SECONDS = 1
    settings.MAILCENTER_SEND_CONCURRENCY = CONCURRENCY
    celery_app.control.purge()
    base_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": django_settings.SECRET_KEY,
        "MAILCENTER_SENDERS": json.dumps(senders),
        "MAILCENTER_BATCH_SIZE": str(BATCH),
        "MAILCENTER_SEND_CONCURRENCY": str(CONCURRENCY),
        "MAILCENTER_CLAIM_TIMEOUT": "3",
    }
    procs: list[subprocess.Popen] = []

    def start(**env: str) -> subprocess.Popen:
        log_path = tmp_path / f"worker-{len(procs)}.log"
        proc = celery_worker({**base_env, **env}, log_path, CONCURRENCY)
        procs.append(proc)
        return proc

    start.env = base_env  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    celery_app.control.purge()
