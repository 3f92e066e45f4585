"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import Column, MetaData, Table, create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from app import create_app
from app.config import ROOT
from app.extensions import db
from app.models import partitioning
from tests.conftest import USING_POSTGRES


def _empty_database_url(tmp_path) -> tuple[str, callable]:
    if not USING_POSTGRES:
        return f"sqlite:///{tmp_path / 'migrate.db'}", lambda: None
    import os

    from tests.conftest import _postgres_url

    base = make_url(_postgres_url(os.environ["DATABASE_URL"]))
    name = f"automation_migrate_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def test_there_is_a_single_head():
    script = ScriptDirectory(str(ROOT / "migrations"))
    assert len(script.get_heads()) == 1


def test_upgrade_from_empty_builds_what_the_models_describe(tmp_path):
    url, drop = _empty_database_url(tmp_path)
    try:
        migrated = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "t"})
        with migrated.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            tables = set(inspect(db.engine).get_table_names())
            assert set(db.metadata.tables) <= tables
            with db.engine.connect() as conn:
                context = MigrationContext.configure(
                    conn,
                    opts={
                        "compare_type": True,
                        "render_as_batch": True,
                        # As migrations/env.py compares: parents, not partitions.
                        "include_name": partitioning.include_name,
                        "include_object": partitioning.include_object,
                    },
                )
                diff = compare_metadata(context, db.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()


def test_0003_keeps_the_oldest_of_a_contacts_active_executions_and_then_refuses_another(tmp_path):
    from sqlalchemy.exc import IntegrityError

    from app.clock import now
    from app.models import Firm, Workflow, WorkflowExecution
    from app.tenancy import firm_context
    from tests.factories import make_contact

    url, drop = _empty_database_url(tmp_path)
    try:
        migrated = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "t"})
        with migrated.app_context():
            upgrade(directory=str(ROOT / "migrations"), revision="0002")
            # The firm row as 0002 knows it: later revisions add columns the
            # model already has.
            moment = now()
            firm_id = db.session.execute(
                Firm.__table__.insert()
                .values(
                    name="Before 0003",
                    webhook_secret="whsec_x",
                    settings={},
                    created_at=moment,
                    updated_at=moment,
                )
                .returning(Firm.__table__.c.id)
            ).scalar_one()
            db.session.commit()
            firm = _Ref(firm_id)
            contact_id = make_contact(firm).id
            # The workflow row as 0002 knows it too (0010 adds send pacing).
            old_columns = [
                c for c in Workflow.__table__.c if c.name not in ("send_window", "priority")
            ]
            old_workflows = Table(
                "workflows",
                MetaData(),
                *(Column(c.name, c.type, primary_key=c.primary_key) for c in old_columns),
            )
            workflow_id = db.session.execute(
                old_workflows.insert()
                .values(
                    firm_id=firm_id,
                    name="Before 0003",
                    description="",
                    status="draft",
                    version=0,
                    canvas_data={},
                    allow_reentry=True,
                    exit_on_goal=True,
                    enroll_existing=False,
                    created_at=moment,
                    updated_at=moment,
                )
                .returning(old_workflows.c.id)
            ).scalar_one()
            db.session.commit()

            # The execution row as 0002 knows it (0013 adds lease_expiries);
            # the copied columns keep the model's defaults.
            old_executions = Table(
                "workflow_executions",
                MetaData(),
                *(c._copy() for c in WorkflowExecution.__table__.c if c.name != "lease_expiries"),
            )

            def execution(key: str, status: str = "running", test_mode: bool = False):
                row_id = db.session.execute(
                    old_executions.insert()
                    .values(
                        firm_id=firm_id,
                        workflow_id=workflow_id,
                        contact_id=contact_id,
                        status=status,
                        current_node="a",
                        idempotency_key=key,
                        test_mode=test_mode,
                    )
                    .returning(old_executions.c.id)
                ).scalar_one()
                db.session.commit()
                return row_id

            with firm_context(firm_id):
                first, second = execution("k1"), execution("k2", "waiting")
                done, test_run = execution("k3", "completed"), execution("k4", test_mode=True)
            db.session.remove()
            upgrade(directory=str(ROOT / "migrations"))
            with db.engine.connect() as conn:
                rows = dict(conn.execute(text("SELECT id, status FROM workflow_executions")).all())
            assert rows == {
                first: "running",
                second: "canceled",
                done: "completed",
                test_run: "running",
            }
            with firm_context(firm_id):
                try:
                    execution("k5", "waiting")
                    raise AssertionError("a second active execution was accepted")
                except IntegrityError:
                    db.session.rollback()
                execution("k6", test_mode=True)  # test runs are not counted
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()


class _Ref:
    """Stands in for a Firm where the factories only need its id."""

    def __init__(self, firm_id: int):
        self.id = firm_id


def test_0014_keeps_every_flow_state_and_partitions_them_on_postgresql(tmp_path):
    from app.models import ContactFlowState
    from tests.analytics import history
    from tests.analytics.history import A_PATH, Run
    from tests.factories import make_firm

    url, drop = _empty_database_url(tmp_path)
    try:
        migrated = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "t"})
        with migrated.app_context():
            upgrade(directory=str(ROOT / "migrations"), revision="0013")
            firm = _Ref(make_firm("Before 0014").id)
            # Months apart, and one far in the future: every one is kept.
            starts = ["2025-01-15", "2026-06-30", "2026-11-30", "2030-03-01"]
            runs = [Run(A_PATH, "goal_reached", 10, start=_utc(day), goal=True) for day in starts]
            history.build(firm, runs=runs)
            columns = "id, execution_id, node_id, visit, entered_at, action_status"
            query = text(f"SELECT {columns} FROM contact_flow_states ORDER BY id")
            with db.engine.connect() as conn:
                before = conn.execute(query).all()
            assert len(before) == 12
            db.session.remove()

            upgrade(directory=str(ROOT / "migrations"))
            with db.engine.connect() as conn:
                after = conn.execute(query).all()
                if USING_POSTGRES:
                    kind = conn.execute(
                        text("SELECT relkind FROM pg_class WHERE relname = 'contact_flow_states'")
                    ).scalar()
                    months = partitioning.existing_months(conn, "contact_flow_states")
            assert after == before
            if USING_POSTGRES:
                assert kind == "p"
                assert months[0].isoformat() == "2025-01-01"
            # New rows continue the ids and land in their month.
            with firm_context_of(firm):
                state = ContactFlowState(
                    execution_id=before[0].execution_id,
                    workflow_id=db.session.scalar(text("SELECT id FROM workflows")),
                    node_id="goal",
                    node_type="goal",
                    visit=2,
                )
                db.session.add(state)
                db.session.commit()
                assert state.id > max(row.id for row in before)
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()


def test_0014_downgrade_makes_the_plain_table_again_with_every_row(tmp_path):
    from flask_migrate import downgrade

    from tests.analytics import history
    from tests.analytics.history import A_PATH, Run
    from tests.factories import make_firm

    url, drop = _empty_database_url(tmp_path)
    try:
        migrated = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "t"})
        with migrated.app_context():
            upgrade(directory=str(ROOT / "migrations"), revision="0013")
            firm = _Ref(make_firm("Around 0014").id)
            starts = ["2025-01-15", "2026-11-30", "2030-03-01"]
            runs = [Run(A_PATH, "goal_reached", 10, start=_utc(day), goal=True) for day in starts]
            history.build(firm, runs=runs)
            db.session.remove()
            columns = "id, execution_id, node_id, visit, entered_at, action_status"
            query = text(f"SELECT {columns} FROM contact_flow_states ORDER BY id")
            kind = text("SELECT relkind FROM pg_class WHERE relname = 'contact_flow_states'")
            with db.engine.connect() as conn:
                before = conn.execute(query).all()
            assert len(before) == 9

            upgrade(directory=str(ROOT / "migrations"), revision="0014")
            downgrade(directory=str(ROOT / "migrations"), revision="0013")
            with db.engine.connect() as conn:
                assert conn.execute(query).all() == before
                if USING_POSTGRES:
                    assert conn.execute(kind).scalar() == "r"
                    assert not conn.execute(
                        text("SELECT 1 FROM pg_class WHERE relname LIKE 'contact_flow_states_p%'")
                    ).scalar()
                keys = inspect(conn)
                assert keys.get_pk_constraint("contact_flow_states")["constrained_columns"] == [
                    "id"
                ]
                uniques = [
                    u["column_names"] for u in keys.get_unique_constraints("contact_flow_states")
                ]
                assert uniques == [["execution_id", "node_id", "visit"]]
                # The id sequence goes on past the kept rows.
                row = before[0]
                new_id = conn.execute(
                    text(
                        "INSERT INTO contact_flow_states (execution_id, firm_id, workflow_id, "
                        "node_id, node_type, visit, entered_at, action_status, action_result) "
                        "SELECT execution_id, firm_id, workflow_id, 'goal', 'goal', 9, entered_at, "
                        "'pending', '{}' FROM contact_flow_states WHERE id = :id RETURNING id"
                    ),
                    {"id": row.id},
                ).scalar()
                conn.commit()
                assert new_id > max(r.id for r in before)
            # And up again, the rows still all there.
            upgrade(directory=str(ROOT / "migrations"), revision="0014")
            with db.engine.connect() as conn:
                assert conn.execute(query).all()[: len(before)] == before
                if USING_POSTGRES:
                    assert conn.execute(kind).scalar() == "p"
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()


def _utc(day: str):
    from datetime import UTC, datetime

    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


def firm_context_of(firm):
    from app.tenancy import firm_context

    return firm_context(firm.id)


def test_0015_makes_the_triggers_of_published_workflows_the_published_ones(tmp_path):
    """Existing triggers stay the draft (same ids) and, for workflows that
    were published, become the live ones too: same ids (executions and date
    occurrences keep naming them), same date cursors."""
    from datetime import UTC, datetime

    from app.models import (
        Contact,
        Firm,
        PublishedTrigger,
        Workflow,
        WorkflowExecution,
        WorkflowTrigger,
    )
    from app.models.base import UTCDateTime
    from app.tenancy import firm_context

    url, drop = _empty_database_url(tmp_path)
    try:
        migrated = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "t"})
        with migrated.app_context():
            upgrade(directory=str(ROOT / "migrations"), revision="0014")
            # The trigger table as 0014 knows it: the cursor lived on it.
            old_triggers = Table(
                "workflow_triggers",
                MetaData(),
                *(c._copy() for c in WorkflowTrigger.__table__.c),
                Column("scheduled_through", UTCDateTime()),
            )
            cursor = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

            def insert(table, **values):
                row_id = db.session.execute(
                    table.insert().values(**values).returning(table.c.id)
                ).scalar_one()
                db.session.commit()
                return row_id

            firm_id = insert(Firm.__table__, name="Before 0015", webhook_secret="x", settings={})
            flows = {
                status: insert(
                    Workflow.__table__,
                    firm_id=firm_id,
                    name=status,
                    description="",
                    status=status,
                    version=version,
                    canvas_data={},
                    allow_reentry=False,
                    exit_on_goal=True,
                    enroll_existing=False,
                    priority=5,
                )
                for status, version in (("active", 2), ("paused", 1), ("draft", 0))
            }
            triggers = {
                status: insert(
                    old_triggers,
                    firm_id=firm_id,
                    workflow_id=workflow_id,
                    trigger_type="date_reached" if status == "active" else "manual",
                    configuration={"at": "2026-12-24T09:00:00Z"} if status == "active" else {},
                    is_active=True,
                    scheduled_through=cursor if status == "active" else None,
                )
                for status, workflow_id in flows.items()
            }
            contact_id = insert(Contact.__table__, firm_id=firm_id, email="c@example.com")
            execution_id = insert(
                WorkflowExecution.__table__,
                firm_id=firm_id,
                workflow_id=flows["active"],
                contact_id=contact_id,
                trigger_id=triggers["active"],
                idempotency_key="k1",
            )
            db.session.remove()

            upgrade(directory=str(ROOT / "migrations"))
            with firm_context(firm_id):
                drafts = db.session.scalars(select(WorkflowTrigger).order_by(WorkflowTrigger.id))
                assert [(t.id, t.workflow_id) for t in drafts] == [
                    (triggers[s], flows[s]) for s in ("active", "paused", "draft")
                ]
                live = db.session.scalars(select(PublishedTrigger).order_by(PublishedTrigger.id))
                assert [(t.id, t.draft_id, t.workflow_id, t.scheduled_through) for t in live] == [
                    (triggers["active"], triggers["active"], flows["active"], cursor),
                    (triggers["paused"], triggers["paused"], flows["paused"], None),
                ]
                execution = db.session.get(WorkflowExecution, execution_id)
                assert execution.trigger_id == triggers["active"]
                # Both tables hand out new ids past the copied ones.
                draft = WorkflowTrigger(workflow_id=flows["draft"], trigger_type="api")
                published = PublishedTrigger(workflow_id=flows["active"], trigger_type="api")
                db.session.add_all([draft, published])
                db.session.commit()
                assert draft.id > max(triggers.values())
                assert published.id > triggers["paused"]
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()


def test_0019_partitions_the_event_tables_with_every_row_and_back(tmp_path):
    from datetime import UTC, datetime

    from flask_migrate import downgrade

    from app.models import EventLog, Firm, TrackingEvent

    url, drop = _empty_database_url(tmp_path)
    try:
        migrated = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "t"})
        with migrated.app_context():
            upgrade(directory=str(ROOT / "migrations"), revision="0018")
            firm_id = db.session.execute(
                Firm.__table__.insert()
                .values(name="Around 0019", webhook_secret="x", settings={})
                .returning(Firm.__table__.c.id)
            ).scalar_one()
            days = [datetime(2025, 1, 15, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)]
            for n, day in enumerate(days):
                db.session.execute(
                    EventLog.__table__.insert().values(
                        firm_id=firm_id,
                        event_id=f"e{n}",
                        event_type="webhook_received",
                        data={},
                        source="api",
                        executions_started=0,
                        created_at=day,
                    )
                )
                db.session.execute(
                    TrackingEvent.__table__.insert().values(
                        firm_id=firm_id,
                        kind="open",
                        url="",
                        user_agent="",
                        event_id=f"provider:{n}" if n else None,
                        machine=False,
                        detail={},
                        created_at=day,
                    )
                )
            db.session.commit()
            queries = {
                table: text(f"SELECT id, firm_id, event_id, created_at FROM {table} ORDER BY id")
                for table in ("event_log", "tracking_events")
            }
            kind = text("SELECT relkind FROM pg_class WHERE relname = :t")
            with db.engine.connect() as conn:
                before = {t: conn.execute(q).all() for t, q in queries.items()}
            db.session.remove()

            upgrade(directory=str(ROOT / "migrations"), revision="0019")
            with db.engine.connect() as conn:
                assert {t: conn.execute(q).all() for t, q in queries.items()} == before
                keys = conn.execute(
                    text("SELECT scope, event_id FROM event_keys ORDER BY scope, event_id")
                ).all()
                assert [tuple(k) for k in keys] == [
                    ("event", "e0"),
                    ("event", "e1"),
                    ("tracking", "provider:1"),
                ]
                if USING_POSTGRES:
                    for table in queries:
                        assert conn.execute(kind, {"t": table}).scalar() == "p"
                        months = partitioning.existing_months(conn, table)
                        assert months[0].isoformat() == "2025-01-01"

            downgrade(directory=str(ROOT / "migrations"), revision="0018")
            with db.engine.connect() as conn:
                assert {t: conn.execute(q).all() for t, q in queries.items()} == before
                assert "event_keys" not in inspect(conn).get_table_names()
                for table in queries:
                    if USING_POSTGRES:
                        assert conn.execute(kind, {"t": table}).scalar() == "r"
                    uniques = [
                        u["column_names"] for u in inspect(conn).get_unique_constraints(table)
                    ]
                    assert ["firm_id", "event_id"] in uniques
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()
