"""Experiments: what reading a split's numbers costs (docs/EXPERIMENTS.md).

``--contacts`` contacts (20,000) walk a published workflow through the real
engine in this process: a split (A/B, 10% held out, metric the goal
"bought" whose rules are a tag, auto_winner) -> a condition on a drawn
number per variant (A converts 10%, B 14%) -> the goal. Then 20% of the
treated and 15% of the held-out contacts get the tag outside the
workflow (for the lift: about +5 points). Timed:

- ``experiments_read_seconds``: ``workflow_experiments`` (the API's and the
  page's numbers: per-variant counts, the sequential test, the decision
  when due, the holdout's lift in SQL), the median of five reads;
- ``decide_seconds``: the periodic job's ``run_experiment_decisions``.

Runs on DATABASE_URL (PostgreSQL: a fresh database next to it, dropped
afterwards) or, without it, a temporary SQLite file. Prints figures last
as JSON.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/experiments.py --contacts 20000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import harness  # noqa: E402

SPLIT = {
    "variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}],
    "metric": {"goal": "bought"},
    "auto_winner": {"min_per_variant": 500, "alpha": 0.05},
    "holdout_percent": 10,
}
NODES = [
    ("split", "split", SPLIT),
    ("check_a", "condition", {"rules": [{"field": "contact.custom.u", "op": "lt", "value": 0.10}]}),
    ("check_b", "condition", {"rules": [{"field": "contact.custom.u", "op": "lt", "value": 0.14}]}),
    ("bought", "goal", {"rules": [{"tag": "buyer", "op": "has"}]}),
]


def _workflow(user):
    from app.extensions import db
    from app.models import WorkflowEdge

    workflow = harness.build_workflow(user, NODES, [], "manual", activate=False)
    by_key = {node.node_id: node.id for node in workflow.nodes}
    for source, target, kind, variant in (
        ("split", "check_a", "variant", "A"),
        ("split", "check_b", "variant", "B"),
        ("check_a", "bought", "yes", None),
        ("check_b", "bought", "yes", None),
    ):
        db.session.add(
            WorkflowEdge(
                workflow_id=workflow.id,
                source_node_id=by_key[source],
                target_node_id=by_key[target],
                condition_type=kind,
                condition_config={"variant": variant} if variant else {},
            )
        )
    db.session.commit()
    from app.automation.lifecycle.publishing import activate_workflow

    activate_workflow(workflow, user)
    db.session.commit()
    return workflow


def _tag_buyers(workflow_id: int, ids: list[int], rng: random.Random) -> None:
    """Buyers outside the workflow: 20% of the treated, 15% of the held out."""
    from app.automation.nodes.control import holdout_bucket
    from app.extensions import db
    from app.models import Tag, contact_tags

    tag = Tag(name="buyer")
    db.session.add(tag)
    db.session.flush()
    rows = [
        {"contact_id": i, "tag_id": tag.id}
        for i in ids
        if rng.random() < (0.15 if holdout_bucket(workflow_id, "split", i) < 10 else 0.20)
    ]
    db.session.execute(contact_tags.insert(), rows)
    db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--contacts", type=int, default=20000)
    args = parser.parse_args()

    from app.automation.analytics.experiments import (
        run_experiment_decisions,
        workflow_experiments,
    )
    from app.automation.engine.enrollment import enroll
    from app.automation.engine.jobs import drain
    from app.extensions import db
    from app.tenancy import firm_context

    rng = random.Random(1)
    database_url, drop = harness.bench_database(os.environ.get("DATABASE_URL"), "experiments")
    app = harness.make_app(database_url, None, "bench-experiments")
    try:
        with app.app_context():
            db.create_all()
            firm, user = harness.firm_and_user()
            with firm_context(firm.id):
                ids = harness.insert_contacts(
                    firm.id, args.contacts, custom_fields=lambda i: {"u": rng.random()}
                )
                workflow = _workflow(user)
                started = time.perf_counter()
                for start in range(0, len(ids), 5000):
                    enroll(workflow, ids[start : start + 5000], trigger_type="manual")
            drain(max_rounds=100_000)
            walk_seconds = time.perf_counter() - started
            with firm_context(firm.id):
                _tag_buyers(workflow.id, ids, rng)
                if database_url.startswith("postgres"):
                    harness.analyze()
            started = time.perf_counter()
            decided = run_experiment_decisions()
            decide_seconds = time.perf_counter() - started
            reads = []
            with firm_context(firm.id):
                for _ in range(5):
                    db.session.expire_all()
                    started = time.perf_counter()
                    (experiment,) = workflow_experiments(workflow)
                    reads.append(time.perf_counter() - started)
            lift = experiment["holdout"]["lift"]
            print(
                f"{args.contacts} contacts walked in {walk_seconds:.1f} s; decided {decided}: "
                f"winner {experiment['winner']} p={experiment['p_value']:.4g}; variants "
                + ", ".join(
                    f"{v['name']} {v['conversions']}/{v['entered']}" for v in experiment["variants"]
                )
                + f"; held out {experiment['holdout']['entered']}, lift "
                f"{lift['difference']} {lift['interval']}; {harness.load()}",
                flush=True,
            )
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()
    harness.print_figures(
        "experiments",
        [
            ("experiments_read_seconds", statistics.median(reads), "s"),
            ("decide_seconds", decide_seconds, "s"),
        ],
    )


if __name__ == "__main__":
    main()
