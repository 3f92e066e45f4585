"""A batch that resumes executions reads their open visits through the
partial index ``ix_flow_states_open_visits`` (app/models/execution.py),
even when the statistics predate a bulk hold: PostgreSQL only (SQLite
takes the unique key's index either way)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.automation.engine.state import open_visits
from app.extensions import db
from tests.engine.helpers import active_workflow, chain

pytestmark = pytest.mark.postgres

EXECUTIONS = 2_000
CLOSED_VISITS = 20  # per execution, besides its one open (held) visit


def _fill(conn, firm_id: int, workflow_id: int) -> list[int]:
    """EXECUTIONS contacts and executions, each with CLOSED_VISITS closed
    visits and one held; returns the execution ids."""
    conn.execute(
        text(
            "INSERT INTO contacts (firm_id, email, first_name, last_name, phone, score, "
            "timezone, custom_fields, unsubscribed, created_at, updated_at) "
            "SELECT :firm, 'c' || g || '@example.com', '', '', '', 0, '', '{}', false, "
            "now(), now() FROM generate_series(1, :n) AS g"
        ),
        {"firm": firm_id, "n": EXECUTIONS},
    )
    ids = conn.execute(
        text(
            "INSERT INTO workflow_executions (firm_id, workflow_id, version, contact_id, "
            "status, current_node, execution_path, context_data, trigger_type, goal_reached, "
            "idempotency_key, test_mode, wait_reason, wake_at, attempts, steps_taken, "
            "started_at, created_at, updated_at) "
            "SELECT :firm, :workflow, 1, id, 'waiting', 'mail', '[\"mail\"]', '{}', 'manual', "
            "false, md5(id::text), false, 'held', now(), 0, 1, now(), now(), now() "
            "FROM contacts WHERE firm_id = :firm RETURNING id"
        ),
        {"firm": firm_id, "workflow": workflow_id},
    ).scalars()
    ids = sorted(ids)
    conn.execute(
        text(
            "INSERT INTO contact_flow_states (firm_id, workflow_id, execution_id, node_id, "
            "node_type, visit, entered_at, action_status, action_result) "
            "SELECT :firm, :workflow, e.id, 'mail', 'send_email', v, now(), "
            "CASE WHEN v > :closed THEN 'deferred' ELSE 'success' END, "
            '\'{"reason": "outside send window"}\' '
            "FROM workflow_executions AS e, generate_series(1, :closed + 1) AS v "
            "WHERE e.firm_id = :firm"
        ),
        {"firm": firm_id, "workflow": workflow_id, "closed": CLOSED_VISITS},
    )
    return ids


def test_held_visits_are_read_by_index_when_statistics_predate_the_hold(acme, alice):
    specs, edges = chain(("mail", "send_email", {"subject": "Hi", "body_text": "Hello"}))
    workflow = active_workflow(acme, alice, specs, edges)
    conn = db.session.connection()
    # Statistics of the empty table, as the planner has them right after a
    # bulk enrollment is held at a send window (before autovacuum's ANALYZE).
    conn.execute(text("ANALYZE contact_flow_states"))
    ids = _fill(conn, acme.id, workflow.id)
    batch = ids[len(ids) // 2 : len(ids) // 2 + 500]

    stmt = open_visits(batch)
    rows = conn.execute(stmt).all()
    assert sorted(row.execution_id for row in rows) == batch
    assert {row.visit for row in rows} == {CLOSED_VISITS + 1}

    compiled = stmt.compile(dialect=conn.dialect)
    plan = [
        line.strip()
        for line in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).scalars()
        if "->" in line or "Scan" in line
    ]
    month = conn.execute(text("SELECT tableoid::regclass::text FROM contact_flow_states LIMIT 1"))
    month = month.scalar_one()
    index = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_index x ON x.indexrelid = c.oid "
            "WHERE i.inhparent = CAST('ix_flow_states_open_visits' AS regclass) "
            "AND x.indrelid = CAST(:month AS regclass)"
        ),
        {"month": month},
    ).scalar_one()
    assert any(f"Scan on {index}" in line or f"Scan using {index}" in line for line in plan), plan
    assert not any(f"Seq Scan on {month} " in line for line in plan), plan
    db.session.rollback()
