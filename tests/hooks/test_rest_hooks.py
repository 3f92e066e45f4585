"""REST hook subscriptions: a real local receiver gets signed events; 410,
retries with backoff, bad input, other firms (docs/CONTRACT.md "REST hooks")."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from app.automation.delivery.tracking import unsubscribe_url
from app.automation.engine.sweeper import process_waiting_executions
from app.automation.hooks import facts, sender
from app.automation.operations.retention import run_retention
from app.automation.triggers import forms
from app.clock import now
from app.extensions import db
from app.models import Form, HookDelivery, HookSubscription
from app.tenancy import firm_context
from tests.api.test_query_counts import counting_statements
from tests.delivery.conftest import configured, queue_message
from tests.engine.helpers import active_workflow, chain, run
from tests.factories import make_contact

SUBSCRIPTIONS = "/api/v1/hooks/subscriptions/"


@pytest.fixture
def workflow(acme, alice):
    nodes, edges = chain(
        ("tag", "add_tag", {"tag": "hooked"}),
        ("won", "goal", {"goal_value": 5}),
    )
    return active_workflow(acme, alice, nodes, edges)


def _subscribe(api, url, event, **extra):
    response = api.post(SUBSCRIPTIONS, json={"target_url": url, "event": event, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _deliveries(firm) -> list[HookDelivery]:
    db.session.expire_all()
    with firm_context(firm.id):
        return list(db.session.scalars(select(HookDelivery).order_by(HookDelivery.id)))


def _verified(request, secret) -> dict:
    """The receiver's check, with the Standard Webhooks reference library."""
    return Webhook(secret).verify(request["body"], request["headers"])


def test_a_subscriber_receives_signed_execution_and_goal_events(api, acme, workflow, receiver):
    subs = {
        event: _subscribe(api, f"{receiver.url}/zap/{event}", event)
        for event in ("execution.started", "execution.completed", "goal.reached")
    }
    assert all(s["secret"].startswith("whsec_") for s in subs.values())
    contact = make_contact(acme, first_name="Ann")
    execution = run(workflow, contact)
    assert execution.status == "goal_reached"
    assert len(_deliveries(acme)) == 3
    assert sender.deliver_due() == 3
    by_path = {request["path"]: request for request in receiver.requests}
    assert len(receiver.requests) == 3
    for event, sub in subs.items():
        request = by_path[f"/zap/{event}"]
        body = _verified(request, sub["secret"])
        assert body["event"] == event and body["occurred_at"].endswith("Z")
        assert body["data"]["contact"]["email"] == contact.email
        assert body["data"]["execution"]["id"] == execution.id
        assert body["data"]["workflow"] == {"id": workflow.id, "name": workflow.name}
        assert request["headers"]["idempotency-key"] == request["headers"]["webhook-id"]
        # Another subscription's secret does not verify it.
        other = next(s for e, s in subs.items() if e != event)
        with pytest.raises(Exception, match="(?i)signature"):
            _verified(request, other["secret"])
    assert {d.status for d in _deliveries(acme)} == {"delivered"}
    listed = api.get(SUBSCRIPTIONS).get_json()["results"]
    assert {s["last_delivery_status"] for s in listed} == {"delivered"}
    assert all("secret" not in s for s in listed)
    # Sent once: nothing is due again.
    assert sender.deliver_due() == 0


def test_a_410_answer_removes_the_subscription(api, acme, workflow, receiver):
    sub = _subscribe(api, receiver.url + "/gone", "execution.completed")
    receiver.statuses = [410]
    run(workflow, make_contact(acme))
    run(workflow, make_contact(acme))
    assert sender.deliver_due() == 2
    assert len(receiver.requests) == 1  # the second was dropped with the subscription
    assert api.get(SUBSCRIPTIONS).get_json()["results"] == []
    assert api.get(f"{SUBSCRIPTIONS}{sub['id']}/").status_code == 404
    db.session.expire_all()
    with firm_context(acme.id):
        ended = db.session.get(HookSubscription, sub["id"])
        assert ended.active is False and "410" in ended.ended_reason
    assert [d.status for d in _deliveries(acme)] == ["gone", "gone"]
    assert _deliveries(acme)[0].status_code == 410
    # Later facts make no delivery.
    run(workflow, make_contact(acme))
    assert len(_deliveries(acme)) == 2


def test_5xx_answers_are_retried_with_backoff_under_one_webhook_id(api, acme, workflow, receiver):
    sub = _subscribe(api, receiver.url + "/flaky", "execution.completed")
    receiver.statuses = [500, 503]
    run(workflow, make_contact(acme))
    start = now()
    assert sender.deliver_due() == 1
    [first] = _deliveries(acme)
    assert (first.status, first.attempts, first.status_code) == ("pending", 1, 500)
    assert timedelta(seconds=59) < first.next_attempt_at - start < timedelta(seconds=62)
    assert sender.deliver_due() == 0  # not due yet
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert sender.deliver_due() == 1
        [second] = _deliveries(acme)
        assert (second.attempts, second.status_code) == (2, 503)
        assert (
            timedelta(minutes=5) <= second.next_attempt_at - now() < timedelta(minutes=5, seconds=2)
        )
    with time_machine.travel(start + timedelta(minutes=7), tick=False):
        assert sender.deliver_due() == 1
    [done] = _deliveries(acme)
    assert (done.status, done.attempts, done.status_code) == ("delivered", 3, 200)
    ids = {request["headers"]["webhook-id"] for request in receiver.requests}
    bodies = {request["body"] for request in receiver.requests}
    assert len(receiver.requests) == 3 and len(ids) == 1 and len(bodies) == 1
    # Signed at each attempt's time: the first was sent now.
    assert _verified(receiver.requests[0], sub["secret"])["event"] == "execution.completed"


def test_a_timeout_is_retried_and_the_last_failure_is_dead(api, acme, workflow, app, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts, never answers
    monkeypatch.setattr(sender, "TIMEOUT_SECONDS", 0.3)
    try:
        with configured(app, WEBHOOK_ALLOW_PRIVATE=True):
            port = silent.getsockname()[1]
            _subscribe(api, f"http://127.0.0.1:{port}/slow", "execution.completed")
            run(workflow, make_contact(acme))
            assert sender.deliver_due() == 1
            [row] = _deliveries(acme)
            assert row.status == "pending" and "timed out" in row.last_error
            moment = now()
            for waited in sender.BACKOFF:
                moment += waited + timedelta(seconds=1)
                with time_machine.travel(moment, tick=False):
                    assert sender.deliver_due() == 1
    finally:
        silent.close()
    [row] = _deliveries(acme)
    assert (row.status, row.attempts, row.next_attempt_at) == ("dead", 6, None)


def workflow_id(firm) -> int:
    return active_workflow(firm, None, *chain(("t", "add_tag", {"tag": "y"}))).id


def test_bad_input_names_the_field(api, acme, globex, receiver):
    def refused(body, status, field):
        response = api.post(SUBSCRIPTIONS, json=body)
        assert response.status_code == status, response.get_json()
        assert field in response.get_json()["error"]["fields"]

    good = {"target_url": receiver.url + "/x", "event": "goal.reached"}
    refused({**good, "target_url": "ftp://example.com/x"}, 422, "target_url")
    refused({**good, "target_url": "not a url"}, 422, "target_url")
    refused({**good, "event": "execution.exploded"}, 400, "event")
    refused({"event": "goal.reached"}, 400, "target_url")
    refused({**good, "surprise": 1}, 400, "surprise")
    other_firms = active_workflow(globex, None, *chain(("t", "add_tag", {"tag": "x"})))
    refused({**good, "workflow": other_firms.id}, 422, "workflow")
    refused({**good, "workflow": 99999}, 422, "workflow")
    refused({**good, "event": "form.submitted", "workflow": workflow_id(acme)}, 422, "workflow")
    with configured(api.client.application, WEBHOOK_ALLOW_PRIVATE=False):
        refused({**good, "target_url": "http://10.0.0.8/hook"}, 422, "target_url")
        refused({**good, "target_url": "http://169.254.169.254/latest"}, 422, "target_url")
    with firm_context(acme.id):
        assert db.session.scalar(select(func.count()).select_from(HookSubscription)) == 0


def test_another_firms_subscription_is_404(api, api_as, charlie, receiver):
    theirs = _subscribe(api_as(charlie), receiver.url + "/theirs", "goal.reached")
    assert api.get(f"{SUBSCRIPTIONS}{theirs['id']}/").status_code == 404
    assert api.delete(f"{SUBSCRIPTIONS}{theirs['id']}/").status_code == 404
    assert api.get(SUBSCRIPTIONS).get_json()["results"] == []
    assert api_as(charlie).get(f"{SUBSCRIPTIONS}{theirs['id']}/").status_code == 200
    assert api_as(charlie).delete(f"{SUBSCRIPTIONS}{theirs['id']}/").status_code == 204
    assert api_as(charlie).get(SUBSCRIPTIONS).get_json()["results"] == []


def test_portal_users_get_403(api_as, paula, receiver):
    response = api_as(paula).post(
        SUBSCRIPTIONS, json={"target_url": receiver.url, "event": "goal.reached"}
    )
    assert response.status_code == 403
    assert api_as(paula).get(SUBSCRIPTIONS).status_code == 403


def test_only_the_firms_and_the_workflows_facts_are_delivered(
    api, api_as, charlie, acme, alice, workflow, receiver
):
    other = active_workflow(acme, alice, *chain(("t", "add_tag", {"tag": "x"})))
    _subscribe(api, receiver.url + "/one", "execution.completed", workflow=workflow.id)
    _subscribe(api_as(charlie), receiver.url + "/globex", "execution.completed")
    run(other, make_contact(acme))
    run(workflow, make_contact(acme))
    assert sender.deliver_due() == 1
    assert [r["path"] for r in receiver.requests] == ["/one"]


def test_no_subscription_costs_the_engine_no_statement(api_as, charlie, acme, workflow, receiver):
    _subscribe(api_as(charlie), receiver.url + "/globex", "execution.completed")
    with counting_statements() as statements:
        run(workflow, make_contact(acme))
    assert not [s for s in statements if "INSERT INTO hook_deliveries" in s]
    assert _deliveries(acme) == []


def test_a_fact_recorded_twice_is_delivered_once(api, acme, workflow, receiver):
    _subscribe(api, receiver.url + "/once", "execution.completed")
    execution = run(workflow, make_contact(acme))
    with db.engine.begin() as conn:
        assert facts.record_walked(conn, [], [execution.id], [], now()) == 0
    assert len(_deliveries(acme)) == 1
    # A second claimer finds the row taken.
    assert len(sender.claim(10)) == 1
    assert sender.claim(10) == []


def test_form_submissions_and_unsubscribes_are_delivered(api, acme, client, receiver):
    form_sub = _subscribe(api, receiver.url + "/form", "form.submitted")
    unsub = _subscribe(api, receiver.url + "/unsub", "contact.unsubscribed")
    with firm_context(acme.id):
        form = Form(name="Signup", fields=[{"name": "email", "type": "email", "required": True}])
        db.session.add(form)
        db.session.commit()
    submission, contact, _ = forms.submit(form, {"email": "new@example.com"})
    message = queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
    assert client.post(unsubscribe_url(acme.id, message.id)).status_code == 200
    assert client.post(unsubscribe_url(acme.id, message.id)).status_code == 200  # again
    assert sender.deliver_due() == 2
    by_path = {request["path"]: request for request in receiver.requests}
    submitted = _verified(by_path["/form"], form_sub["secret"])["data"]
    assert submitted["form"] == {"id": form.id, "name": "Signup"}
    assert submitted["submission"] == {"id": submission.id, "fields": {"email": "new@example.com"}}
    assert submitted["contact"]["email"] == "new@example.com"
    gone = _verified(by_path["/unsub"], unsub["secret"])["data"]
    assert gone["how"] == "one_click" and gone["contact"]["unsubscribed"] is True


def test_the_sweeper_sends_what_is_due(api, acme, workflow, receiver, app):
    _subscribe(api, receiver.url + "/swept", "execution.completed")
    run(workflow, make_contact(acme))
    with configured(app, REDIS_URL=None):
        assert process_waiting_executions()["hooks"] == 1
    assert len(receiver.requests) == 1


def test_samples_have_the_delivery_shape(api):
    for event in ("execution.completed", "form.submitted", "contact.unsubscribed"):
        response = api.get(f"/api/v1/hooks/samples/{event}/")
        assert response.status_code == 200
        [sample] = response.get_json()["results"]
        assert sample["event"] == event and "contact" in sample["data"]
    assert api.get("/api/v1/hooks/samples/nope/").status_code == 404


def test_delete_removes_a_subscription(api, receiver):
    sub = _subscribe(api, receiver.url + "/bye", "goal.reached")
    assert api.delete(f"{SUBSCRIPTIONS}{sub['id']}/").status_code == 204
    assert api.get(f"{SUBSCRIPTIONS}{sub['id']}/").status_code == 404
    assert json.loads(api.get(SUBSCRIPTIONS).data)["results"] == []


def test_a_claim_whose_worker_died_is_sent_after_its_lease(api, acme, workflow, receiver):
    _subscribe(api, receiver.url + "/late", "execution.completed")
    run(workflow, make_contact(acme))
    start = now()
    assert len(sender.claim(10)) == 1  # the worker dies here, before sending
    assert sender.deliver_due() == 0 and receiver.requests == []
    with time_machine.travel(start + timedelta(seconds=sender.LEASE_SECONDS + 1), tick=False):
        assert sender.any_due()
        assert sender.deliver_due() == 1
    [row] = _deliveries(acme)
    assert (row.status, row.attempts) == ("delivered", 1)
    assert len(receiver.requests) == 1


def test_deliveries_past_event_retention_are_deleted(api, acme, workflow, receiver, app):
    _subscribe(api, receiver.url + "/old", "execution.completed")
    run(workflow, make_contact(acme))
    assert sender.deliver_due() == 1
    days = int(app.config["EVENT_RETENTION_DAYS"])
    start = now()
    with time_machine.travel(start + timedelta(days=days - 1), tick=False):
        run(workflow, make_contact(acme))  # a newer one, kept
        db.session.remove()  # no lock of this session in the partition work's way
        assert run_retention().hook_deliveries_deleted == 0
    with time_machine.travel(start + timedelta(days=days + 1), tick=False):
        assert run_retention().hook_deliveries_deleted == 1
    with db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(HookDelivery.__table__)) == 1
