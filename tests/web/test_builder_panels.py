"""Builder panels: triggers, settings, activation, live counts, test runs."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import WorkflowExecution
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow
from tests.web.conftest import HX
from tests.web.test_builder import reload_workflow, url


def post(client, token, path, data=None):
    return client.post(path, data={"csrf_token": token, **(data or {})}, headers=HX)


def welcome_without_trigger(firm):
    return make_workflow(firm, nodes=WELCOME_NODES, edges=WELCOME_EDGES)


def test_the_triggers_panel_is_a_fragment_and_a_page(client, signed_in, alice, acme):
    workflow = make_workflow(acme, triggers=[{"trigger_type": "contact_created"}])
    signed_in(alice)
    fragment = client.get(url(workflow, "/triggers"), headers=HX).get_data(as_text=True)
    assert "Contact created" in fragment and "<html" not in fragment
    page = client.get(url(workflow, "/triggers")).get_data(as_text=True)
    assert "<html" in page and "Contact created" in page
    form = client.get(url(workflow, "/triggers?trigger_type=score_threshold_reached"), headers=HX)
    assert 'name="threshold"' in form.get_data(as_text=True)


def test_it_adds_a_trigger_with_its_filter(client, signed_in, alice, acme):
    workflow = welcome_without_trigger(acme)
    token = signed_in(alice)
    response = post(
        client,
        token,
        url(workflow, "/triggers"),
        {
            "trigger_type": "score_threshold_reached",
            "threshold": "80",
            "rules-0-kind": "tag",
            "rules-0-op": "has_not",
            "rules-0-tag": "customer",
        },
    )
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "graph-changed"
    (trigger,) = reload_workflow(workflow).triggers
    assert trigger.trigger_type == "score_threshold_reached"
    assert trigger.configuration == {
        "threshold": 80,
        "match": "all",
        "rules": [{"tag": "customer", "op": "has_not"}],
    }
    assert 'id="trigger-count" data-hx-swap-oob="true">1<' in response.get_data(as_text=True)


def test_an_invalid_trigger_is_not_added(client, signed_in, alice, acme):
    workflow = welcome_without_trigger(acme)
    token = signed_in(alice)
    missing = post(
        client, token, url(workflow, "/triggers"), {"trigger_type": "score_threshold_reached"}
    )
    assert missing.status_code == 422
    assert "threshold: Field required" in missing.get_data(as_text=True)
    words = post(
        client,
        token,
        url(workflow, "/triggers"),
        {"trigger_type": "time_delay", "delay_hours": "soon"},
    )
    assert words.status_code == 422 and "must be a number" in words.get_data(as_text=True)
    unknown = post(client, token, url(workflow, "/triggers"), {"trigger_type": "moon_phase"})
    assert unknown.status_code == 422
    assert reload_workflow(workflow).triggers == []


def test_it_configures_disables_enables_and_removes_a_trigger(client, signed_in, alice, acme):
    workflow = make_workflow(acme, triggers=[{"trigger_type": "page_visited"}])
    trigger_id = reload_workflow(workflow).triggers[0].id
    token = signed_in(alice)
    base = url(workflow, f"/triggers/{trigger_id}")
    assert post(client, token, base, {"url_contains": "/pricing"}).status_code == 200
    assert reload_workflow(workflow).triggers[0].configuration == {"url_contains": "/pricing"}
    assert post(client, token, base + "/toggle").status_code == 200
    assert reload_workflow(workflow).triggers[0].is_active is False
    assert post(client, token, base + "/toggle").status_code == 200
    assert reload_workflow(workflow).triggers[0].is_active is True
    assert post(client, token, base + "/delete").status_code == 200
    assert reload_workflow(workflow).triggers == []
    assert post(client, token, base + "/delete").status_code == 404
    plain = client.post(
        url(workflow, "/triggers"), data={"csrf_token": token, "trigger_type": "api"}
    )
    assert plain.status_code == 302 and plain.headers["Location"].endswith(
        url(workflow, "/triggers")
    )
    assert [t.trigger_type for t in reload_workflow(workflow).triggers] == ["api"]


def test_another_firm_cannot_touch_the_triggers(client, signed_in, charlie, acme):
    workflow = make_workflow(acme, triggers=[{"trigger_type": "contact_created"}])
    trigger_id = reload_workflow(workflow).triggers[0].id
    token = signed_in(charlie)
    assert client.get(url(workflow, "/triggers"), headers=HX).status_code == 404
    assert post(client, token, url(workflow, f"/triggers/{trigger_id}/delete")).status_code == 404
    assert len(reload_workflow(workflow).triggers) == 1


def test_it_saves_the_settings(client, signed_in, alice, acme):
    workflow = make_workflow(acme)
    token = signed_in(alice)
    response = post(
        client,
        token,
        url(workflow, "/settings"),
        {
            "name": "Welcome v2",
            "description": "New contacts",
            "allow_reentry": "on",
            "enroll_existing": "on",
        },
    )
    assert response.status_code == 200
    assert "Settings saved." in response.get_data(as_text=True)
    # The page title follows (an out-of-band swap).
    assert 'id="builder-title" data-hx-disable data-hx-swap-oob="true"' in response.get_data(
        as_text=True
    )
    saved = reload_workflow(workflow)
    assert (saved.name, saved.description) == ("Welcome v2", "New contacts")
    assert (saved.allow_reentry, saved.exit_on_goal, saved.enroll_existing) == (True, False, True)
    empty = post(client, token, url(workflow, "/settings"), {"name": "  "})
    assert empty.status_code == 422
    assert "Give the workflow a name." in empty.get_data(as_text=True)
    assert reload_workflow(workflow).name == "Welcome v2"
    page = client.get(url(workflow, "/settings")).get_data(as_text=True)
    assert "<html" in page and 'value="Welcome v2"' in page


def test_activation_failure_lists_the_problems_linked_to_nodes(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {
                "node_id": "mail",
                "node_type": "send_email",
                "configuration": {"subject": "Hi", "body_text": "x"},
            },
            {"node_id": "stray", "node_type": "add_tag", "configuration": {"tag": "x"}},
        ],
    )
    token = signed_in(alice)
    response = post(client, token, url(workflow, "/activate"))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Cannot activate yet" in body
    assert 'data-select-node="stray"' in body and 'href="?node=stray"' in body
    assert "add an active trigger" in body
    assert reload_workflow(workflow).status == "draft"


def test_it_activates_and_pauses(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "contact_created"}],
    )
    token = signed_in(alice)
    response = post(client, token, url(workflow, "/activate"))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_data(as_text=True)
    assert "Active (version 1)" in body
    assert (
        f'data-hx-get="/automation/builder/{workflow.id}/counts" data-hx-trigger="load, every 5s"'
        in body
    )
    assert reload_workflow(workflow).status == "active"
    paused = post(client, token, url(workflow, "/pause"))
    assert paused.status_code == 200
    assert reload_workflow(workflow).status == "paused"
    again = post(client, token, url(workflow, "/pause"))
    assert again.status_code == 409
    plain = client.post(url(workflow, "/activate"), data={"csrf_token": token})
    assert plain.status_code == 302


def test_live_counts_per_node(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "contact_created"}],
    )
    contact = make_contact(acme)
    with firm_context(acme.id):
        db.session.add(
            WorkflowExecution(
                workflow_id=workflow.id,
                contact_id=contact.id,
                status="waiting",
                current_node="wait_2_days",
                idempotency_key="k1",
            )
        )
        db.session.commit()
    signed_in(alice)
    body = client.get(url(workflow, "/counts"), headers=HX).get_data(as_text=True)
    assert 'data-node="wait_2_days" data-waiting="1"' in body
    assert client.get(url(workflow, "/counts")).status_code == 302


def test_a_test_run_shows_each_step_and_sends_nothing(client, signed_in, alice, acme):
    from app.models import OutboxMessage

    workflow = welcome_without_trigger(acme)
    contact = make_contact(acme, first_name="Ada")
    token = signed_in(alice)
    panel = client.get(url(workflow, "/test-run"), headers=HX).get_data(as_text=True)
    assert contact.email in panel
    response = post(client, token, url(workflow, "/test-run"), {"contact_id": str(contact.id)})
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert "data-test-path=" in body
    for key in ("send_welcome_email", "wait_2_days", "goal"):
        assert f'data-select-node="{key}"' in body
    with firm_context(acme.id):
        execution = db.session.scalars(select(WorkflowExecution)).one()
        assert execution.test_mode is True
        statuses = {row.status for row in db.session.scalars(select(OutboxMessage))}
        assert statuses <= {"test"}
    nobody = post(client, token, url(workflow, "/test-run"), {"contact_id": "999999"})
    assert nobody.status_code == 422 and "Choose a contact" in nobody.get_data(as_text=True)


def test_activation_enrolls_existing_contacts_when_asked(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "contact_created"}],
        enroll_existing=True,
    )
    make_contact(acme)
    make_contact(acme)
    token = signed_in(alice)
    response = post(client, token, url(workflow, "/activate"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "2 existing contacts enrolled" in response.get_data(as_text=True)
    with firm_context(acme.id):
        executions = db.session.scalars(select(WorkflowExecution)).all()
        assert len(executions) == 2
        assert all(e.workflow_id == workflow.id for e in executions)


def test_the_analytics_overlay_counts_visits_and_transitions(client, signed_in, alice, acme):
    from app.models import ContactFlowState

    workflow = welcome_without_trigger(acme)
    contact = make_contact(acme)
    with firm_context(acme.id):
        execution = WorkflowExecution(
            workflow_id=workflow.id,
            contact_id=contact.id,
            status="waiting",
            current_node="wait_2_days",
            idempotency_key="k2",
        )
        db.session.add(execution)
        db.session.flush()
        db.session.add_all(
            [
                ContactFlowState(
                    execution_id=execution.id,
                    workflow_id=workflow.id,
                    node_id="send_welcome_email",
                    action_status="success",
                    next_node="wait_2_days",
                ),
                ContactFlowState(
                    execution_id=execution.id,
                    workflow_id=workflow.id,
                    node_id="wait_2_days",
                    action_status="waiting",
                ),
            ]
        )
        db.session.commit()
    signed_in(alice)
    body = client.get(url(workflow, "/overlay"), headers=HX).get_data(as_text=True)
    assert 'data-node="send_welcome_email" data-visits="1"' in body
    assert 'data-source="send_welcome_email" data-target="wait_2_days" data-transitions="1"' in body
    assert client.get(url(workflow, "/overlay")).status_code == 302


def test_the_overlay_tells_ended_from_dropped(client, signed_in, alice, acme):
    from app.models import ContactFlowState

    workflow = welcome_without_trigger(acme)
    with firm_context(acme.id):
        for key, status in (("done", "completed"), ("broke", "failed")):
            execution = WorkflowExecution(
                workflow_id=workflow.id,
                contact_id=make_contact(acme).id,
                status=status,
                current_node="send_welcome_email",
                idempotency_key=key,
            )
            db.session.add(execution)
            db.session.flush()
            db.session.add(
                ContactFlowState(
                    execution_id=execution.id,
                    workflow_id=workflow.id,
                    node_id="send_welcome_email",
                    action_status="success" if status == "completed" else "failed",
                )
            )
        db.session.commit()
    signed_in(alice)
    body = client.get(url(workflow, "/overlay"), headers=HX).get_data(as_text=True)
    assert 'data-node="send_welcome_email" data-visits="2" data-ended="1" data-dropped="1"' in body


def test_every_trigger_form_saves_back_what_it_shows(client, signed_in, alice, acme):
    from werkzeug.datastructures import MultiDict

    from app.automation.audiences.saving import create_audience
    from app.automation.triggers.registry import TRIGGER_TYPES, get_trigger_type
    from tests.web.test_builder_inspector import _FormReader

    with firm_context(acme.id):
        audience_id = create_audience("Everyone", "all", []).id
    required = {
        "segment_entered": {"audience": audience_id},
        "segment_left": {"audience": audience_id},
        "score_threshold_reached": {"threshold": 80},
        "score_threshold_dropped": {"threshold": 10},
        "date_reached": {"at": "2026-12-24T09:00:00Z", "rules": [{"tag": "vip", "op": "has"}]},
        "date_field_reached": {"field": "custom.renewal_date", "offset_days": -7, "at": "08:30"},
        "anniversary": {"field": "created_at"},
        "time_delay": {"delay_hours": 36},
        "contact_updated": {"fields": ["email", "score"]},
        "deal_stage_changed": {"from_stage": "proposal", "to_stage": "won"},
        "page_visited": {
            "url_contains": "/pricing",
            "match": "any",
            "rules": [{"field": "contact.score", "op": "gt", "value": 5}],
        },
    }
    token = signed_in(alice)
    for key in TRIGGER_TYPES:
        config = required.get(key, {})
        workflow = make_workflow(
            acme, name=key, triggers=[{"trigger_type": key, "configuration": config}]
        )
        trigger_id = reload_workflow(workflow).triggers[0].id
        panel = client.get(url(workflow, "/triggers"), headers=HX).get_data(as_text=True)
        form = panel.split(f'action="/automation/builder/{workflow.id}/triggers/{trigger_id}"', 1)[
            1
        ]
        reader = _FormReader()
        reader.feed(form.split("</form>", 1)[0])
        data = MultiDict(reader.fields)
        data["csrf_token"] = token
        response = client.post(url(workflow, f"/triggers/{trigger_id}"), data=data, headers=HX)
        assert response.status_code == 200, (
            key,
            response.get_data(as_text=True).split("Not saved")[-1][:500],
        )
        saved = reload_workflow(workflow).triggers[0].configuration
        kind = get_trigger_type(key)
        assert kind.Config.model_validate(saved).model_dump(
            mode="json"
        ) == kind.Config.model_validate(config).model_dump(mode="json"), key


def test_it_says_when_the_live_version_is_behind_the_canvas(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "contact_created"}],
    )
    token = signed_in(alice)
    activated = post(client, token, url(workflow, "/activate")).get_data(as_text=True)
    assert "unpublished changes" not in activated
    client.post(
        url(workflow, "/nodes"),
        json={"node_type": "add_tag", "x": 0, "y": 600},
        headers={**HX, "X-CSRFToken": token},
    )
    badge = client.get(url(workflow, "/unpublished"), headers=HX).get_data(as_text=True)
    assert "unpublished changes" in badge
    assert "unpublished changes" in client.get(url(workflow)).get_data(as_text=True)
