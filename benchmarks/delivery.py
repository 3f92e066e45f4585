"""Delivery throughput: 10,000 queued e-mails to a local SMTP server.

Queues ``--count`` e-mail outbox rows (rendered by ``build_outbox_row``,
inserted set-based, their executions waiting on the delivery), starts an
aiosmtpd server in its own process (so it does not share our GIL), then
times ``deliver_due`` draining the outbox: per message a claim, the
composed message with pixel, tracked links and unsubscribe headers over
one reused SMTP connection, and the ``sent`` commit; executions are woken
as their messages go. Checks that the server got every Message-ID once.

``--processes P`` runs P delivery worker processes (``spawn``ed, each its
own app, pool and GIL, as separate RQ workers would be) with
``--dispatchers`` threads each; the default runs the threads here.
A DKIM signature costs about 0.4 ms of CPU (0.27 ms of it OpenSSL's RSA,
outside the GIL; dkim_signing.py). On a loaded machine compare the CPU
per message, not the wall-clock rate, which follows the load: on
PostgreSQL at load 9-10 on 2 CPUs the dispatcher process spent 0.62 ms a
plain message and 1.26 ms a signed one, the SMTP server 0.5-0.6 ms, and
the signed rate was 255/s. The box's CPU, not one process's GIL, is then
the limit: more takes more cores (``--processes``).
``--suppressions N`` puts N other addresses on the firm's suppression
list (the gates read it once per claimed batch) and ``--dkim`` signs every
message (a sending domain with a 2048-bit key); ``--variants`` runs plain,
100,000 suppressions, and both, one JSON line each.

Uses DATABASE_URL (a fresh PostgreSQL database, dropped afterwards) when
set, else a temporary SQLite file. The last line is JSON:
``{"benchmark": "delivery", "metric": "emails_per_s", "value": ..., "unit": "1/s"}``.

    .venv/bin/python benchmarks/delivery.py
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python benchmarks/delivery.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import services  # noqa: E402

HTML = (
    "<p>Hi {{ contact.first_name }},</p><p>Our <a href='https://example.com/offer'>offer</a> "
    "and <a href='https://example.com/blog?x=1&amp;y=2'>blog</a>.</p>"
)


def _smtp_process(conn, pipelining: bool) -> None:
    """An aiosmtpd server that counts messages and Message-IDs; with
    ``pipelining`` it offers PIPELINING (RFC 2920), as Postfix, Exim and
    the big relays do."""
    import re

    from aiosmtpd.controller import Controller

    message_id = re.compile(rb"^Message-ID: *(<[^>\r\n]*>)", re.MULTILINE | re.IGNORECASE)

    class Counting:
        def __init__(self):
            self.ids: dict[str, int] = {}

        async def handle_DATA(self, server, session, envelope):
            # A regex, not the e-mail parser: the server should cost little.
            match = message_id.search(envelope.content)
            key = match.group(1).decode() if match else ""
            self.ids[key] = self.ids.get(key, 0) + 1
            return "250 OK"

    class Pipelining(Counting):
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

    class Free(Controller):
        def _trigger_server(self):
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    handler = Pipelining() if pipelining else Counting()
    controller = Free(handler, hostname="127.0.0.1", port=0)
    controller.start()
    conn.send(controller.port)
    while True:
        if conn.recv() == "stop":
            conn.send((sum(handler.ids.values()), len(handler.ids), time.process_time()))
            controller.stop()
            return


def _sending_safety(firm_id: int, suppressions: int, dkim: bool) -> None:
    """A suppression list of ``suppressions`` other addresses (every message
    still goes, each claimed batch reads the list) and, with ``dkim``, a
    sending domain with a key for MAIL_FROM's domain (every message signed)."""
    from app.automation.delivery.dkim_signing import generate_key
    from app.clock import now
    from app.extensions import db
    from app.models import SendingDomain, Suppression

    moment = now()
    for start in range(0, suppressions, 10_000):
        db.session.execute(
            insert(Suppression),
            [
                {
                    "firm_id": firm_id,
                    "channel": "email",
                    "address": f"gone{i}@example.org",
                    "reason": "hard_bounce",
                    "note": "",
                    "detail": {"code": 550, "text": "5.1.1 User unknown"},
                    "source": "smtp",
                    "created_by": "system",
                    "created_at": moment,
                }
                for i in range(start, min(start + 10_000, suppressions))
            ],
        )
    if dkim:
        db.session.add(
            SendingDomain(
                firm_id=firm_id,
                domain="bench.test",
                dkim_selector="s1",
                dkim_private_key=generate_key(),
            )
        )
    db.session.commit()


def _queue(app, count: int, suppressions: int = 0, dkim: bool = False) -> float:
    from app.automation.delivery.gates import SEND
    from app.automation.delivery.outbox import build_outbox_row
    from app.clock import now
    from app.extensions import db
    from app.models import Contact, Firm, OutboxMessage, WorkflowExecution
    from app.tenancy import firm_context
    from tests.factories import make_workflow

    firm = Firm(name="Bench")
    db.session.add(firm)
    db.session.commit()
    _sending_safety(firm.id, suppressions, dkim)
    workflow = make_workflow(
        firm,
        nodes=[
            {
                "node_id": "mail",
                "node_type": "send_email",
                "configuration": {"subject": "Hello {{ contact.first_name }}", "body_html": HTML},
            }
        ],
    )
    moment = now()
    with firm_context(firm.id):
        node = {
            "node_id": "mail",
            "node_type": "send_email",
            "configuration": workflow.nodes[0].configuration,
        }
        db.session.execute(
            insert(Contact),
            [
                {
                    "firm_id": firm.id,
                    "email": f"person{i}@example.com",
                    "first_name": f"Person{i}",
                    "created_at": moment,
                    "updated_at": moment,
                }
                for i in range(count)
            ],
        )
        contacts = db.session.execute(text("SELECT id, email, first_name FROM contacts")).all()
        db.session.execute(
            insert(WorkflowExecution),
            [
                {
                    "firm_id": firm.id,
                    "workflow_id": workflow.id,
                    "contact_id": contact.id,
                    "status": "waiting",
                    "wait_reason": "delivery",
                    "current_node": "mail",
                    "idempotency_key": uuid.uuid4().hex,
                    "created_at": moment,
                    "updated_at": moment,
                    "started_at": moment,
                }
                for contact in contacts
            ],
        )
        executions = db.session.execute(
            text("SELECT id, contact_id, workflow_id FROM workflow_executions")
        ).all()
        by_contact = {c.id: c for c in contacts}
        started = time.perf_counter()
        rows = [
            build_outbox_row(
                firm_id=firm.id,
                execution={"id": e.id, "workflow_id": e.workflow_id},
                node=node,
                visit=1,
                context={"contact": {"first_name": by_contact[e.contact_id].first_name}},
                contact={
                    "id": e.contact_id,
                    "email": by_contact[e.contact_id].email,
                    "unsubscribed": False,
                },
                # The render figure times rendering; the gates are timed
                # where they run per batch, in the dispatcher.
                verdict=SEND,
            )
            for e in executions
        ]
        render_seconds = time.perf_counter() - started
        db.session.execute(insert(OutboxMessage), rows)
        db.session.commit()
    return render_seconds


def _config(database_url: str, port: int) -> dict:
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": None,
        "SECRET_KEY": "bench",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": port,
        "MAIL_FROM": "news@bench.test",
        "BASE_URL": "https://mail.bench.test",
        "INLINE_RUNNER": False,  # time delivery alone, not the engine it wakes
        "INLINE_SCHEDULER": False,
        "RATELIMIT_ENABLED": False,
    }


def _worker_process(database_url, port, threads, batch, ready, go, out) -> None:
    """One delivery worker process (as one RQ worker host would run): its
    own app, connection pool and GIL, ``threads`` dispatchers in it."""
    from app import create_app
    from app.extensions import db

    app = create_app(_config(database_url, port))
    with app.app_context():
        # Warm up outside the timing: imports, the first connection, the
        # DKIM key parsed once per process (dkim_signing caches it).
        db.session.execute(text("SELECT 1"))
        db.session.remove()
    ready.set()
    go.wait()
    cpu = time.process_time()
    count = _drain(app, threads, batch)
    out.put((count, time.process_time() - cpu))


def _drain_processes(database_url, port, processes: int, threads: int, batch: int):
    """Run ``processes`` worker processes until the outbox is empty;
    returns (messages handled, their CPU seconds, wall seconds)."""
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    readies, workers = [], []
    for _ in range(processes):
        ready = ctx.Event()
        worker = ctx.Process(
            target=_worker_process,
            args=(database_url, port, threads, batch, ready, go, out),
            daemon=True,
        )
        worker.start()
        readies.append(ready)
        workers.append(worker)
    for ready in readies:
        ready.wait(120)
    started = time.perf_counter()
    go.set()
    results = [out.get(timeout=600) for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join(10)
    return sum(r[0] for r in results), sum(r[1] for r in results), elapsed


def _drain(app, dispatchers: int, batch: int) -> int:
    """Run ``dispatchers`` concurrent dispatchers (threads, each with its own
    database session and SMTP connection, as separate workers would) until
    the outbox is empty; returns the messages they handled."""
    from app.automation.delivery.dispatcher import deliver_due
    from app.extensions import db

    totals: list[int] = []
    errors: list[BaseException] = []

    def run():
        with app.app_context():
            total = 0
            try:
                while True:
                    count = deliver_due(limit=batch)
                    if not count:
                        break
                    total += count
            except BaseException as exc:
                errors.append(exc)
            finally:
                totals.append(total)
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(dispatchers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000, help="deliver_due(limit=...)")
    parser.add_argument(
        "--dispatchers", type=int, default=8, help="concurrent dispatchers (threads)"
    )
    parser.add_argument(
        "--suppressions", type=int, default=0, help="entries on the firm's suppression list"
    )
    parser.add_argument("--dkim", action="store_true", help="DKIM-sign every message")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="delivery worker processes, each with --dispatchers threads (0: threads here)",
    )
    parser.add_argument(
        "--no-pipelining",
        action="store_true",
        help="a server that does not offer PIPELINING: four round trips a message, not two",
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="run plain, then 100,000 suppressions, then those and DKIM; one JSON line each",
    )
    args = parser.parse_args()
    if args.variants:
        for suppressions, dkim in ((0, False), (100_000, False), (100_000, True)):
            _run(args, suppressions, dkim)
    else:
        _run(args, args.suppressions, args.dkim)


def _run(args, suppressions: int, dkim: bool) -> None:

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(
        target=_smtp_process, args=(child, not args.no_pipelining), daemon=True
    )
    server.start()
    port = parent.recv()

    database_url, drop = harness.bench_database(os.environ.get("DATABASE_URL"), "delivery")
    from app import create_app
    from app.extensions import db

    app = create_app(_config(database_url, port))
    try:
        with app.app_context():
            db.create_all()
            render_seconds = _queue(app, args.count, suppressions, dkim)
            # PostgreSQL's share: the backends serving this database.
            meter = (
                services.CpuMeter([], [], database_url)
                if database_url.startswith("postgresql")
                else None
            )
            if meter is not None:
                meter.start()
            if args.processes:
                db.session.remove()
                db.engine.dispose()
                delivered, cpu, elapsed = _drain_processes(
                    database_url, port, args.processes, args.dispatchers, args.batch
                )
            else:
                started = time.perf_counter()
                cpu = time.process_time()
                delivered = _drain(app, args.dispatchers, args.batch)
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - cpu
            postgres_cpu = meter.stop()["postgres"] if meter is not None else None
            waiting = db.session.execute(
                text("SELECT count(*) FROM workflow_executions WHERE status = 'waiting'")
            ).scalar()
            db.session.remove()
            db.engine.dispose()
    finally:
        parent.send("stop")
        received, unique, server_cpu = parent.recv()
        server.join(10)
        drop()

    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    workers = (
        f"{args.processes} processes x {args.dispatchers} dispatchers"
        if args.processes
        else f"{args.dispatchers} dispatchers (threads of one process)"
    )
    print(
        f"backend: {backend}, {workers}, "
        f"suppression list: {suppressions}, DKIM: {'on' if dkim else 'off'}, "
        f"SMTP PIPELINING: {'off' if args.no_pipelining else 'on'}"
    )
    print(f"queued and rendered {args.count} e-mails in {render_seconds:.2f}s (build_outbox_row)")
    print(
        f"delivered {delivered} in {elapsed:.2f}s; server received {received}, unique Message-IDs {unique}"
    )
    print(f"executions still waiting on delivery: {waiting}")
    print(
        f"CPU per message: dispatcher{'s' if args.processes else ' process'} "
        f"{cpu / max(delivered, 1) * 1000:.2f} ms, "
        f"SMTP server {server_cpu / max(received, 1) * 1000:.2f} ms, "
        + (
            f"PostgreSQL {postgres_cpu / max(delivered, 1) * 1000:.2f} ms; "
            if postgres_cpu is not None
            else "PostgreSQL: none (SQLite, in the dispatcher process); "
        )
        + f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    if received != args.count or unique != args.count:
        raise SystemExit("some messages were lost or sent twice")
    print(
        json.dumps(
            {
                "benchmark": "delivery",
                "metric": "emails_per_s"
                + (f"_suppressions_{suppressions}" if suppressions else "")
                + ("_dkim" if dkim else ""),
                "value": round(delivered / elapsed, 1),
                "unit": "1/s",
                # What one CPU core of dispatching delivers, whatever the
                # machine's load: the figure to size workers by.
                "per_dispatcher_cpu_s": round(delivered / max(cpu, 1e-9), 1),
                # CPU per message by process kind (the box's limit).
                "cpu_ms_per_message": {
                    "dispatchers": round(cpu / max(delivered, 1) * 1000, 3),
                    "smtp_server": round(server_cpu / max(received, 1) * 1000, 3),
                    **(
                        {"postgres": round(postgres_cpu / max(delivered, 1) * 1000, 3)}
                        if postgres_cpu is not None
                        else {}
                    ),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
