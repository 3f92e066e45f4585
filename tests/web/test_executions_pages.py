"""Executions, the timeline built by the real engine, cancel/retry, dead
letters with bulk retry, the outbox, and starting workflows by hand."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.automation.engine.jobs import drain
from app.automation.lifecycle.publishing import activate_workflow
from app.extensions import db
from app.models import DeadLetter, OutboxMessage, Workflow, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow
from tests.web.conftest import HX

SCORE_NODES = [
    {
        "node_id": "check_score",
        "node_type": "condition",
        "configuration": {
            "match": "all",
            "rules": [{"field": "contact.score", "op": "gte", "value": 50}],
        },
    },
    {
        "node_id": "send_welcome",
        "node_type": "send_email",
        "configuration": {"subject": "Welcome {{ contact.first_name }}", "body_text": "Hi"},
    },
    {"node_id": "goal", "node_type": "goal", "configuration": {}},
]
SCORE_EDGES = [("check_score", "send_welcome", "yes"), ("send_welcome", "goal")]


def _active_workflow(firm):
    workflow = make_workflow(
        firm,
        name="Score welcome",
        nodes=SCORE_NODES,
        edges=SCORE_EDGES,
        triggers=[{"trigger_type": "manual"}],
    )
    with firm_context(firm.id):
        workflow = db.session.get(Workflow, workflow.id)
        activate_workflow(workflow)
        db.session.commit()
    return workflow


def _executions(firm):
    with firm_context(firm.id):
        db.session.expire_all()
        return db.session.scalars(select(WorkflowExecution).order_by(WorkflowExecution.id)).all()


def _execution(firm, workflow, contact, status, node, **fields):
    with firm_context(firm.id):
        execution = WorkflowExecution(
            workflow_id=workflow.id,
            contact_id=contact.id,
            status=status,
            current_node=node,
            version=workflow.version or 1,
            idempotency_key=f"{workflow.id}-{contact.id}-{status}",
            **fields,
        )
        db.session.add(execution)
        db.session.commit()
        return execution


def test_a_manual_start_runs_and_the_timeline_explains_the_branch(client, signed_in, alice, acme):
    workflow = _active_workflow(acme)
    contact = make_contact(acme, email="high@example.com", first_name="Hana", score=80)
    token = signed_in(alice)
    response = client.post(
        f"/contacts/{contact.id}/start", data={"workflow_id": workflow.id, "csrf_token": token}
    )
    assert response.status_code == 302
    (execution,) = _executions(acme)
    assert execution.trigger_type == "manual"
    with firm_context(acme.id):
        drain()
    page = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert "Score welcome" in page
    assert "contact.score" in page and "actual <code>80</code>" in page
    assert "took <strong data-hx-disable>yes</strong>" in page
    assert "Welcome Hana" in page  # the e-mail it produced, from the outbox
    detail = client.get(f"/executions/{execution.id}").get_data(as_text=True)
    assert "Welcome Hana" in detail and "badge-goal_reached" in detail
    again = client.post(
        f"/contacts/{contact.id}/start", data={"workflow_id": workflow.id, "csrf_token": token}
    )
    assert again.status_code == 302
    assert len(_executions(acme)) == 1


def test_starting_a_paused_workflow_is_refused(client, signed_in, alice, acme):
    workflow = make_workflow(acme, name="Paused one", status="paused")
    contact = make_contact(acme)
    token = signed_in(alice)
    response = client.post(
        f"/contacts/{contact.id}/start", data={"workflow_id": workflow.id, "csrf_token": token}
    )
    assert response.status_code == 400
    assert "activate it before" in response.get_data(as_text=True)
    missing = client.post(f"/contacts/{contact.id}/start", data={"csrf_token": token})
    assert missing.status_code == 400
    assert _executions(acme) == []


def test_bulk_add_to_workflow_from_the_list(client, signed_in, alice, acme, globex):
    workflow = _active_workflow(acme)
    ours = [make_contact(acme) for _ in range(3)]
    theirs = make_contact(globex)
    token = signed_in(alice)
    response = client.post(
        "/contacts/enroll",
        data={
            "workflow_id": workflow.id,
            "ids": [c.id for c in ours] + [theirs.id],
            "csrf_token": token,
        },
    )
    assert response.status_code == 303
    assert sorted(e.contact_id for e in _executions(acme)) == sorted(c.id for c in ours)
    with firm_context(globex.id):
        assert db.session.scalars(select(WorkflowExecution)).all() == []
    nothing = client.post(
        "/contacts/enroll", data={"workflow_id": workflow.id, "csrf_token": token}
    )
    assert nothing.status_code == 303
    assert len(_executions(acme)) == 3


def test_lists_filter_by_status_per_workflow_and_firm_wide(client, signed_in, alice, acme, globex):
    workflow = _active_workflow(acme)
    other = make_workflow(globex, name="Globex flow")
    a, b = make_contact(acme), make_contact(acme)
    _execution(acme, workflow, a, "waiting", "send_welcome")
    _execution(acme, workflow, b, "failed", "send_welcome", last_error="SMTP said no")
    _execution(globex, other, make_contact(globex), "waiting", "x")
    signed_in(alice)
    everything = client.get("/executions").get_data(as_text=True)
    assert everything.count('<tr id="execution-') == 2
    failed = client.get("/executions?status=failed", headers=HX).get_data(as_text=True)
    assert failed.count('<tr id="execution-') == 1 and "SMTP said no" in failed
    assert "<html" not in failed
    per_workflow = client.get(f"/automation/{workflow.id}/executions?status=waiting")
    assert per_workflow.get_data(as_text=True).count('<tr id="execution-') == 1
    assert client.get(f"/automation/{other.id}/executions").status_code == 404
    assert "No executions yet" in client.get(
        f"/executions?contact={make_contact(acme).id}"
    ).get_data(as_text=True)


def test_cancel_stops_an_active_execution(client, signed_in, alice, acme):
    workflow = _active_workflow(acme)
    execution = _execution(acme, workflow, make_contact(acme), "waiting", "send_welcome")
    token = signed_in(alice)
    response = client.post(
        f"/executions/{execution.id}/cancel",
        data={"csrf_token": token},
        headers={**HX, "HX-Target": f"execution-{execution.id}"},
    )
    assert response.status_code == 200
    assert "badge-canceled" in response.get_data(as_text=True)
    (saved,) = _executions(acme)
    assert saved.status == "canceled"
    again = client.post(f"/executions/{execution.id}/cancel", data={"csrf_token": token})
    assert again.status_code == 302
    assert client.post(f"/executions/{execution.id}/cancel").status_code == 400  # no CSRF


def test_a_failed_execution_shows_its_error_and_retries(client, signed_in, alice, acme):
    workflow = _active_workflow(acme)
    execution = _execution(
        acme, workflow, make_contact(acme), "failed", "check_score", last_error="boom <b>"
    )
    signed_in(alice)
    page = client.get(f"/executions/{execution.id}").get_data(as_text=True)
    assert "boom &lt;b&gt;" in page and "Retry from the failed step" in page
    token = signed_in(alice)
    response = client.post(
        f"/executions/{execution.id}/retry",
        data={"csrf_token": token},
        headers={**HX, "HX-Target": "execution-status"},
    )
    assert response.status_code == 200
    assert "<html" not in response.get_data(as_text=True)
    (saved,) = _executions(acme)
    assert saved.status != "failed"
    refused = client.post(f"/executions/{execution.id}/retry", data={"csrf_token": token})
    assert refused.status_code == 302


def test_dead_letters_are_listed_and_retried_in_bulk(client, signed_in, alice, acme, charlie):
    workflow = _active_workflow(acme)
    first = _execution(acme, workflow, make_contact(acme), "failed", "check_score", last_error="x")
    second = _execution(acme, workflow, make_contact(acme), "failed", "check_score", last_error="y")
    with firm_context(acme.id):
        letters = [
            DeadLetter(
                execution_id=e.id, workflow_id=workflow.id, node_id="check_score", error="bad"
            )
            for e in (first, second)
        ]
        db.session.add_all(letters)
        db.session.commit()
        ids = [letter.id for letter in letters]
    token = signed_in(alice)
    page = client.get("/dead-letters").get_data(as_text=True)
    assert page.count('name="ids"') == 2
    response = client.post("/dead-letters/retry", data={"ids": ids, "csrf_token": token})
    assert response.status_code == 302
    assert {e.status for e in _executions(acme)} != {"failed"}
    with firm_context(acme.id):
        db.session.expire_all()
        assert all(letter.resolved_at for letter in db.session.scalars(select(DeadLetter)))
    assert "No dead letters" in client.get("/dead-letters").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": token})
    other = signed_in(charlie)
    assert "No dead letters" in client.get("/dead-letters?show=all").get_data(as_text=True)
    assert client.get(f"/executions/{first.id}").status_code == 404
    assert (
        client.post(f"/executions/{first.id}/cancel", data={"csrf_token": other}).status_code == 404
    )


def test_the_outbox_lists_recorded_messages(client, signed_in, alice, acme):
    workflow = _active_workflow(acme)
    contact = make_contact(acme, first_name="Ola", score=99)
    with firm_context(acme.id):
        from app.automation.engine.enrollment import enroll

        enroll(db.session.get(Workflow, workflow.id), [contact.id])
        drain()
        (message,) = db.session.scalars(select(OutboxMessage)).all()
    signed_in(alice)
    page = client.get("/outbox").get_data(as_text=True)
    assert "Welcome Ola" in page
    assert "No SMTP server is configured" in page
    only_sms = client.get("/outbox?channel=sms", headers=HX).get_data(as_text=True)
    assert "No message matches" in only_sms
    detail = client.get(f"/outbox/{message.id}").get_data(as_text=True)
    assert message.message_id.replace("<", "&lt;").replace(">", "&gt;") in detail


def test_the_outbox_shows_the_email_in_a_sandboxed_frame(
    client, auth, signed_in, alice, acme, charlie
):
    with firm_context(acme.id):
        message = OutboxMessage(
            workflow_id=None,
            node_id="welcome",
            channel="email",
            status="recorded",
            to_address="ola@example.com",
            subject="Hi",
            body_html='<p>Hello <img src="https://tracker.example/p.gif"><script>alert(1)</script></p>',
            message_id="<m1@test>",
        )
        db.session.add(message)
        db.session.commit()
    signed_in(alice)
    detail = client.get(f"/outbox/{message.id}").get_data(as_text=True)
    frame = re.search(r"<iframe[^>]*>", detail).group(0)
    assert " sandbox " in frame and f'src="/outbox/{message.id}/rendered"' in frame
    assert "&lt;p&gt;Hello" in detail  # the source is there too, escaped
    body = client.get(f"/outbox/{message.id}/rendered")
    csp = body.headers["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert "script-src" not in csp  # falls back to 'none'
    assert body.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert body.get_data(as_text=True).startswith("<p>Hello")
    client.post("/logout", data={"csrf_token": auth.csrf_token("/automation")})
    signed_in(charlie)
    assert client.get(f"/outbox/{message.id}/rendered").status_code == 404
