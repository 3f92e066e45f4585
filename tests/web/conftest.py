"""Helpers for the page tests: signed-in clients, CSRF tokens, HTMX headers,
and a statement counter for "no N+1" checks."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

HX = {"HX-Request": "true"}


@pytest.fixture
def signed_in(client, auth):
    """``token = signed_in(alice)``: logs the user in, returns a CSRF token."""

    def login(user) -> str:
        response = auth.login(user)
        assert response.status_code == 302, response.get_data(as_text=True)
        return auth.csrf_token("/automation")

    return login


@pytest.fixture
def count_queries(app):
    """``with count_queries() as seen: ...`` -> seen["n"] statements ran."""
    from app.extensions import db

    @contextmanager
    def counting():
        seen = {"n": 0, "sql": []}

        def before(conn, cursor, statement, parameters, context, executemany):
            seen["n"] += 1
            seen["sql"].append(statement)

        engine = db.engine
        event.listen(engine, "before_cursor_execute", before)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", before)

    return counting
