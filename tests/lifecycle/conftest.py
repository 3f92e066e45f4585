"""Lifecycle test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _forget_cached_versions():
    """The engine caches published definitions per (workflow id, version)
    for the process; tables are emptied between tests and SQLite reuses
    ids, so a cached graph of an earlier test would answer for a new one."""
    try:
        from app.automation import engine_state
    except ImportError:
        yield
        return
    engine_state._definitions.clear()
    yield
    engine_state._definitions.clear()
