"""Aggregates run together keep the caller's firm and their own sessions."""

from __future__ import annotations

import threading

import pytest

from app.automation.analytics.concurrent import run_together
from app.extensions import db
from app.tenancy import current_firm_id, firm_context
from tests.conftest import USING_POSTGRES


def test_each_call_sees_the_callers_firm(acme):
    with firm_context(acme.id):
        found = run_together({"a": current_firm_id, "b": current_firm_id})
    assert found == {"a": acme.id, "b": acme.id}


def test_a_single_call_runs_in_the_callers_session(acme):
    caller = db.session()
    with firm_context(acme.id):
        found = run_together({"only": lambda: db.session()})
    assert found["only"] is caller


@pytest.mark.skipif(not USING_POSTGRES, reason="SQLite runs the calls in turn")
@pytest.mark.postgres
def test_on_postgresql_calls_run_in_threads_with_sessions_of_their_own(acme):
    caller = db.session()

    def where():
        return threading.current_thread().name, db.session() is caller

    with firm_context(acme.id):
        found = run_together({"a": where, "b": where})
    names = {name for name, _ in found.values()}
    assert all(name.startswith("analytics") for name in names)
    assert not any(same for _, same in found.values())
