"""Flow states past FLOW_STATE_RETENTION_DAYS go, newer ones stay; on
PostgreSQL a month at a time (its partition dropped) and the months ahead
are made before they are needed (docs/OPERATIONS.md "Data that grows")."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select, text

from app.automation.operations.retention import run_retention
from app.config import ConfigurationError, from_environment
from app.extensions import db
from app.models import ContactFlowState, partitioning
from tests.analytics import history
from tests.analytics.history import A_PATH, Run
from tests.conftest import USING_POSTGRES

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LATER = datetime(2028, 2, 14, 12, 0, tzinfo=UTC)  # 400 days back: 2027-01-10


def _starts() -> dict[str, int]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(ContactFlowState.entered_at, func.count()).group_by(ContactFlowState.entered_at)
        ).all()
    counts: dict[str, int] = {}
    for moment, n in rows:
        month = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).strftime("%Y-%m")
        counts[month] = counts.get(month, 0) + n
    return counts


def _months() -> list[date]:
    with db.engine.connect() as conn:
        return partitioning.existing_months(conn, "contact_flow_states")


def test_months_past_retention_go_and_newer_ones_stay(acme):
    runs = [
        Run(A_PATH, "goal_reached", 10, start=NOW - timedelta(days=500), goal=True),
        Run(A_PATH, "goal_reached", 10, start=NOW, goal=True),
        Run(A_PATH, "goal_reached", 10, start=datetime(2027, 1, 20, tzinfo=UTC), goal=True),
        Run(A_PATH, "goal_reached", 10, start=datetime(2027, 2, 5, tzinfo=UTC), goal=True),
    ]
    with time_machine.travel(NOW, tick=False):
        history.build(acme, runs=runs)
        run_retention()  # 400 days: only the oldest run's states are past it
    assert _starts() == {"2026-12": 3, "2027-01": 3, "2027-02": 3}

    with time_machine.travel(LATER, tick=False):
        result = run_retention()
    # December 2026 ended before the cutoff (2027-01-10); January 2027 did not.
    assert _starts() == {"2027-01": 3, "2027-02": 3}
    if USING_POSTGRES:
        assert date(2026, 12, 1) in result.dropped
        months = _months()
        assert date(2026, 12, 1) not in months
        assert {date(2027, 1, 1), date(2028, 2, 1), date(2028, 5, 1)} <= set(months)
    else:
        assert result.deleted == 3


@pytest.mark.postgres
def test_a_month_made_after_its_rows_arrived_takes_them_from_the_default_partition(acme):
    far = datetime(2031, 5, 7, tzinfo=UTC)
    with time_machine.travel(NOW, tick=False):
        history.build(acme, runs=[Run(A_PATH, "goal_reached", 10, start=far, goal=True)])
    with db.engine.begin() as conn:
        in_default = conn.execute(text("SELECT count(*) FROM contact_flow_states_default"))
        assert in_default.scalar() == 3
        made = partitioning.create_partitions(
            conn, "contact_flow_states", date(2031, 5, 1), date(2031, 5, 1)
        )
    assert made == [date(2031, 5, 1)]
    with db.engine.connect() as conn:
        moved = conn.execute(text("SELECT count(*) FROM contact_flow_states_p2031_05")).scalar()
        left = conn.execute(
            text("SELECT count(*) FROM contact_flow_states_default WHERE entered_at >= :lo"),
            {"lo": far - timedelta(days=6)},
        ).scalar()
    assert (moved, left) == (3, 0)


def test_a_retention_shorter_than_the_longest_dashboard_period_is_refused(monkeypatch):
    monkeypatch.setenv("FLOW_STATE_RETENTION_DAYS", "30")
    with pytest.raises(ConfigurationError, match="FLOW_STATE_RETENTION_DAYS"):
        from_environment({"SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_retention_is_a_periodic_job():
    from app.jobs import PERIODIC_JOBS

    assert run_retention in [job["func"] for job in PERIODIC_JOBS]
