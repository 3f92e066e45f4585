"""The same event delivered 10 times at once starts one execution.

Ten threads post the very same request to the app served over real HTTP
(threaded werkzeug: each request on its own thread, its own database
connection), released together by a barrier: API events with one
``event_id``, API trigger calls with one ``Idempotency-Key`` (and without
one), one public form submission posted ten times, and provider callbacks
carrying one event id. The database must hold one execution / one
recorded event, whatever the interleaving.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select

from app.automation.delivery.signing import sign_headers
from app.automation.lifecycle.publishing import activate_workflow
from app.clock import now
from app.extensions import db
from app.models import (
    Contact,
    EventLog,
    Form,
    FormSubmission,
    OutboxMessage,
    TrackingEvent,
    WorkflowExecution,
)
from app.tenancy import firm_context
from tests.delivery.conftest import configured, queue_message
from tests.factories import make_contact, make_workflow
from tests.faults.events_support import at_once, served

TIMES = 10
ROUNDS = 3
SECRET = "whsec_duplicate-events-test-key"
TAG = [{"node_id": "tag", "node_type": "add_tag", "configuration": {"tag": "started"}}]


@pytest.fixture
def base_url(app):
    with served(app) as url:
        yield url


def _live(firm, user, trigger_type: str, configuration: dict | None = None, **fields):
    workflow = make_workflow(
        firm,
        name=f"{trigger_type} workflow",
        nodes=TAG,
        triggers=[{"trigger_type": trigger_type, "configuration": configuration or {}}],
        **fields,
    )
    with firm_context(firm.id):
        activate_workflow(workflow, user)
        db.session.commit()
    return workflow


def _count(model, *where) -> int:
    db.session.rollback()
    stmt = select(func.count()).select_from(model).where(*where)
    return db.session.execute(stmt.execution_options(all_firms=True)).scalar()


def _executions(workflow) -> int:
    return _count(WorkflowExecution, WorkflowExecution.workflow_id == workflow.id)


def _report(name: str, responses, started: float, executions: int) -> None:
    statuses = sorted(r.status_code for r in responses)
    print(
        f"\n[{name}] events sent: {len(responses)}, statuses: {statuses}, "
        f"executions created: {executions}, duplicates: {max(executions - 1, 0)}, "
        f"{time.perf_counter() - started:.2f}s"
    )


@pytest.mark.parametrize("reentry", [False, True], ids=["once", "reentry"])
def test_one_api_event_posted_ten_times_starts_one_execution(
    base_url, acme, alice, token_for, reentry
):
    workflow = _live(acme, alice, "page_visited", allow_reentry=reentry)
    contact = make_contact(acme)
    headers = token_for(alice)
    body = {
        "type": "page_visited",
        "contact_id": contact.id,
        "data": {"url": "https://acme.test/pricing"},
        "event_id": "evt-dup-1",
    }
    started = time.perf_counter()
    responses = at_once(
        TIMES, lambda c: c.post(f"{base_url}/api/v1/events/", json=body, headers=headers)
    )
    assert [r.status_code for r in responses] == [202] * TIMES, [r.text for r in responses]
    assert _count(EventLog, EventLog.event_id == "evt-dup-1") == 1
    executions = _executions(workflow)
    _report("api event", responses, started, executions)
    assert executions == 1
    assert sum(len(r.json()["executions"]) for r in responses) == 1


@pytest.mark.parametrize("reentry", [False, True], ids=["once", "reentry"])
def test_one_idempotency_key_posted_ten_times_returns_one_execution(
    base_url, acme, alice, token_for, reentry
):
    workflow = _live(acme, alice, "api", allow_reentry=reentry)
    contact = make_contact(acme)
    headers = {**token_for(alice), "Idempotency-Key": "order-4711"}
    url = f"{base_url}/api/v1/automation/workflows/{workflow.id}/trigger/"
    body = {"contact_id": contact.id}
    started = time.perf_counter()
    responses = at_once(TIMES, lambda c: c.post(url, json=body, headers=headers))
    assert {r.status_code for r in responses} <= {200, 201}, [r.text for r in responses]
    executions = _executions(workflow)
    _report("api trigger with key", responses, started, executions)
    assert executions == 1
    assert len({r.json()["id"] for r in responses}) == 1


@pytest.mark.parametrize("reentry", [False, True], ids=["once", "reentry"])
def test_ten_trigger_calls_without_a_key_start_one_execution_per_contact(
    base_url, acme, alice, token_for, reentry
):
    """Without a key each call is a new request, but a contact already in
    the workflow is not started again (with or without re-entry): one 201,
    the rest 409."""
    workflow = _live(acme, alice, "api", allow_reentry=reentry)
    contact = make_contact(acme)
    headers = token_for(alice)
    url = f"{base_url}/api/v1/automation/workflows/{workflow.id}/trigger/"
    body = {"contact_id": contact.id}
    started = time.perf_counter()
    responses = at_once(TIMES, lambda c: c.post(url, json=body, headers=headers))
    executions = _executions(workflow)
    _report("api trigger without key", responses, started, executions)
    assert sorted(r.status_code for r in responses) == [201] + [409] * (TIMES - 1), [
        r.text for r in responses
    ]
    assert executions == 1


def _form(firm) -> Form:
    with firm_context(firm.id):
        form = Form(
            name="Newsletter",
            fields=[
                {"name": "email", "label": "Email", "type": "email", "required": True},
                {"name": "first_name", "label": "Name", "type": "text", "required": False},
            ],
        )
        db.session.add(form)
        db.session.commit()
        return form


@pytest.mark.parametrize("reentry", [False, True], ids=["once", "reentry"])
def test_one_form_submission_posted_ten_times_starts_one_execution(base_url, acme, alice, reentry):
    form = _form(acme)
    workflow = _live(acme, alice, "form_submitted", {"form_id": form.id}, allow_reentry=reentry)
    url = f"{base_url}/f/{form.form_key}"
    page = httpx.get(url, headers={"Accept": "application/json"}, trust_env=False).json()
    body = {
        "email": "double-click@example.com",
        "first_name": "Dora",
        page["token_field"]: page["token"],
    }
    started = time.perf_counter()
    responses = at_once(TIMES, lambda c: c.post(url, json=body))
    assert all(r.status_code < 400 for r in responses), [r.text for r in responses]
    executions = _executions(workflow)
    _report("form post", responses, started, executions)
    assert _count(Contact, func.lower(Contact.email) == "double-click@example.com") == 1
    assert executions == 1
    assert _count(FormSubmission) >= 1


@pytest.fixture
def sent_email(acme, app):
    with configured(app, SMTP_HOST="127.0.0.1"):
        message = queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
    with firm_context(acme.id):
        row = db.session.get(OutboxMessage, message.id)
        row.status, row.sent_at = "sent", now()
        db.session.commit()
    return message


@pytest.mark.parametrize(
    "event_type, kind",
    [
        ("email_bounced", "bounce"),
        ("email_opened", "open"),
        ("email_clicked", "click"),
        ("email_replied", "reply"),
    ],
)
def test_one_provider_callback_posted_ten_times_is_recorded_once(
    app, base_url, acme, alice, sent_email, event_type, kind
):
    workflow = _live(acme, alice, event_type, allow_reentry=True)
    payload = {
        "type": event_type,
        "message_id": sent_email.message_id,
        "email": sent_email.to_address,
        "url": "https://acme.test/offer",
        "event_id": f"provider-{kind}-1",
    }
    body = json.dumps(payload).encode()
    url = f"{base_url}/hooks/email-events"
    msg_id = f"msg-{kind}-1"

    def post(client):
        # Signed like a provider resending one callback: same id, fresh time.
        headers = {
            **sign_headers(SECRET, msg_id, body),
            "Content-Type": "application/json",
        }
        return client.post(url, content=body, headers=headers)

    started = time.perf_counter()
    with configured(app, EMAIL_EVENTS_SECRET=SECRET):
        responses = at_once(TIMES, post)
    assert [r.status_code for r in responses] == [200] * TIMES, [r.text for r in responses]
    assert sorted(r.json()["status"] for r in responses) == ["duplicate"] * (TIMES - 1) + [
        "recorded"
    ]
    executions = _executions(workflow)
    _report(f"provider {kind}", responses, started, executions)
    assert _count(TrackingEvent, TrackingEvent.kind == kind) == 1
    assert _count(EventLog, EventLog.event_type == event_type) == 1
    assert executions == 1


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_ten_copies_of_every_event_send_one_webhook_each_with_real_workers(
    app, acme, alice, token_for, database_url, redis_url, tmp_path
):
    """Real ``worker.py`` processes run what the events start: each
    distinct event, delivered 10 times at once, reaches the receiver once."""
    from tests.delivery.conftest import Receiver
    from tests.faults.events_support import worker_processes

    distinct = 10
    log_path = tmp_path / "workers.log"
    receiver = Receiver()
    hook = [
        {
            "node_id": "hook",
            "node_type": "webhook",
            "configuration": {
                "url": receiver.url + "/in",
                "payload": {"who": "{{ contact.email }}"},
            },
        }
    ]

    def live(trigger_type, configuration=None):
        workflow = make_workflow(
            acme,
            name=f"{trigger_type} hook",
            nodes=hook,
            triggers=[{"trigger_type": trigger_type, "configuration": configuration or {}}],
            allow_reentry=True,
        )
        with firm_context(acme.id):
            activate_workflow(workflow, alice)
            db.session.commit()
        return workflow

    form = _form(acme)
    flows = {
        "event": live("page_visited"),
        "trigger": live("api"),
        "form": live("form_submitted", {"form_id": form.id}),
        "provider": live("email_bounced"),
    }
    contacts = [make_contact(acme) for _ in range(distinct)]
    with configured(app, SMTP_HOST="127.0.0.1"):
        sent = [
            queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"}, contact=c)
            for c in contacts
        ]
    with firm_context(acme.id):
        for message in sent:
            row = db.session.get(OutboxMessage, message.id)
            row.status, row.sent_at = "sent", now()
        db.session.commit()
    provider = [(m.message_id, m.to_address) for m in sent]
    contact_ids = [c.id for c in contacts]
    headers = token_for(alice)
    posts = 0
    started = time.perf_counter()
    with (
        configured(app, WEBHOOK_ALLOW_PRIVATE=True, EMAIL_EVENTS_SECRET=SECRET),
        worker_processes(
            database_url, redis_url, 2, log_path=str(log_path), WEBHOOK_ALLOW_PRIVATE="1"
        ),
        served(app) as base,
    ):
        form_url = f"{base}/f/{form.form_key}"
        trigger_url = f"{base}/api/v1/automation/workflows/{flows['trigger'].id}/trigger/"
        for n in range(distinct):
            event = {
                "type": "page_visited",
                "contact_id": contact_ids[n],
                "event_id": f"e-{n}",
                "data": {"url": "https://acme.test/"},
            }
            at_once(
                TIMES, lambda c, e=event: c.post(f"{base}/api/v1/events/", json=e, headers=headers)
            )
            keyed = {**headers, "Idempotency-Key": f"k-{n}"}
            at_once(
                TIMES,
                lambda c, n=n, keyed=keyed: c.post(
                    trigger_url, json={"contact_id": contact_ids[n]}, headers=keyed
                ),
            )
            page = httpx.get(
                form_url, headers={"Accept": "application/json"}, trust_env=False
            ).json()
            entry = {"email": f"lead{n}@example.com", page["token_field"]: page["token"]}
            at_once(TIMES, lambda c, e=entry: c.post(form_url, json=e))
            body = json.dumps(
                {"type": "email_bounced", "message_id": provider[n][0], "event_id": f"b-{n}"}
            ).encode()
            signed = {**sign_headers(SECRET, f"m-{n}", body), "Content-Type": "application/json"}
            at_once(
                TIMES,
                lambda c, b=body, h=signed: c.post(
                    f"{base}/hooks/email-events", content=b, headers=h
                ),
            )
            posts += 4 * TIMES
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(receiver.requests) < 4 * distinct:
            time.sleep(0.2)
        time.sleep(2)  # a late duplicate would arrive now
    receiver.close()
    keys = [r["headers"]["idempotency-key"] for r in receiver.requests]
    per_flow = {name: _executions(wf) for name, wf in flows.items()}
    print(
        f"\n[real workers] events sent: {posts} ({4 * distinct} distinct x {TIMES}), "
        f"executions: {per_flow}, webhooks received: {len(keys)}, "
        f"duplicates: {len(keys) - len(set(keys))}, {time.perf_counter() - started:.1f}s"
    )
    assert per_flow == {name: distinct for name in flows}
    assert len(keys) == 4 * distinct and len(set(keys)) == 4 * distinct, log_path.read_text()[
        -3000:
    ]


def test_ten_different_events_emitted_at_once_start_one_execution_for_a_contact(app, acme, alice):
    """Re-entry lets a contact back in after it left, never twice at once:
    ten distinct events for one contact, emitted from ten threads at once
    straight into the bus (no HTTP to spread them out), start one
    execution. A few rounds; this found the race enrollment now closes."""
    from app.automation.triggers.bus import emit

    started = time.perf_counter()
    per_round = []
    for round_ in range(ROUNDS):
        workflow = _live(acme, alice, "page_visited", allow_reentry=True)
        contact_id = make_contact(acme).id
        barrier = threading.Barrier(TIMES)

        def body(i, round_=round_, contact_id=contact_id, barrier=barrier):
            with app.app_context():
                barrier.wait()
                emit(acme.id, "page_visited", contact_id, {"url": "/"}, event_id=f"r{round_}-{i}")
                db.session.remove()

        threads = [threading.Thread(target=body, args=(i,)) for i in range(TIMES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        per_round.append(_executions(workflow))
    print(
        f"\n[bus race] events: {ROUNDS * TIMES} ({ROUNDS} rounds x {TIMES}), executions per round: "
        f"{per_round}, {time.perf_counter() - started:.2f}s"
    )
    assert per_round == [1] * ROUNDS
