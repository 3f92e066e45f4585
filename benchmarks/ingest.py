"""Ingest end to end: one HTTP trigger call per execution, to the e-mail.

The product as users feed it: ``--calls`` (5,000) calls of
``POST /api/v1/automation/workflows/{id}/trigger/`` at ``--concurrency``
(16, closed loop: each client thread sends its next call when the last is
answered), one contact per call, each with its own ``Idempotency-Key``.
gunicorn serves the app (``--web`` processes x ``--threads``), ``--workers``
real ``worker.py`` processes run the engine and the delivery, and a real
aiosmtpd server in this process receives the e-mails. The workflow:
add_tag -> condition (score >= 50; every contact has 60) -> send_email
over SMTP -> update_contact (score +10).

``executions_per_s``: calls / (last e-mail at the SMTP server - first
request). Then the same through the batch form (``--batch-size`` items a
call): ``batch_executions_per_s``. ``cpu_ms_per_execution``: CPU of every
process of the product (web, workers, PostgreSQL backends of this
database, redis) over the single-call run, per execution, with one line per
kind. Rate limiting is off (one token at these rates is far over any
per-token limit; see the README's rate limits). Checks that every e-mail
arrived once and every execution completed.

Needs DATABASE_URL (PostgreSQL; a fresh database, dropped afterwards) and
REDIS_URL (a private queue prefix, cleaned). Prints figures last as JSON.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python benchmarks/ingest.py
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import harness  # noqa: E402
import services  # noqa: E402

NODES = [
    ("tag", "add_tag", {"tag": "ingest"}),
    ("check", "condition", {"rules": [{"field": "contact.score", "op": "gte", "value": 50}]}),
    ("mail", "send_email", {"subject": "Hi {{ contact.first_name }}", "body_text": "Hello!"}),
    ("score", "update_contact", {"fields": {"score": "+10"}}),
]
EDGES = [("tag", "check", None), ("check", "mail", "yes"), ("mail", "score", None)]


@dataclass
class Stack:
    """The running product: app context, server port, token, workflow."""

    run: harness.ServiceRun
    sink: services.SmtpSink
    port: int
    token: str
    workflow_id: int
    contacts: list[int]
    web: list = field(default_factory=list)
    workers: list = field(default_factory=list)
    database_url: str = ""

    def client(self) -> services.HttpClient:
        return services.HttpClient(self.port, {"Authorization": f"Bearer {self.token}"})

    def meter(self) -> services.CpuMeter:
        return services.CpuMeter(self.web, self.workers, self.database_url, self.run.connection)


def smtp_env(sink: services.SmtpSink) -> dict:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": sink.port,
        "MAIL_FROM": "news@bench.test",
        "BASE_URL": "https://mail.bench.test",
        "SECRET_KEY": "bench-secret",
    }


def build(run, sink, contacts: int, args, gunicorn_extra=()) -> Stack:
    """The firm, the workflow, ``contacts`` contacts and a token, then
    gunicorn and the workers."""
    from app.extensions import db
    from app.models import ApiToken
    from app.tenancy import firm_context

    firm, user = harness.firm_and_user()
    with firm_context(firm.id):
        workflow = harness.build_workflow(user, NODES, EDGES, "api")
        _, token = ApiToken.issue(user, name="bench")
        db.session.commit()
        workflow_id = workflow.id
    ids = harness.insert_contacts(firm.id, contacts, score=60)
    harness.analyze()
    port = services.free_port()
    web = services.start_gunicorn(run.env, port, args.web, args.threads, *gunicorn_extra)
    run.procs.append(web)
    workers = harness.start_workers(args.workers, run.env, run.connection)
    run.procs += workers
    url = db.engine.url.render_as_string(hide_password=False)
    return Stack(run, sink, port, token, workflow_id, ids, [web], workers, url)


def trigger_path(stack: Stack) -> str:
    return f"/api/v1/automation/workflows/{stack.workflow_id}/trigger/"


def closed_loop(client, calls: list, concurrency: int) -> list[tuple[int, float]]:
    """Send ``calls`` ((method, path, body, headers)) from ``concurrency``
    threads, each as soon as its previous call is answered; returns
    (status, seconds) per call."""
    results: list[tuple[int, float]] = [(0, 0.0)] * len(calls)
    index = iter(range(len(calls)))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next(index, None)
            if i is None:
                return
            status, _, seconds = client.request(*calls[i])
            results[i] = (status, seconds)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def single_calls(stack: Stack, contacts: list[int]) -> list:
    path = trigger_path(stack)
    return [
        ("POST", path, {"contact_id": cid, "context": {}}, {"Idempotency-Key": uuid.uuid4().hex})
        for cid in contacts
    ]


def batch_calls(stack: Stack, contacts: list[int], size: int) -> list:
    path = trigger_path(stack)
    return [
        (
            "POST",
            path,
            [
                {"contact_id": cid, "context": {}, "idempotency_key": uuid.uuid4().hex}
                for cid in contacts[start : start + size]
            ],
            None,
        )
        for start in range(0, len(contacts), size)
    ]


def completed(workflow_id: int) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import WorkflowExecution

    table = WorkflowExecution.__table__
    stmt = select(func.count()).where(
        table.c.workflow_id == workflow_id, table.c.status == "completed"
    )
    value = db.session.connection().execute(stmt).scalar()
    db.session.rollback()
    return int(value or 0)


def wait_completed(workflow_id: int, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    done = completed(workflow_id)
    while done < count and time.monotonic() < deadline:
        time.sleep(0.1)
        done = completed(workflow_id)
    return done


@dataclass
class Phase:
    name: str
    executions: int
    seconds: float
    statuses: dict
    latencies: list[float]
    cpu: dict | None
    load: str
    repeated: int

    def describe(self) -> str:
        text = (
            f"# {self.name}: {self.executions} executions, first request to last e-mail "
            f"{self.seconds:.2f}s ({self.executions / self.seconds:.0f}/s); HTTP "
            f"{self.statuses}; response p50 {harness.percentile(self.latencies, 50):.1f} ms "
            f"p99 {harness.percentile(self.latencies, 99):.1f} ms; {self.repeated} e-mails "
            f"repeated; {self.load}"
        )
        if self.cpu is not None:
            text += "\n# " + services.cpu_line(self.cpu, self.executions)
        return text


def run_phase(stack: Stack, name: str, calls: list, executions: int, concurrency: int, timeout):
    """Send ``calls``; wait for ``executions`` more e-mails and completions."""
    expected = stack.sink.received + executions
    done_before = completed(stack.workflow_id)
    meter = stack.meter()
    meter.start()
    started = time.time()
    results = closed_loop(stack.client(), calls, concurrency)
    arrived = stack.sink.wait_for(expected, timeout)
    last_mail = stack.sink.last
    done = wait_completed(stack.workflow_id, done_before + executions, timeout)
    cpu = meter.stop()
    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    if not arrived or done < done_before + executions:
        print(
            f"# {name}: {stack.sink.received - expected + executions}/{executions} e-mails, "
            f"{done - done_before} completed within {timeout}s"
        )
    return Phase(
        name,
        executions,
        last_mail - started,
        statuses,
        [seconds * 1000 for _, seconds in results],
        cpu,
        services.uptime(),
        stack.sink.repeated,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="HTTP trigger calls to SMTP hand-over")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-calls", type=int, default=5000, help="0: skip the batch form")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="worker.py processes")
    parser.add_argument("--web", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--profile", default="", help="directory: py-spy the single calls")
    args = parser.parse_args()
    warm = 50
    sink = services.SmtpSink()
    try:
        with harness.service_run("ingest", RATELIMIT_ENABLED="0", **smtp_env(sink)) as run:
            total = warm + args.calls + args.batch_calls
            stack = build(run, sink, total, args)
            contacts = stack.contacts
            # Warm every web process, thread and worker (imports, pools, caches).
            run_phase(stack, "warm-up", single_calls(stack, contacts[:warm]), warm, 4, 60)
            recorder = None
            if args.profile:
                import profiles

                targets = {"web": stack.web[0].pid}
                targets.update((f"worker{i}", p.pid) for i, p in enumerate(stack.workers))
                recorder = profiles.Recorder(targets, args.profile)
                time.sleep(1.0)
            single = run_phase(
                stack,
                "single calls",
                single_calls(stack, contacts[warm : warm + args.calls]),
                args.calls,
                args.concurrency,
                args.timeout,
            )
            print(single.describe(), flush=True)
            if recorder is not None:
                for path in recorder.stop().values():
                    print(profiles.summary(path), flush=True)
            phases = [single]
            if args.batch_calls:
                rest = contacts[warm + args.calls :]
                calls = batch_calls(stack, rest, args.batch_size)
                batch = run_phase(
                    stack,
                    f"batch calls of {args.batch_size}",
                    calls,
                    len(rest),
                    min(args.concurrency, len(calls)),
                    args.timeout,
                )
                print(batch.describe(), flush=True)
                phases.append(batch)
    finally:
        sink.stop()
    figures = [("executions_per_s", single.executions / single.seconds, "1/s")]
    if len(phases) > 1:
        figures.append(("batch_executions_per_s", phases[1].executions / phases[1].seconds, "1/s"))
    figures.append(("response_p99_ms", harness.percentile(single.latencies, 99), "ms"))
    figures += services.cpu_figures("", single.cpu, single.executions)
    harness.print_figures("ingest", figures)
    ok = all(p.repeated == 0 and set(p.statuses) <= {200, 201} and p.seconds > 0 for p in phases)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
