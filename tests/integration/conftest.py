from __future__ import annotations

import os
import socket

import pytest


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
