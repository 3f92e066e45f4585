"""Two copies of the engine job at once: every step is recorded once."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from app.automation.engine.batch import run_batch
from app.automation.engine.claim import claim_ready, new_owner
from app.automation.engine.jobs import advance_ready_batch
from app.extensions import db
from app.models import ContactFlowState, OutboxMessage, WorkflowExecution
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, start
from tests.factories import make_contact

NODES = (
    ("tag", "add_tag", {"tag": "seen"}),
    ("mail", "send_email", {"subject": "Hi", "body_text": "Hello {{ contact.first_name }}"}),
    ("score", "update_contact", {"fields": {"score": "+10"}}),
)


def _in_threads(app, target, count=2):
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body():
        with app.app_context():
            try:
                barrier.wait()
                target()
            except BaseException as exc:  # surfaced in the test thread
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=body) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def _counts(firm):
    db.session.expire_all()
    with firm_context(firm.id):
        states = db.session.execute(
            select(ContactFlowState.execution_id, ContactFlowState.node_id, ContactFlowState.visit)
        ).all()
        mails = db.session.scalar(select(func.count()).select_from(OutboxMessage))
        statuses = db.session.scalars(select(WorkflowExecution.status)).all()
    return states, mails, statuses


def test_two_engine_jobs_at_once_record_each_step_once(app, acme, alice):
    specs, edges = chain(*NODES)
    workflow = active_workflow(acme, alice, specs, edges)
    contacts = [make_contact(acme) for _ in range(120)]
    start(workflow, *contacts)

    def job():
        while advance_ready_batch(25)["executions"]:
            pass

    _in_threads(app, job)
    states, mails, statuses = _counts(acme)
    assert len(states) == 360
    assert len(set(states)) == 360
    assert mails == 120
    assert set(statuses) == {"completed"}
    with firm_context(acme.id):
        scores = db.session.scalars(select(type(contacts[0]).score)).all()
    assert set(scores) == {10}


def test_the_same_claimed_batch_run_twice_concurrently_is_written_once(app, acme, alice):
    specs, edges = chain(*NODES)
    workflow = active_workflow(acme, alice, specs, edges)
    start(workflow, *[make_contact(acme) for _ in range(40)])
    owner = new_owner()
    rows = claim_ready(100, owner)
    assert len(rows) == 40

    _in_threads(app, lambda: run_batch([dict(r) for r in rows], owner))
    states, mails, statuses = _counts(acme)
    assert len(states) == 120
    assert mails == 40
    assert set(statuses) == {"completed"}
    with firm_context(acme.id):
        scores = db.session.scalars(select(type(make_contact(acme)).score)).all()
    # 40 contacts walked once (+10 each); the extra contact made above has 0.
    assert sorted(set(scores)) == [0, 10]
