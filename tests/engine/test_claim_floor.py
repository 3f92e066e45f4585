"""Running claims start at the process's floor on PostgreSQL
(docs/ARCHITECTURE.md, "Claims"), and still find rows below it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.automation.engine import claim
from app.automation.engine.claim import claim_ready, new_owner, release
from app.clock import now
from app.extensions import db
from app.models import WorkflowExecution
from tests.engine.helpers import active_workflow, chain, start
from tests.factories import make_contact

pytestmark = pytest.mark.postgres

table = WorkflowExecution.__table__


@pytest.fixture
def floor(monkeypatch):
    fresh = claim._RunningFloor()
    monkeypatch.setattr(claim, "_floor", fresh)
    return fresh


@pytest.fixture
def executions(acme, alice):
    nodes, edges = chain(("tag", "add_tag", {"tag": "seen"}))
    workflow = active_workflow(acme, alice, nodes, edges)
    return sorted(start(workflow, *[make_contact(acme) for _ in range(6)]))


def _park(ids):
    """Out of ``running``, as a walked execution leaves it for a day's wait."""
    later = now() + timedelta(days=1)
    db.session.execute(
        update(table).where(table.c.id.in_(ids)).values(status="waiting", wake_at=later)
    )
    db.session.commit()


def test_a_claim_starts_at_the_lowest_running_row_it_found_last(floor, executions):
    first = claim_ready(1, new_owner())
    assert [row["id"] for row in first] == executions[:1]
    assert floor.id == executions[0]
    _park(executions[:1])
    owner = new_owner()
    second = claim_ready(1, owner)
    assert [row["id"] for row in second] == executions[1:2]
    assert floor.id == executions[1]  # advanced: the next claim skips what left
    release(owner, [row["id"] for row in second])


def test_a_row_below_the_floor_is_found_when_the_claim_from_the_floor_is_short(floor, executions):
    _park(executions[:3])
    owner = new_owner()
    rows = claim_ready(10, owner)
    assert [row["id"] for row in rows] == executions[3:]
    assert floor.id == executions[3]
    release(owner, [row["id"] for row in rows])
    # A wait woken below the floor: running again, under the floor's id.
    db.session.execute(update(table).where(table.c.id == executions[0]).values(status="running"))
    db.session.commit()
    rows = claim_ready(10, new_owner())
    assert sorted(row["id"] for row in rows) == [executions[0], *executions[3:]]
    assert floor.id == executions[0]  # a scan from the start set it anew


def test_a_full_claim_from_the_floor_leaves_lower_rows_until_the_floor_expires(
    floor, executions, monkeypatch
):
    floor.id, floor.since = executions[2], claim.time.monotonic()
    owner = new_owner()
    rows = claim_ready(1, owner)  # full from the floor
    assert [row["id"] for row in rows] == executions[2:3]
    release(owner, [row["id"] for row in rows])
    monkeypatch.setattr(claim, "FLOOR_SECONDS", 0.0)  # the floor has expired
    rows = claim_ready(1, new_owner())
    assert [row["id"] for row in rows] == executions[:1]
    assert floor.id == executions[0]
