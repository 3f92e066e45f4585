"""Once means once: duplicates, concurrency, re-entry, workflows that tag."""

from __future__ import annotations

import threading

import pytest

from app.automation.lifecycle.publishing import activate_workflow
from app.automation.triggers.bus import emit
from app.extensions import db
from app.models import Contact, Tag
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow
from tests.triggers.conftest import executions_of


def _finish(firm):
    with firm_context(firm.id):
        for execution in executions_of(firm):
            db.session.merge(execution).status = "completed"
        db.session.commit()


@pytest.mark.postgres
def test_the_same_event_ten_times_at_once_starts_one_execution(app, acme, live_workflow):
    live_workflow(acme, "email_opened", allow_reentry=True)
    # Plain ids: the threads must not touch the main thread's session.
    firm_id, contact_id = acme.id, make_contact(acme).id
    barrier = threading.Barrier(10)
    results, errors = [], []

    def deliver():
        with app.app_context():
            try:
                barrier.wait()
                results.append(emit(firm_id, "email_opened", contact_id, event_id="dup-1"))
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0] * 9 + [1]
    assert len(executions_of(acme)) == 1


@pytest.mark.postgres
def test_ten_different_events_at_once_start_one_execution_without_reentry(app, acme, live_workflow):
    live_workflow(acme, "email_opened")
    firm_id, contact_id = acme.id, make_contact(acme).id
    barrier = threading.Barrier(10)
    errors = []

    def deliver(n):
        with app.app_context():
            try:
                barrier.wait()
                emit(firm_id, "email_opened", contact_id, event_id=f"open-{n}")
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(executions_of(acme)) == 1


def test_without_reentry_a_contact_enters_once_ever(acme, live_workflow):
    live_workflow(acme, "email_opened")
    contact = make_contact(acme)
    assert len(emit(acme.id, "email_opened", contact.id, event_id="a")) == 1
    _finish(acme)
    assert emit(acme.id, "email_opened", contact.id, event_id="b") == []
    assert len(executions_of(acme)) == 1


def test_with_reentry_a_contact_enters_again_once_it_left(acme, live_workflow):
    live_workflow(acme, "email_opened", allow_reentry=True)
    contact = make_contact(acme)
    assert len(emit(acme.id, "email_opened", contact.id, event_id="a")) == 1
    assert emit(acme.id, "email_opened", contact.id, event_id="b") == []  # still inside
    _finish(acme)
    assert len(emit(acme.id, "email_opened", contact.id, event_id="c")) == 1
    assert emit(acme.id, "email_opened", contact.id, event_id="c") == []  # same event
    assert len(executions_of(acme)) == 2


def test_a_tag_added_by_a_workflow_starts_another_workflow_but_never_itself(acme, alice):
    from app.automation.engine.jobs import drain

    def tagging(name, trigger_tag, adds, reentry=True):
        workflow = make_workflow(
            acme,
            name=name,
            nodes=[{"node_id": "tag_it", "node_type": "add_tag", "configuration": {"tag": adds}}],
            triggers=[{"trigger_type": "contact_tag_added", "configuration": {"tag": trigger_tag}}],
            allow_reentry=reentry,
        )
        with firm_context(acme.id):
            activate_workflow(workflow, alice)
            db.session.commit()
        return workflow

    # "lead" -> adds "vip" (and listens to "vip" itself); "vip" -> adds "vip-seen".
    first = tagging("Qualify", "lead", "vip")
    looping = tagging("Self", "vip", "vip")
    second = tagging("Welcome VIP", "vip", "vip-seen", reentry=False)
    contact = make_contact(acme)
    with firm_context(acme.id):
        db.session.get(Contact, contact.id).tags.append(Tag(name="lead"))
        db.session.commit()
    drain()
    counts = {}
    for execution in executions_of(acme):
        counts[execution.workflow_id] = counts.get(execution.workflow_id, 0) + 1
    # "Self" starts once (from Qualify's tag) and never again from its own tag.
    assert counts == {first.id: 1, looping.id: 1, second.id: 1}
    with firm_context(acme.id):
        tags = set(db.session.get(Contact, contact.id).tag_names)
    assert tags == {"lead", "vip", "vip-seen"}


@pytest.mark.postgres
def test_two_schedulers_running_at_once_enroll_each_contact_once(
    app, acme, live_workflow, time_machine
):
    from datetime import UTC, datetime

    from app.automation.triggers.scheduler import run_due_date_triggers

    time_machine.move_to(datetime(2026, 12, 1, 8, tzinfo=UTC), tick=False)
    for _ in range(40):
        make_contact(acme)
    live_workflow(acme, "date_reached", {"at": "2026-12-01T09:00:00Z"}, allow_reentry=True)
    time_machine.move_to(datetime(2026, 12, 1, 9, 30, tzinfo=UTC), tick=False)
    barrier = threading.Barrier(4)
    totals, errors = [], []

    def worker():
        with app.app_context():
            try:
                barrier.wait()
                totals.append(run_due_date_triggers())
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(totals) == 40
    executions = executions_of(acme)
    assert len(executions) == len({e.contact_id for e in executions}) == 40
