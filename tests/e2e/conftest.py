from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    if "e2e" not in os.environ.get("MAILCENTER_REQUIRE", ""):
        return
    # CI installed the browser: a skip here would hide a broken environment.
    if not Path("/usr/bin/chromium").exists():
        raise pytest.UsageError("MAILCENTER_REQUIRE asks for browser tests: no /usr/bin/chromium")
    if importlib.util.find_spec("playwright") is None:
        raise pytest.UsageError("MAILCENTER_REQUIRE asks for browser tests: no playwright")
