"""Audiences: a live count over 1,000,000 contacts, one SQL statement.

``--contacts`` contacts (score 0-99, a custom ``plan`` and ``age``), a
tag on one in ten, a human open on one in five spread over 60 days; then
each audience below is counted ``--repeat`` times through the API's own
function (app/automation/audiences/counting.py: rules/sql.py's condition)
and the median kept. Metrics ``count_seconds_<audience>`` and
``count_contacts_per_s`` (of the mixed audience). The issue asks < 2 s
for 1,000,000 contacts on PostgreSQL.

Needs DATABASE_URL (PostgreSQL: a fresh database next to it, dropped
afterwards); the rows are made with ``generate_series``. Prints figures
last as JSON, with the machine's load.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/audiences.py --contacts 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import harness  # noqa: E402
from sqlalchemy import text  # noqa: E402

AUDIENCES = {
    "mixed": {
        "match": "all",
        "rules": [
            {
                "match": "any",
                "rules": [
                    {"tag": "vip", "op": "has"},
                    {"event": "email_opened", "within_days": 30, "op": "happened"},
                ],
            },
            {"field": "contact.score", "op": "gte", "value": 50},
            {"field": "contact.custom.plan", "op": "eq", "value": "pro"},
        ],
    },
    "opened_30_days": {"rules": [{"event": "email_opened", "within_days": 30, "op": "happened"}]},
    "score_and_age": {
        "rules": [
            {"field": "contact.score", "op": "gt", "value": 80},
            {"field": "contact.custom.age", "op": "lt", "value": 30},
        ]
    },
    "everyone": {"rules": []},
}

_CONTACTS = """
INSERT INTO contacts (firm_id, email, first_name, last_name, phone, score, timezone,
    custom_fields, unsubscribed, created_at, updated_at)
SELECT :firm, 'c' || i || '@bench.example.com', 'C' || i, '', '', i % 100, 'UTC',
    jsonb_build_object('plan', CASE WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END,
                       'age', (i % 60)::text),
    false, now(), now()
FROM generate_series(1, :n) AS i
"""
_TAGS = """
INSERT INTO contact_tags (contact_id, tag_id, created_at)
SELECT id, :tag, now() FROM contacts WHERE firm_id = :firm AND id % 10 = 0
"""
_OPENS = """
INSERT INTO tracking_events (firm_id, contact_id, workflow_id, node_id, kind, url, user_agent,
    machine, detail, created_at)
SELECT :firm, id, 1, 'hello', 'open', '', '', false, '{}'::jsonb,
    now() - (id % 60) * interval '1 day'
FROM contacts WHERE firm_id = :firm AND id % 5 = 0
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL")
    if not base or not base.startswith("postgres"):
        raise SystemExit("audiences: set DATABASE_URL (PostgreSQL)")

    from app.automation.audiences.counting import count
    from app.extensions import db
    from app.models import Tag
    from app.tenancy import firm_context

    database_url, drop = harness.fresh_database(base, "audiences")
    app = harness.make_app(database_url, None, "bench-audiences")
    figures = []
    try:
        with app.app_context():
            db.create_all()
            firm, _ = harness.firm_and_user()
            with firm_context(firm.id):
                started = time.perf_counter()
                tag = Tag(name="vip")
                db.session.add(tag)
                db.session.commit()
                params = {"firm": firm.id, "n": args.contacts, "tag": tag.id}
                for statement in (_CONTACTS, _TAGS, _OPENS):
                    db.session.execute(text(statement), params)
                    db.session.commit()
                harness.analyze()
                print(
                    f"{args.contacts:,} contacts loaded in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                for name, group in AUDIENCES.items():
                    times, found = [], 0
                    for _ in range(args.repeat):
                        begun = time.perf_counter()
                        found = count(group)
                        times.append(time.perf_counter() - begun)
                        db.session.rollback()
                    seconds = statistics.median(times)
                    print(
                        f"{name}: {found:,} of {args.contacts:,} in {seconds:.3f} s "
                        f"(median of {args.repeat}; {harness.load()})",
                        flush=True,
                    )
                    figures.append((f"count_seconds_{name}", seconds, "s"))
                    if name == "mixed":
                        figures.append(
                            ("count_contacts_per_s", args.contacts / seconds, "contacts/s")
                        )
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()
    harness.print_figures("audiences", figures)


if __name__ == "__main__":
    main()
