"""Forecast: a draft replayed over 30 days of recorded events.

``--contacts`` contacts, one recorded ``contact_tag_added`` event each,
spread over the last 30 days; the draft is e-mail -> wait a day ->
condition -> e-mail or tag, with a 09:00-17:00 send window, so about
two thirds of the first e-mails are held. The replay (the engine's walk in
the sandbox, app/automation/analytics/forecast.py) is timed alone, in
this process. Metrics ``forecast_seconds`` and ``forecast_events_per_s``.

Runs on DATABASE_URL (PostgreSQL: a fresh database next to it, dropped
afterwards) or, without it, a temporary SQLite file. Prints figures last
as JSON.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/forecast.py --contacts 5000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import harness  # noqa: E402

WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00",
          "end": "17:00", "timezone": "UTC"}  # fmt: skip
NODES = [
    ("hello", "send_email", {"subject": "Hello", "body_text": "Hi {{ contact.first_name }}"}),
    ("pause", "wait_time", {"wait_duration_hours": 24}),
    ("check", "condition", {"match": "all", "rules": [{"tag": "customer", "op": "has"}]}),
    ("offer", "send_email", {"subject": "Offer", "body_text": "For you"}),
    ("mark", "add_tag", {"tag": "welcomed"}),
]
EDGES = [("hello", "pause", None), ("pause", "check", None), ("check", "offer", "yes"),
         ("check", "mark", "no")]  # fmt: skip


def _draft(user):
    """The workflow, a draft (never published): what a forecast replays."""
    return harness.build_workflow(
        user, NODES, EDGES, "contact_tag_added", {"tag": "vip"}, activate=False, send_window=WINDOW
    )


def _events(firm_id: int, contact_ids: list[int], days: int) -> None:
    from app.clock import now
    from app.extensions import db
    from app.models import EventLog

    end = now()
    span = timedelta(days=days).total_seconds() - 3600
    rows = [
        {
            "firm_id": firm_id,
            "event_id": f"bench-{cid}",
            "event_type": "contact_tag_added",
            "contact_id": cid,
            "data": {"tag": "vip"},
            "source": "bench",
            "executions_started": 0,
            "created_at": end - timedelta(seconds=span * (i + 1) / len(contact_ids)),
        }
        for i, cid in enumerate(contact_ids)
    ]
    for start in range(0, len(rows), 10_000):
        db.session.execute(EventLog.__table__.insert(), rows[start : start + 10_000])
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()

    from app.automation.analytics.forecast import Replay
    from app.extensions import db
    from app.tenancy import firm_context

    database_url, drop = harness.bench_database(os.environ.get("DATABASE_URL"), "forecast")
    app = harness.make_app(database_url, None, "bench-forecast")
    try:
        with app.app_context():
            db.create_all()
            firm, user = harness.firm_and_user()
            with firm_context(firm.id):
                ids = harness.insert_contacts(firm.id, args.contacts)
                _events(firm.id, ids, args.days)
                workflow = _draft(user)
                if database_url.startswith("postgres"):
                    harness.analyze()
                started = time.perf_counter()
                result = Replay(workflow, args.days).run()
                seconds = time.perf_counter() - started
                db.session.rollback()
            print(
                f"{result['enrollments']} enrollments, {result['messages']} messages, "
                f"holds {result['holds']}; {harness.load()}",
                flush=True,
            )
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()
    harness.print_figures(
        "forecast",
        [
            ("forecast_seconds", seconds, "s"),
            ("forecast_events_per_s", result["events"] / seconds, "events/s"),
        ],
    )


if __name__ == "__main__":
    main()
