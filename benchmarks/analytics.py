"""Analytics on millions of flow states (PostgreSQL).

Creates its own database (from DATABASE_URL, default the local server),
generates one workflow's history set-based in SQL (``INSERT ... SELECT
generate_series``): executions over the last ``--days`` days (30) with
every outcome, ``--states`` flow states (1,000,000) in their monthly
partitions, an outbox row per sent e-mail and opens and clicks, then times

- ``AnalyticsCalculator.calculate_workflow_analytics`` for the last 30 days
  (raw rows),
- ``AnalyticsCalculator.get_flow_visualization_data`` (the whole history),
- the dashboard's numbers for the last 30 days (``dashboard.summarize``)
  with the closed days' rollups stored (raw rows for today only), and the
  whole page's (``report.dashboard_report``: funnels and cohorts too),
- detaching and dropping the oldest month's partition (with ``--days``
  past a month),

and drops the database. The raw calculation and the dashboard print their
CPU per run, this process's (``_cpu_ms_app``) and PostgreSQL's, beside
their seconds. The last lines are JSON:
``{"benchmark": "analytics", "metric": "dashboard_seconds", "value": ..., "unit": "s"}``.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/analytics.py --states 10000000 --days 400
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import services  # noqa: E402

# (outcome share in tenths, path) — the path's steps are
# (node_id, node_type, action_status, variant/branch); the last step has no next node.
PATHS = {
    # i % 10 -> status, goal_reached, steps
    0: ("goal_reached", True, "A"),
    1: ("goal_reached", True, "A"),
    2: ("goal_reached", True, "A"),
    3: ("goal_reached", True, "B"),
    4: ("goal_reached", True, "B"),
    5: ("goal_reached", True, "B"),
    6: ("completed", False, "NO"),
    7: ("failed", False, "FAIL"),
    8: ("waiting", False, "WAIT"),
    9: ("canceled", False, "WAIT"),
}
STEPS = {
    "A": [
        ("email", "send_email", "success", None),
        ("split", "split", "success", "A"),
        ("goal", "goal", "success", None),
    ],
    "B": [
        ("email", "send_email", "success", None),
        ("split", "split", "success", "B"),
        ("wait", "wait_time", "success", None),
        ("cond", "condition", "success", "yes"),
        ("goal", "goal", "success", None),
    ],
    "NO": [
        ("email", "send_email", "success", None),
        ("split", "split", "success", "B"),
        ("wait", "wait_time", "success", None),
        ("cond", "condition", "success", "no"),
    ],
    "FAIL": [("email", "send_email", "failed", None)],
    "WAIT": [
        ("email", "send_email", "success", None),
        ("split", "split", "success", "B"),
        ("wait", "wait_time", "waiting", None),
    ],
}
NODES = [
    {
        "node_id": "email",
        "node_type": "send_email",
        "configuration": {"subject": "Hi", "body_text": "Hi"},
    },
    {
        "node_id": "split",
        "node_type": "split",
        "configuration": {"variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]},
    },
    {"node_id": "wait", "node_type": "wait_time", "configuration": {"wait_duration_hours": 24}},
    {
        "node_id": "cond",
        "node_type": "condition",
        "configuration": {"rules": [{"tag": "vip", "op": "has"}]},
    },
    {"node_id": "goal", "node_type": "goal", "configuration": {"goal_value": 50}},
]
EDGES = [
    ("email", "split", None, {}),
    ("split", "goal", "variant", {"variant": "A"}),
    ("split", "wait", "variant", {"variant": "B"}),
    ("wait", "cond", None, {}),
    ("cond", "goal", "yes", {}),
]


def _postgres_url(base: str) -> str:
    url = make_url(base)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _path_rows() -> str:
    """A VALUES list: (bucket, step, node_id, node_type, action_status, variant, branch, next_node)."""
    rows = []
    for bucket, (_, _, path) in PATHS.items():
        steps = STEPS[path]
        for i, (node_id, node_type, status, branch) in enumerate(steps):
            nxt = steps[i + 1][0] if i + 1 < len(steps) else None
            variant = branch if node_type == "split" else None
            rows.append(
                "({}, {}, '{}', '{}', '{}', {}, {}, {})".format(
                    bucket,
                    i,
                    node_id,
                    node_type,
                    status,
                    f"'{variant}'" if variant else "NULL",
                    f"'{branch}'" if branch else "NULL",
                    f"'{nxt}'" if nxt else "NULL",
                )
            )
    return ",\n".join(rows)


def insert_select(
    conn, table_name: str, given: dict[str, str], from_sql: str, params: dict
) -> None:
    """``INSERT INTO table (...) SELECT ... FROM ...`` with the columns
    ``given`` as SQL expressions; every other required column gets its
    model default, so the benchmark survives columns added later."""
    from app.extensions import db

    table = db.metadata.tables[table_name]
    columns, expressions, binds = [], [], []
    for column in table.columns:
        if column.name in given:
            columns.append(column.name)
            expressions.append(given[column.name])
        elif column.primary_key or column.nullable or column.server_default is not None:
            continue
        elif column.default is not None:
            default = column.default
            value = default.arg(None) if default.is_callable else default.arg
            key = f"default_{column.name}"
            columns.append(column.name)
            expressions.append(f":{key}")
            binds.append(bindparam(key, value, type_=column.type))
        else:
            raise RuntimeError(f"no value for {table_name}.{column.name}")
    sql = f"INSERT INTO {table_name} ({', '.join(columns)}) SELECT {', '.join(expressions)} {from_sql}"
    conn.execute(text(sql).bindparams(*binds), params)


def generate(conn, firm_id: int, workflow_id: int, flow_states: int, days: int = 30) -> int:
    """Insert the history set-based, executions spread over the last
    ``days`` days; returns the number of executions."""
    per_execution = sum(len(STEPS[p[2]]) for p in PATHS.values()) / len(PATHS)
    executions = int(round(flow_states / per_execution))
    # A contact is in a workflow at most once at a time: each waiting
    # execution (one bucket in ten) gets a contact of its own.
    contacts = max(10_000, executions // len(PATHS) + 1)
    active = [b for b, (status, _, _) in PATHS.items() if status in ("running", "waiting")]
    assert len(active) == 1, "one active bucket: its executions are one contact each"
    insert_select(
        conn,
        "contacts",
        {"id": "g", "firm_id": ":firm", "email": "'c' || g || '@bench.test'"},
        "FROM generate_series(1, :n) g",
        {"firm": firm_id, "n": contacts},
    )
    statuses = " ".join(f"WHEN {b} THEN '{status}'" for b, (status, _, _) in PATHS.items())
    last_nodes = " ".join(
        f"WHEN {b} THEN '{STEPS[path][-1][0]}'" for b, (_, _, path) in PATHS.items()
    )
    insert_select(
        conn,
        "workflow_executions",
        {
            "id": "g",
            "firm_id": ":firm",
            "workflow_id": ":wf",
            "contact_id": f"CASE g % 10 WHEN {active[0]} THEN 1 + (g / 10) % :contacts"
            " ELSE 1 + (g % :contacts) END",
            "status": f"CASE g % 10 {statuses} END",
            "current_node": f"CASE g % 10 {last_nodes} END",
            "goal_reached": "(g % 10) < 6",
            "idempotency_key": "md5(g::text)",
            "test_mode": "false",
            "started_at": "s.started",
            "completed_at": "CASE WHEN g % 10 = 8 THEN NULL"
            " ELSE s.started + ((g % 997) * interval '1 minute') END",
            "wake_at": "CASE WHEN g % 10 = 8 THEN now() + interval '1 day' END",
            "created_at": "s.started",
            "updated_at": "s.started",
        },
        "FROM generate_series(1, :n) g, LATERAL (SELECT now() - ((g % :days) * interval '1 day')"
        " - ((g % 86399) * interval '1 second') AS started) s",
        {"firm": firm_id, "wf": workflow_id, "contacts": contacts, "n": executions, "days": days},
    )
    insert_select(
        conn,
        "contact_flow_states",
        {
            "firm_id": "e.firm_id",
            "execution_id": "e.id",
            "workflow_id": "e.workflow_id",
            "node_id": "p.node_id",
            "node_type": "p.node_type",
            "visit": "1",
            "entered_at": "e.started_at + p.step * interval '10 minutes'",
            "exited_at": "CASE WHEN p.action_status = 'waiting' THEN NULL"
            " ELSE e.started_at + (p.step + 1) * interval '10 minutes' END",
            "action_status": "p.action_status",
            "variant": "p.variant",
            "branch": "p.branch",
            "next_node": "p.next_node",
        },
        f"FROM workflow_executions e JOIN (VALUES {_path_rows()}) AS p(bucket, step, node_id,"
        " node_type, action_status, variant, branch, next_node) ON p.bucket = e.id % 10"
        " WHERE e.workflow_id = :wf",
        {"wf": workflow_id},
    )
    insert_select(
        conn,
        "outbox_messages",
        {
            "firm_id": "e.firm_id",
            "execution_id": "e.id",
            "workflow_id": "e.workflow_id",
            "contact_id": "e.contact_id",
            "node_id": "'email'",
            "visit": "1",
            "channel": "'email'",
            "status": "CASE WHEN e.status = 'failed' THEN 'failed' ELSE 'sent' END",
            "message_id": "'<' || e.id || '@bench>'",
            "created_at": "e.started_at",
        },
        "FROM workflow_executions e WHERE e.workflow_id = :wf",
        {"wf": workflow_id},
    )
    insert_select(
        conn,
        "tracking_events",
        {
            "firm_id": "o.firm_id",
            "outbox_id": "o.id",
            "contact_id": "o.contact_id",
            "execution_id": "o.execution_id",
            "workflow_id": "o.workflow_id",
            "node_id": "'email'",
            "kind": "CASE WHEN o.execution_id % 7 = 0 THEN 'click' ELSE 'open' END",
            "created_at": "o.created_at + interval '1 hour'",
        },
        "FROM outbox_messages o WHERE o.workflow_id = :wf AND o.status = 'sent'"
        " AND o.execution_id % 3 = 0",
        {"wf": workflow_id},
    )
    return executions


def profile(workflow, today) -> None:
    """Seconds per aggregate (one warm run each), to find the slow one."""
    from app.automation.analytics import flow_queries as fq
    from app.automation.analytics import queries as q

    period = q.Period(workflow.id, today - timedelta(days=30), today)
    for module, name in (
        (q, "execution_summary"),
        (q, "completion_times"),
        (fq, "flow_stats"),
        (fq, "email_counts"),
    ):
        seconds, _ = timed(lambda fn=getattr(module, name): fn(period), 2)
        print(f"  {name}: {seconds:.3f} s", file=sys.stderr)
    seconds, _ = timed(lambda: fq.visit_counts(workflow.id), 2)
    print(f"  visit_counts: {seconds:.3f} s", file=sys.stderr)


def timed(fn, repeat: int) -> tuple[float, list[float]]:
    """(median seconds, every run) over ``repeat`` runs."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", "--flow-states", dest="states", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30, help="days of history")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="time each aggregate query")
    parser.add_argument(
        "--skip-raw", action="store_true", help="skip the raw 30-day calculation and overlay"
    )
    args = parser.parse_args()

    base = _postgres_url(
        os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"analytics_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(base).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return run(make_url(base).set(database=name).render_as_string(hide_password=False), args)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def metric(name: str, value, unit: str) -> None:
    print(json.dumps({"benchmark": "analytics", "metric": name, "value": value, "unit": unit}))


def run(url: str, args) -> int:
    from app import create_app
    from app.automation.analytics import AnalyticsCalculator
    from app.automation.analytics.dashboard import daily_rows, summarize
    from app.automation.analytics.report import dashboard_report
    from app.clock import now
    from app.extensions import db
    from app.models import Firm, partitioning
    from app.tenancy import firm_context

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "REDIS_URL": None,
            "INLINE_SCHEDULER": False,
            "SECRET_KEY": "bench",
        }
    )
    figures = _Figures()
    with app.app_context():
        db.create_all()
        firm = Firm(name="Bench")
        db.session.add(firm)
        db.session.commit()
        from tests.factories import make_workflow

        workflow = make_workflow(firm, name="Bench", nodes=NODES, edges=EDGES, status="active")
        moment = now()
        table = "contact_flow_states"
        with db.engine.begin() as conn:
            # The months of the history, as migration 0014 or the
            # retention job (run monthly for years) would have left them.
            oldest = partitioning.month_start(moment - timedelta(days=args.days + 1))
            partitioning.create_partitions(conn, table, oldest, partitioning.month_start(moment))
        started = time.perf_counter()
        with db.engine.begin() as conn:
            executions = generate(conn, firm.id, workflow.id, args.states, args.days)
        # As autovacuum would leave a live database: statistics, hint bits
        # and the visibility map set (the first scans after a bulk load
        # would otherwise rewrite every page).
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            states = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            in_window = conn.execute(
                text(
                    "SELECT count(*) FROM workflow_executions "
                    "WHERE started_at >= date_trunc('day', now() AT TIME ZONE 'UTC') "
                    "AT TIME ZONE 'UTC' - interval '30 days'"
                )
            ).scalar()
        setup = time.perf_counter() - started
        print(
            f"generated {executions} executions, {states} flow states over {args.days} days"
            f" in {setup:.1f} s",
            file=sys.stderr,
        )
        figures["flow_states"] = (states, "rows")
        figures["generate_seconds"] = (round(setup, 1), "s")

        today = moment.date()
        with firm_context(firm.id):
            workflow = db.session.merge(workflow)

            def calculate():
                row = AnalyticsCalculator.calculate_workflow_analytics(
                    workflow, today - timedelta(days=30), today
                )
                assert row.total_executions == in_window, (row.total_executions, in_window)
                return row

            def visualize():
                data = AnalyticsCalculator.get_flow_visualization_data(workflow)
                assert sum(n["visits"] for n in data["nodes"]) == states
                return data

            if args.profile:
                profile(workflow, today)

            # The floor for any pass over the flow states at this moment on
            # this machine (its load varies): the figures read against it.
            def bare_scan():
                with db.engine.connect() as conn:
                    conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()

            if not args.skip_raw:
                scan_seconds, _ = timed(bare_scan, args.repeat)
                with services.cpu_split(url, "app") as cpu:
                    calc_seconds, calc_runs = timed(calculate, args.repeat)
                for kind, seconds in cpu.items():
                    figures[f"calculate_cpu_ms_{kind}"] = (
                        round(seconds * 1000 / args.repeat, 1),
                        "ms",
                    )
                viz_seconds, viz_runs = timed(visualize, args.repeat)
                row = calculate()
                print(
                    f"calculate runs {[round(r, 3) for r in calc_runs]}; visualization runs "
                    f"{[round(r, 3) for r in viz_runs]}; conversion "
                    f"{row.goal_conversion_rate:.1f}%, "
                    f"median {row.median_completion_time_seconds:.0f} s",
                    file=sys.stderr,
                )
                figures["reference_count_scan_seconds"] = (round(scan_seconds, 4), "s")
                figures["calculate_seconds"] = (round(calc_seconds, 4), "s")
                figures["flow_visualization_seconds"] = (round(viz_seconds, 4), "s")

            # The rollups: every closed day of the window stored once, as
            # the daily job leaves them (its backfill), untimed in the figure.
            start = today - timedelta(days=29)
            fill_started = time.perf_counter()
            daily_rows(workflow, start, today)
            figures["rollup_fill_seconds"] = (round(time.perf_counter() - fill_started, 2), "s")

            with services.cpu_split(url, "app") as cpu:
                dash_seconds, dash_runs = timed(
                    lambda: summarize(workflow, start, today), args.repeat
                )
            for kind, seconds in cpu.items():
                figures[f"dashboard_cpu_ms_{kind}"] = (round(seconds * 1000 / args.repeat, 1), "ms")
            summary = summarize(workflow, start, today)
            assert summary.live_days <= 1, summary.live_days
            page_seconds, page_runs = timed(
                lambda: dashboard_report(workflow, start, today), args.repeat
            )
            print(
                f"dashboard (30 days, {summary.cached_days} stored days, {summary.live_days}"
                f" live, {summary.total} executions) runs {[round(r, 3) for r in dash_runs]};"
                f" whole page's numbers runs {[round(r, 3) for r in page_runs]}",
                file=sys.stderr,
            )
            figures["dashboard_seconds"] = (round(dash_seconds, 4), "s")
            figures["dashboard_report_seconds"] = (round(page_seconds, 4), "s")
        db.session.remove()

        months = []
        with db.engine.connect() as conn:
            months = partitioning.existing_months(conn, table)
        if len(months) > 3:
            # The oldest month is partial (the history starts inside it):
            # the next one is a whole month; both go, as retention would.
            gone = months[:2]
            parts = [partitioning.partition_name(table, month) for month in gone]
            with db.engine.connect() as conn:
                rows = sum(
                    conn.execute(text(f'SELECT count(*) FROM "{part}"')).scalar() for part in parts
                )
            cutoff = partitioning.add_months(gone[-1], 1)
            drop_started = time.perf_counter()
            with db.engine.begin() as conn:
                dropped = partitioning.drop_partitions_before(
                    conn, table, datetime(cutoff.year, cutoff.month, 1, tzinfo=UTC)
                )
            drop_seconds = time.perf_counter() - drop_started
            assert dropped == gone, dropped
            print(
                f"dropped {', '.join(parts)} ({rows} rows) in {drop_seconds:.3f} s", file=sys.stderr
            )
            figures["dropped_rows"] = (rows, "rows")
            figures["month_drop_seconds"] = (round(drop_seconds, 4), "s")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", file=sys.stderr)
        db.engine.dispose()
    for name, (value, unit) in figures.items():
        metric(name, value, unit)
    return 0


class _Figures(dict):
    """Figures, each also told on stderr as soon as measured (a long run
    that fails late keeps what it had)."""

    def __setitem__(self, name, figure) -> None:
        print(f"# {name} = {figure[0]} {figure[1]}", file=sys.stderr, flush=True)
        super().__setitem__(name, figure)


if __name__ == "__main__":
    sys.exit(main())
