"""The cost of rendering a web request's templates in a forked child.

A preview's three fields (subject, HTML body, text body) for a sample
contact, ``--runs`` (200) times each way, in a process that has imported
the whole app (its resident size printed: a fork copies its page tables):
in this process; through ``render_isolated`` to a waiting helper (the
usual case, templating/isolation.py); and with a fresh fork every time
(the first request of a process, or after a helper was replaced).
Figures: the median and p95 per preview each way.

    .venv/bin/python benchmarks/template_isolation.py
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    from app import create_app
    from app.automation.templating.isolation import stop_helpers
    from app.automation.templating.render import _render_each, render_isolated

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    context = {
        "contact": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        "workflow": {"name": "Welcome"},
    }
    items = [
        ("Hello {{ contact.first_name }}", context, False),
        ("<p>Dear {{ contact.first_name }} {{ contact.last_name }},</p>" * 20, context, True),
        ("Dear {{ contact.first_name }},\n{% for i in range(20) %}line {{ i }}\n{% endfor %}",)
        + (context, False),
    ]
    with app.app_context():
        figures = {}

        def fresh(items):
            stop_helpers()
            return render_isolated(items)

        runs = (("in_process", _render_each), ("helper", render_isolated), ("fresh_fork", fresh))
        for name, run in runs:
            run(items)  # compiled and warm
            times = []
            for _ in range(args.runs):
                began = time.perf_counter()
                run(items)
                times.append((time.perf_counter() - began) * 1000)
            times.sort()
            figures[name] = (statistics.median(times), times[int(len(times) * 0.95) - 1])
    with open("/proc/self/statm") as statm:
        rss_mb = int(statm.read().split()[1]) * 4096 / 2**20
    print(f"process resident size: {rss_mb:.0f} MB")
    for name, (median, p95) in figures.items():
        print(f"{name:>10}: median {median:.2f} ms, p95 {p95:.2f} ms per preview")


if __name__ == "__main__":
    main()
