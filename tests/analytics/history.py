"""A generated execution history with known answers.

Rows are written directly (not through the engine), so the analytics are
tested against numbers fixed here, whatever the engine's timing.

The graph: email -> split (A: goal; B: wait -> cond (yes: goal; no: end)).
Ten executions start on DAY (see ``build``), one more five days earlier,
one test run (never counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from app.extensions import db
from app.models import ContactFlowState, OutboxMessage, TrackingEvent, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow

DAY = date(2026, 3, 10)
START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

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
    {"node_id": "wait", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}},
    {
        "node_id": "cond",
        "node_type": "condition",
        "configuration": {"rules": [{"tag": "vip", "op": "has"}]},
    },
    {"node_id": "goal", "node_type": "goal", "configuration": {"goal_value": 50}},
]
EDGES = [
    ("email", "split"),
    ("split", "goal", "variant", {"variant": "A"}),
    ("split", "wait", "variant", {"variant": "B"}),
    ("wait", "cond"),
    ("cond", "goal", "yes"),
]


@dataclass
class Run:
    """One execution: its path of (node_id, action_status, branch/variant)."""

    path: list[tuple[str, str, str | None]]
    status: str
    seconds: float | None = None
    start: datetime = START
    goal: bool = False
    wake_at: datetime | None = None
    test_mode: bool = False
    email_status: str | None = "sent"
    events: list[str] = field(default_factory=list)


A_PATH = [("email", "success", None), ("split", "success", "A"), ("goal", "success", None)]
B_HEAD = [("email", "success", None), ("split", "success", "B"), ("wait", "success", None)]

RUNS = [
    Run(A_PATH, "goal_reached", 100, goal=True, events=["open", "open", "click"]),
    Run(A_PATH, "goal_reached", 200, goal=True, events=["open"]),
    Run(A_PATH, "goal_reached", 300, goal=True, events=["open"], email_status="recorded"),
    Run(A_PATH, "goal_reached", 400, goal=True, email_status="recorded"),
    Run(
        [*B_HEAD, ("cond", "success", "yes"), ("goal", "success", None)],
        "goal_reached",
        500,
        goal=True,
    ),
    Run(
        [*B_HEAD, ("cond", "success", "yes"), ("goal", "success", None)],
        "goal_reached",
        600,
        goal=True,
        events=["unsubscribe"],
        email_status="recorded",
    ),
    Run(
        [*B_HEAD, ("cond", "success", "no")],
        "completed",
        1000,
        events=["bounce"],
        email_status="recorded",
    ),
    Run([("email", "failed", None)], "failed", email_status="failed"),
    Run(
        [("email", "success", None), ("split", "success", "B"), ("wait", "waiting", None)],
        "waiting",
        wake_at=START + timedelta(days=30),
    ),
    Run(
        [("email", "success", None), ("split", "success", "B"), ("wait", "waiting", None)],
        "canceled",
    ),
]
EARLIER = Run(A_PATH, "goal_reached", 50, start=START - timedelta(days=5), goal=True)
TEST_RUN = Run(A_PATH, "goal_reached", 5, goal=True, test_mode=True, email_status="test")


def add_run(workflow, contact, run: Run) -> WorkflowExecution:
    """Write one execution with its flow states, outbox row and events."""
    finished = run.status in ("completed", "goal_reached", "failed", "canceled")
    execution = WorkflowExecution(
        workflow_id=workflow.id,
        contact_id=contact.id,
        status=run.status,
        current_node=run.path[-1][0],
        execution_path=[step[0] for step in run.path],
        idempotency_key=f"{workflow.id}-{contact.id}-{run.start.isoformat()}-{run.test_mode}",
        goal_reached=run.goal,
        test_mode=run.test_mode,
        started_at=run.start,
        completed_at=run.start + timedelta(seconds=run.seconds)
        if run.seconds
        else (run.start + timedelta(seconds=1) if finished else None),
        wake_at=run.wake_at,
    )
    db.session.add(execution)
    db.session.flush()
    at = run.start
    for i, (node_id, status, branch) in enumerate(run.path):
        last = i == len(run.path) - 1
        node_type = next(n["node_type"] for n in NODES if n["node_id"] == node_id)
        state = ContactFlowState(
            execution_id=execution.id,
            workflow_id=workflow.id,
            node_id=node_id,
            node_type=node_type,
            entered_at=at,
            exited_at=None if status == "waiting" else at + timedelta(seconds=10),
            action_status=status,
            variant=branch if node_type == "split" else None,
            branch=branch,
            next_node=None if last else run.path[i + 1][0],
        )
        db.session.add(state)
        at += timedelta(seconds=10)
    if run.email_status and run.path[0][0] == "email":
        message = OutboxMessage(
            execution_id=execution.id,
            workflow_id=workflow.id,
            contact_id=contact.id,
            node_id="email",
            channel="email",
            status=run.email_status,
            message_id=f"<{execution.id}@test>",
        )
        db.session.add(message)
        db.session.flush()
        for kind in run.events:
            db.session.add(
                TrackingEvent(
                    outbox_id=message.id,
                    contact_id=contact.id,
                    execution_id=execution.id,
                    workflow_id=workflow.id,
                    node_id="email",
                    kind=kind,
                    created_at=run.start + timedelta(minutes=5),
                )
            )
    return execution


def build(firm, runs=None, name="Nurture"):
    """The workflow and its history; returns the workflow."""
    workflow = make_workflow(firm, name=name, nodes=NODES, edges=EDGES, status="active")
    runs = RUNS + [EARLIER, TEST_RUN] if runs is None else runs
    contacts = [make_contact(firm) for _ in runs]
    with firm_context(firm.id):
        for contact, run in zip(contacts, runs, strict=True):
            add_run(workflow, contact, run)
        db.session.commit()
    return workflow
