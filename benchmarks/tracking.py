"""Tracking: open pixels and click redirects, each firing its triggers.

``--messages`` (5,000) sent e-mails (outbox rows, one per contact); two
active workflows listen, one to ``email_opened`` and one to
``email_clicked`` (each add_tag). The load is one open pixel
(``GET /t/o/<token>.gif``) and one click (``GET /t/c/<token>``) per
message, shuffled, from ``--concurrency`` (16) client threads in a closed
loop, all from 127.0.0.1 -- as an image proxy's few addresses would send
them -- against gunicorn (``--web`` x ``--threads``) with the rate limits
on as configured, and ``--workers`` real ``worker.py`` processes running
the executions they start. Every request records its tracking event and
feeds the trigger bus before it is answered.

``--profile DIR`` records py-spy profiles of the web processes and the
workers over the load and prints their top frames.

Figures: ``requests_per_s`` and ``response_p99_ms`` (the HTTP load), the
CPU per request by process kind over the load, and a check that every
open and click started its execution. With Redis the requests commit
their hits and the workers record them in batches
(docs/ARCHITECTURE.md, "Tracking hits"); ``hits_processed_s`` is how long
after the last answer the last execution was started.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python benchmarks/tracking.py
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import timedelta

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import harness  # noqa: E402
import ingest  # noqa: E402
import services  # noqa: E402

SECRET = "bench-secret"


def _setup(run, count: int) -> tuple[list[int], int, int]:
    """Sent e-mails (their outbox ids) and the two listening workflows."""
    from app.clock import now
    from app.extensions import db
    from app.models import OutboxMessage
    from app.tenancy import firm_context

    firm, user = harness.firm_and_user()
    contacts = harness.insert_contacts(firm.id, count)
    with firm_context(firm.id):
        send = harness.build_workflow(
            user, [("mail", "send_email", {"subject": "News", "body_text": "Hi"})], [], "manual"
        )
        opened = harness.build_workflow(
            user, [("tag", "add_tag", {"tag": "opened"})], [], "email_opened"
        )
        clicked = harness.build_workflow(
            user, [("tag", "add_tag", {"tag": "clicked"})], [], "email_clicked"
        )
        ids = [opened.id, clicked.id]
    # Sent an hour ago: a click within SCANNER_CLICK_SECONDS of the
    # hand-over is a link scanner's (docs/CONTRACT.md), which starts nothing.
    moment = now() - timedelta(hours=1)
    table = OutboxMessage.__table__
    rows = [
        {
            "firm_id": firm.id,
            "workflow_id": send.id,
            "contact_id": cid,
            "node_id": "mail",
            "visit": 1,
            "channel": "email",
            "status": "sent",
            "to_address": f"c{i}@bench.example.com",
            "from_address": "news@bench.test",
            "subject": "News",
            "body_text": "Hi",
            "body_html": "",
            "payload": {},
            "message_id": f"<m{i}@bench.test>",
            "attempts": 1,
            "max_attempts": 3,
            "retry_backoff_seconds": 30,
            "response": {},
            "sent_at": moment,
            "created_at": moment,
        }
        for i, cid in enumerate(contacts)
    ]
    outbox = list(db.session.execute(table.insert().returning(table.c.id), rows).scalars())
    db.session.commit()
    harness.analyze()
    return outbox, firm.id, ids


def _started(workflow_ids: list[int]) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import WorkflowExecution

    table = WorkflowExecution.__table__
    stmt = select(func.count()).where(table.c.workflow_id.in_(workflow_ids))
    value = db.session.connection().execute(stmt).scalar()
    db.session.rollback()
    return int(value or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description="Open pixels and click redirects")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--web", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--no-rate-limit", action="store_true", help="RATELIMIT_ENABLED=0")
    parser.add_argument("--profile", default="", help="directory: py-spy web and workers")
    args = parser.parse_args()
    from app.automation.delivery.tracking import make_token

    limits = {"RATELIMIT_ENABLED": "0"} if args.no_rate_limit else {}
    with harness.service_run("tracking", SECRET_KEY=SECRET, **limits) as run:
        run.app.config["SECRET_KEY"] = SECRET  # tokens signed as the server checks them
        outbox, firm_id, workflow_ids = _setup(run, args.messages + 50)
        calls = []
        for outbox_id in outbox:
            pixel = make_token("open", firm_id, outbox_id)
            link = make_token("click", firm_id, outbox_id, "https://example.com/offer")
            calls += [("GET", f"/t/o/{pixel}.gif", None, None), ("GET", f"/t/c/{link}", None, None)]
        warm, calls = calls[:100], calls[100:]
        random.Random(7).shuffle(calls)
        port = services.free_port()
        web = services.start_gunicorn(run.env, port, args.web, args.threads)
        run.procs.append(web)
        workers = harness.start_workers(args.workers, run.env, run.connection)
        run.procs += workers
        client = services.HttpClient(port)
        ingest.closed_loop(client, warm, 4)
        url = run.app.config["SQLALCHEMY_DATABASE_URI"]
        meter = services.CpuMeter([web], workers, url, run.connection)
        recorder = None
        if args.profile:
            import profiles

            targets = {"web": web.pid}
            targets.update((f"worker{i}", p.pid) for i, p in enumerate(workers))
            recorder = profiles.Recorder(targets, args.profile)
            time.sleep(1.0)
        load_before = services.uptime()
        meter.start()
        started = time.perf_counter()
        results = ingest.closed_loop(client, calls, args.concurrency)
        elapsed = time.perf_counter() - started
        # The CPU counts until the workers have started every execution:
        # hits answered may still wait for their batch.
        expected = len(calls) + len(warm)
        deadline = time.monotonic() + 120
        while _started(workflow_ids) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        drained = time.perf_counter() - started - elapsed
        executions = _started(workflow_ids)
        cpu = meter.stop()
        if recorder is not None:
            for path in recorder.stop().values():
                print(profiles.summary(path), flush=True)
        load_after = services.uptime()
    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = [seconds * 1000 for _, seconds in results]
    print(
        f"# {len(calls)} requests (opens and clicks of {args.messages} e-mails) in "
        f"{elapsed:.2f}s at concurrency {args.concurrency}; HTTP {statuses}; p50 "
        f"{harness.percentile(latencies, 50):.1f} ms p99 {harness.percentile(latencies, 99):.1f} "
        f"ms; {executions}/{expected} executions started, the last {drained:.2f}s after the "
        f"last answer; {args.web}x{args.threads} gunicorn, "
        f"{args.workers} workers; before: {load_before}; after: {load_after}"
    )
    print("# " + services.cpu_line(cpu, len(calls)).replace("execution", "request"))
    figures = [
        ("requests_per_s", len(calls) / elapsed, "1/s"),
        ("response_p99_ms", harness.percentile(latencies, 99), "ms"),
        ("hits_processed_s", drained, "s"),
    ]
    figures += [
        (name.replace("execution", "request"), value, unit)
        for name, value, unit in services.cpu_figures("", cpu, len(calls))
    ]
    harness.print_figures("tracking", figures)
    ok = set(statuses) <= {200, 302} and executions == expected
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
