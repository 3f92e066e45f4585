"""Lifecycle test fixtures."""

from __future__ import annotations

import pytest

# The browser fixtures of tests/e2e (live server, Chromium, signed-in page).
from tests.e2e.conftest import (  # noqa: F401
    browser,
    live_server,
    logged_in_page,
    page,
    screenshot,
)


@pytest.fixture(autouse=True)
def _forget_cached_versions():
    """The engine caches published definitions per (workflow id, version)
    for the process; tables are emptied between tests and SQLite reuses
    ids, so a cached graph of an earlier test would answer for a new one."""
    try:
        from app.automation.engine import state as engine_state
    except ImportError:
        yield
        return
    engine_state._definitions.clear()
    yield
    engine_state._definitions.clear()
