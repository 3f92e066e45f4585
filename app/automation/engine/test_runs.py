"""Test runs: one contact through a workflow with nothing leaving."""

from __future__ import annotations

from app.automation.engine.batch import run_batch
from app.automation.engine.claim import claim_ready, new_owner
from app.automation.engine.enrollment import enroll
from app.automation.templating.render import isolated_renders
from app.extensions import db
from app.models import WorkflowExecution


def _advance(execution: WorkflowExecution) -> WorkflowExecution:
    """Advance one execution as far as it can go, with the same claim,
    walk and write-back the batch jobs use."""
    owner = new_owner()
    rows = claim_ready(1, owner, ids=[execution.id])
    if rows:
        run_batch(rows, owner)
    db.session.expire_all()
    return db.session.get(WorkflowExecution, execution.id) or execution


def test_run(workflow, contact, user=None) -> WorkflowExecution:
    """Run ``contact`` through ``workflow`` in test mode: nothing leaves
    (messages become "test" outbox rows, CRM records are not changed,
    waits pass at once) and each step records what it would have done."""
    ids = enroll(
        workflow,
        [contact.id],
        trigger_type="manual",
        test_mode=True,
        require_active=False,
        context={"test_run_by": getattr(user, "email", None)},
    )
    if not ids:
        raise ValueError("the contact cannot be test-run through this workflow")
    execution = db.session.get(WorkflowExecution, ids[0])
    # Run by a web request, in the web process: its renders go to the
    # forked helper with a memory and CPU limit (templating/isolation.py).
    with isolated_renders():
        for _ in range(50):
            execution = _advance(execution)
            if execution.status != "running":
                break
    return execution
