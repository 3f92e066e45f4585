"""Trickle: HTTP trigger calls at 100/s, and what each costs the workers.

The workflow, stack and checks of ``ingest.py`` (gunicorn, ``--workers``
real ``worker.py`` processes, a real SMTP server in this process), but the
calls come open loop at ``--rate`` (100) per second for ``--seconds`` (20):
real traffic, one event at a time, rather than a queue to drain. At this
rate a worker finds a few executions per batch, so the fixed cost of a
batch (the claim, the loads, the commit, the kick) is what it pays.
``worker_cpu_ms_per_execution`` is the worker processes' CPU over the run
(until the last execution completed) per execution; the other kinds are
printed beside it.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python benchmarks/trickle.py
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import harness  # noqa: E402
import ingest  # noqa: E402
import services  # noqa: E402


def open_loop(client, calls: list, rate: float, threads: int = 16) -> list[tuple[int, float]]:
    """Call ``i`` goes at ``start + i / rate`` (or when a thread is free)."""
    results: list[tuple[int, float]] = [(0, 0.0)] * len(calls)
    start = time.monotonic() + 0.1
    index = iter(range(len(calls)))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next(index, None)
            if i is None:
                return
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            status, _, seconds = client.request(*calls[i])
            results[i] = (status, seconds)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description="Trigger calls at a trickle")
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--web", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--profile", default="", help="directory: py-spy the workers")
    args = parser.parse_args()
    calls = int(args.rate * args.seconds)
    warm = 50
    sink = services.SmtpSink()
    try:
        with harness.service_run("trickle", RATELIMIT_ENABLED="0", **ingest.smtp_env(sink)) as run:
            stack = ingest.build(run, sink, warm + calls, args)
            ingest.run_phase(
                stack, "warm-up", ingest.single_calls(stack, stack.contacts[:warm]), warm, 4, 60
            )
            recorder = None
            if args.profile:
                import profiles

                targets = {f"worker{i}": p.pid for i, p in enumerate(stack.workers)}
                recorder = profiles.Recorder(targets, args.profile)
            time.sleep(1.0)
            load_before = services.uptime()
            meter = stack.meter()
            meter.start()
            results = open_loop(
                stack.client(), ingest.single_calls(stack, stack.contacts[warm:]), args.rate
            )
            sink.wait_for(warm + calls, 120)
            done = ingest.wait_completed(stack.workflow_id, warm + calls, 120)
            cpu = meter.stop()
            if recorder is not None:
                for path in recorder.stop().values():
                    print(profiles.summary(path, top=40), flush=True)
            load_after = services.uptime()
            repeated = sink.repeated
    finally:
        sink.stop()
    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = [seconds * 1000 for _, seconds in results]
    print(
        f"# {calls} calls at {args.rate}/s; HTTP {statuses}; response p50 "
        f"{harness.percentile(latencies, 50):.1f} ms p99 {harness.percentile(latencies, 99):.1f} "
        f"ms; {done - warm}/{calls} completed; {repeated} e-mails repeated; "
        f"before: {load_before}; after: {load_after}"
    )
    print("# " + services.cpu_line(cpu, calls))
    figures = [("worker_cpu_ms_per_execution", cpu["workers"] * 1000 / calls, "ms")]
    figures += services.cpu_figures("", cpu, calls)
    harness.print_figures("trickle", figures)
    return 0 if done - warm == calls and repeated == 0 and set(statuses) == {201} else 1


if __name__ == "__main__":
    raise SystemExit(main())
