"""ANALYTICS_DATABASE_URL: the analytics' reads go to a second engine (a
read replica in production, docs/OPERATIONS.md); unset, to the primary.

Here the second URL names the same database under another spelling, so
the page must show the same numbers, and which engine ran which query
is watched on the engines themselves."""

from __future__ import annotations

import time_machine
from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import ANALYTICS_BIND, analytics_reads, db
from app.models import Workflow
from tests.analytics import history
from tests.analytics.test_dashboard import NEXT_DAY, stat, url
from tests.conftest import USING_POSTGRES, AuthActions


def _other_spelling(database_url: str) -> str:
    parsed = make_url(database_url)
    if USING_POSTGRES:
        parsed = parsed.update_query_dict({"application_name": "analytics-replica"})
    else:
        parsed = parsed.update_query_dict({"timeout": "31"})
    return parsed.render_as_string(hide_password=False)


def _watch(engine, into: list[str]) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):
        into.append(statement)


def test_the_dashboard_reads_the_analytics_database_when_one_is_set(
    app, database_url, redis_url, acme, alice
):
    workflow = history.build(acme)
    replica_url = _other_spelling(database_url)
    replica_app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "ANALYTICS_DATABASE_URL": replica_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "test-secret",
            "RATELIMIT_ENABLED": False,
            "INLINE_SCHEDULER": False,
            "SERVER_NAME": None,
            "BASE_URL": "http://localhost",
        }
    )
    with replica_app.app_context():
        primary, replica = db.engines[None], db.engines[ANALYTICS_BIND]
        assert replica.url.render_as_string(hide_password=False) == replica_url
        assert replica is not primary
        with analytics_reads():
            assert db.session.get_bind(clause=select(Workflow)) is replica
        assert db.session.get_bind(clause=select(Workflow)) is primary
        db.session.remove()
        seen: dict[str, list[str]] = {"primary": [], "replica": []}
        _watch(primary, seen["primary"])
        _watch(replica, seen["replica"])
        client = replica_app.test_client()
        with time_machine.travel(NEXT_DAY, tick=False):
            AuthActions(client).login(alice)
            response = client.get(url(workflow))
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert stat(page, "total") == "11"
        reads = [s for s in seen["replica"] if "contact_flow_states" in s]
        assert reads, "no flow state was read from the analytics engine"
        assert not [s for s in seen["primary"] if "contact_flow_states" in s]
        # The stored daily rows are written to the primary.
        assert any(s.lstrip().upper().startswith("INSERT") for s in seen["primary"])
        db.session.remove()
        replica.dispose()
        primary.dispose()


def test_without_it_the_analytics_read_the_primary(app):
    assert ANALYTICS_BIND not in db.engines
    with analytics_reads():
        assert db.session.get_bind(clause=select(Workflow)) is db.engine
