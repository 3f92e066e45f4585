"""Forecasts: the draft replayed over recorded events, in a sandbox
(docs/FORECAST.md). The forecast's figures equal what the real engine
then does with the same events; the forecast itself sends nothing and
changes nothing."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import func, select

from app.automation.analytics.forecast import run_forecast
from app.automation.engine.jobs import drain
from app.automation.lifecycle.publishing import activate_workflow
from app.automation.triggers.bus import emit
from app.extensions import db
from app.models import (
    Contact,
    ContactFlowState,
    EventLog,
    OutboxMessage,
    Tag,
    WorkflowExecution,
    WorkflowForecast,
)
from app.tenancy import firm_context
from tests.delivery.conftest import smtp_server  # noqa: F401
from tests.factories import make_contact, make_workflow

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00",
          "end": "17:00", "timezone": "UTC"}  # fmt: skip
NODES = [
    {"node_id": "hello", "node_type": "send_email",
     "configuration": {"subject": "Hello", "body_text": "Hi {{ contact.first_name }}"}},
    {"node_id": "pause", "node_type": "wait_time", "configuration": {"wait_duration_hours": 24}},
    {"node_id": "check", "node_type": "condition",
     "configuration": {"match": "all", "rules": [{"tag": "customer", "op": "has"}]}},
    {"node_id": "offer", "node_type": "send_email",
     "configuration": {"subject": "Offer", "body_text": "For you"}},
    {"node_id": "mark", "node_type": "add_tag", "configuration": {"tag": "welcomed"}},
]  # fmt: skip
EDGES = [("hello", "pause"), ("pause", "check"), ("check", "offer", "yes"), ("check", "mark", "no")]
TRIGGERS = [{"trigger_type": "contact_tag_added", "configuration": {"tag": "vip"}}]


def _world(acme):
    customer = make_contact(acme, first_name="Cy", timezone="UTC")
    with firm_context(acme.id):
        db.session.get(Contact, customer.id).tags.append(Tag(name="customer"))
        db.session.commit()
    contacts = [customer] + [make_contact(acme, timezone="UTC") for _ in range(3)]
    workflow = make_workflow(
        acme, "Forecast me", nodes=NODES, edges=EDGES, triggers=TRIGGERS, send_window=WINDOW
    )
    # Recorded while the workflow is a draft: nobody listens yet.
    events = [
        (END - timedelta(days=5, hours=-8), contacts[0], "vip"),  # 20:00: held till 09:00
        (END - timedelta(days=4, hours=2), contacts[1], "vip"),  # 10:00: inside the window
        (END - timedelta(days=3, hours=-9, minutes=-30), contacts[2], "vip"),  # 21:30: held
        (END - timedelta(days=2), contacts[0], "vip"),  # no re-entry: not enrolled again
        (END - timedelta(days=2), contacts[3], "other"),  # the filter says no
        (END - timedelta(days=40), contacts[3], "vip"),  # before the period
    ]
    for moment, contact, tag in events:
        with time_machine.travel(moment, tick=False):
            emit(acme.id, "contact_tag_added", contact.id, {"tag": tag}, source="test")
    return workflow, contacts


def _forecast(client, headers, workflow, days=30) -> dict:
    url = f"/api/v1/automation/workflows/{workflow.id}/forecast/"
    response = client.post(url, json={"days": days}, headers=headers)
    assert response.status_code == 202, response.json
    job = response.json["id"]
    assert response.json["status"] in ("queued", "running", "done")
    run_forecast(job)  # here, unless the in-process runner has it already
    deadline = time.monotonic() + 30
    while True:
        # The test client's requests share this test's session: end its
        # transaction, or each poll would see the same snapshot.
        db.session.rollback()
        answer = client.get(f"{url}{job}/", headers=headers)
        assert answer.status_code == 200
        if answer.json["status"] in ("done", "failed") or time.monotonic() > deadline:
            return answer.json
        time.sleep(0.05)


def _snapshot(firm_id):
    db.session.expire_all()
    with firm_context(firm_id):
        contacts = [
            (c.id, c.email, c.score, c.updated_at, sorted(t.name for t in c.tags))
            for c in db.session.scalars(select(Contact).order_by(Contact.id))
        ]
        counts = {
            model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (OutboxMessage, WorkflowExecution, ContactFlowState)
        }
    return contacts, counts


def _real_run(acme, alice, workflow):
    """The same recorded events through the real engine, published, with
    the clock moved to each event and each due wait in turn."""
    with firm_context(acme.id):
        events = list(
            db.session.execute(
                select(EventLog.created_at, EventLog.contact_id, EventLog.data)
                .where(EventLog.created_at >= END - timedelta(days=30))
                .order_by(EventLog.created_at, EventLog.id)
            )
        )
        activate_workflow(workflow, alice)
        db.session.commit()
    pending = [(created, contact_id, data) for created, contact_id, data in events]
    with time_machine.travel(END - timedelta(days=30), tick=False) as clock:
        while True:
            with firm_context(acme.id):
                wake = db.session.scalar(
                    select(func.min(WorkflowExecution.wake_at)).where(
                        WorkflowExecution.status == "waiting"
                    )
                )
            wake = wake.replace(tzinfo=UTC) if wake is not None and wake.tzinfo is None else wake
            following = pending[0][0].replace(tzinfo=UTC) if pending else None
            moments = [m for m in (wake, following) if m is not None and m <= END]
            if not moments:
                break
            clock.move_to(min(moments))
            if following is not None and following <= min(moments):
                _, contact_id, data = pending.pop(0)
                emit(acme.id, "contact_tag_added", contact_id, data, source="replay")
            drain()
            db.session.expire_all()


def test_a_forecast_equals_the_real_run_and_sends_nothing(
    client,
    acme,
    alice,
    token_for,
    smtp_server,  # noqa: F811  (the fixture)
):
    workflow, contacts = _world(acme)
    before = _snapshot(acme.id)
    with time_machine.travel(END, tick=False):
        result = _forecast(client, token_for(alice), workflow)
    assert result["status"] == "done", result
    # The sandbox sent nothing and changed nothing.
    assert smtp_server.messages == []
    assert _snapshot(acme.id) == before
    assert before[1] == {"OutboxMessage": 0, "WorkflowExecution": 0, "ContactFlowState": 0}

    assert result["enrollments"] == 3
    assert result["holds"] == {"send_window": 2}
    assert result["per_node"]["hello"]["held"] == 2
    assert result["per_node"]["offer"]["held"] == 0

    _real_run(acme, alice, workflow)
    with firm_context(acme.id):
        executions = db.session.scalar(select(func.count()).select_from(WorkflowExecution))
        entered = Counter(db.session.scalars(select(ContactFlowState.node_id)))
        sent = Counter(
            created.date().isoformat()
            for created in db.session.scalars(
                select(OutboxMessage.created_at).where(OutboxMessage.status == "sent")
            )
        )
        statuses = set(db.session.scalars(select(WorkflowExecution.status)))
    assert statuses == {"completed"}
    assert result["enrollments"] == executions
    assert {node: counts["entered"] for node, counts in result["per_node"].items()} == {
        node["node_id"]: entered.get(node["node_id"], 0) for node in NODES
    }
    forecast_days = {d["date"]: d["count"] for d in result["messages_per_day"] if d["count"]}
    assert forecast_days == dict(sent)
    assert result["messages"] == sum(sent.values()) == len(smtp_server.messages) == 4


def test_bad_days_are_refused_by_field(client, acme, alice, token_for):
    workflow = make_workflow(acme, "Bad days", nodes=NODES, edges=EDGES, triggers=TRIGGERS)
    url = f"/api/v1/automation/workflows/{workflow.id}/forecast/"
    for days in (0, -3, 366, "thirty", 2.5, None, True):
        response = client.post(url, json={"days": days}, headers=token_for(alice))
        assert response.status_code == 422, (days, response.json)
        assert "days" in response.json["error"]["fields"], days
    with firm_context(acme.id):
        assert db.session.scalar(select(func.count()).select_from(WorkflowForecast)) == 0


def test_another_firms_workflow_and_job_are_404(client, acme, alice, globex, charlie, token_for):
    workflow = make_workflow(acme, "Mine", nodes=NODES, edges=EDGES, triggers=TRIGGERS)
    url = f"/api/v1/automation/workflows/{workflow.id}/forecast/"
    mine = client.post(url, json={"days": 7}, headers=token_for(alice))
    assert mine.status_code == 202
    job = mine.json["id"]
    run_forecast(job)
    other = token_for(charlie)
    assert client.post(url, json={"days": 7}, headers=other).status_code == 404
    assert client.get(f"{url}{job}/", headers=other).status_code == 404
    theirs = make_workflow(globex, "Theirs", nodes=NODES, edges=EDGES, triggers=TRIGGERS)
    wrong = f"/api/v1/automation/workflows/{theirs.id}/forecast/{job}/"
    assert client.get(wrong, headers=other).status_code == 404
    assert client.get(f"{url}{job}/", headers=token_for(alice)).status_code == 200


CAPPED_NODES = [
    {"node_id": "first", "node_type": "send_email",
     "configuration": {"subject": "One", "body_text": "1"}},
    {"node_id": "soon", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}},
    {"node_id": "second", "node_type": "send_email",
     "configuration": {"subject": "Two", "body_text": "2"}},
]  # fmt: skip


def test_frequency_cap_holds_are_counted_as_the_real_run_holds(
    client,
    acme,
    alice,
    token_for,
    smtp_server,  # noqa: F811  (the fixture)
):
    with firm_context(acme.id):
        caps = {"frequency_caps": [{"max": 1, "per_days": 2}]}
        acme.settings = {**(acme.settings or {}), "sending": caps}
        db.session.merge(acme)
        db.session.commit()
    contact = make_contact(acme, timezone="UTC")
    workflow = make_workflow(
        acme,
        "Capped",
        nodes=CAPPED_NODES,
        edges=[("first", "soon"), ("soon", "second")],
        triggers=TRIGGERS,
    )
    with time_machine.travel(END - timedelta(days=6), tick=False):
        emit(acme.id, "contact_tag_added", contact.id, {"tag": "vip"}, source="test")
    with time_machine.travel(END, tick=False):
        result = _forecast(client, token_for(alice), workflow)
    assert result["status"] == "done", result
    assert smtp_server.messages == []
    assert result["holds"] == {"frequency_cap": 1}
    assert result["per_node"]["second"]["held"] == 1
    days = [d["date"] for d in result["messages_per_day"] if d["count"]]
    assert days == [
        (END - timedelta(days=6)).date().isoformat(),
        (END - timedelta(days=4)).date().isoformat(),
    ]
    _real_run(acme, alice, workflow)
    with firm_context(acme.id):
        sent = sorted(
            created.date().isoformat()
            for created in db.session.scalars(
                select(OutboxMessage.created_at).where(OutboxMessage.status == "sent")
            )
        )
        held = db.session.scalar(
            select(func.count())
            .select_from(ContactFlowState)
            .where(ContactFlowState.node_id == "second", ContactFlowState.exited_at.is_not(None))
        )
    assert sent == days and held == 1
    assert len(smtp_server.messages) == 2


def test_an_edit_of_a_live_workflow_says_where_contacts_inside_go(client, acme, alice, token_for):
    from app.automation.engine.enrollment import enroll
    from app.automation.engine.jobs import drain
    from app.models import WorkflowNode

    workflow = make_workflow(acme, "Live", nodes=NODES, edges=EDGES, triggers=TRIGGERS)
    with firm_context(acme.id):
        activate_workflow(workflow, alice)
        db.session.commit()
    inside = [make_contact(acme, timezone="UTC") for _ in range(2)]
    with firm_context(acme.id):
        enroll(workflow, [c.id for c in inside], trigger_type="manual")
    drain()  # both wait at "pause" (24 hours)
    with firm_context(acme.id):
        # The draft drops the wait: the contacts waiting there have no step.
        node = db.session.scalars(select(WorkflowNode).where(WorkflowNode.node_id == "pause")).one()
        db.session.delete(node)
        db.session.commit()
    result = _forecast(client, token_for(alice), workflow, days=3)
    assert result["status"] == "done", result
    assert result["moves"] == [{"node": "pause", "contacts": 2, "to": None, "removed": True}]
    assert "pause" not in result["per_node"]


def test_a_forecast_whose_worker_died_fails_and_a_lost_job_runs_again(acme, alice):
    from app.automation.analytics import forecast as forecasting

    workflow, _ = _world(acme)
    with firm_context(acme.id):
        dead = WorkflowForecast(workflow_id=workflow.id, days=30, status="running")
        lost = WorkflowForecast(workflow_id=workflow.id, days=30, status="queued")
        fresh = WorkflowForecast(workflow_id=workflow.id, days=30, status="running")
        db.session.add_all([dead, lost, fresh])
        db.session.commit()
        ids = dead.id, lost.id, fresh.id
    table = WorkflowForecast.__table__
    old = datetime.now(UTC) - timedelta(seconds=forecasting.STALL_SECONDS + 5)
    db.session.execute(table.update().where(table.c.id.in_(ids[:2])).values(updated_at=old))
    db.session.commit()

    assert forecasting.recover_forecasts() == {"stalled": 1, "requeued": 1}
    run_forecast(ids[1])  # here, unless the in-process runner has it already
    deadline = time.monotonic() + 30
    while True:
        db.session.rollback()  # a fresh snapshot on each look
        with firm_context(acme.id):
            dead, lost, fresh = (db.session.get(WorkflowForecast, i) for i in ids)
        if lost.status in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    with firm_context(acme.id):
        assert dead.status == "failed" and "worker" in dead.error and dead.finished_at
        assert lost.status == "done" and lost.result["enrollments"] > 0
        assert fresh.status == "running"
    # A second pass finds nothing more to do.
    assert forecasting.recover_forecasts() == {"stalled": 0, "requeued": 0}
