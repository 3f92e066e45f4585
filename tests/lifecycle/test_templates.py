"""Every template is a valid workflow that activates and runs to its end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.automation.engine.enrollment import enroll
from app.automation.graph.definition import Graph
from app.automation.graph.validation import validate_definition
from app.automation.lifecycle.gallery import (
    UnknownTemplate,
    get_template,
    instantiate,
    list_templates,
)
from app.automation.lifecycle.portability import export_workflow
from app.automation.lifecycle.publishing import publish
from app.extensions import db
from app.models import WorkflowExecution, WorkflowGoal
from app.models.execution import FINISHED_STATUSES
from app.tenancy import firm_context
from tests.factories import make_contact

KEYS = [template.key for template in list_templates()]
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def test_the_library_has_the_promised_templates():
    assert len(KEYS) >= 8
    assert {
        "welcome_series",
        "lead_nurture",
        "abandoned_form",
        "re_engagement",
        "deal_won_onboarding",
        "birthday",
        "webinar_reminder",
        "ab_subject_test",
    } <= set(KEYS)
    for template in list_templates():
        assert template.name and template.description


@pytest.mark.parametrize("key", KEYS)
def test_each_template_is_valid_and_laid_out(key):
    workflow = get_template(key).workflow
    assert validate_definition(workflow) == []
    positions = {(n["position_x"], n["position_y"]) for n in workflow["nodes"]}
    assert len(positions) == len(workflow["nodes"]), "two steps drawn on the same spot"


def test_the_templates_use_what_they_promise():
    def types(key):
        return {n["node_type"] for n in get_template(key).workflow["nodes"]}

    def triggers(key):
        return {t["trigger_type"] for t in get_template(key).workflow["triggers"]}

    assert "score_threshold_reached" in triggers("lead_nurture")
    assert "wait_condition" in types("re_engagement")
    assert "wait_until" in types("webinar_reminder")
    assert {"split", "goal"} <= types("ab_subject_test")
    assert "deal_won" in triggers("deal_won_onboarding")
    assert "anniversary" in triggers("birthday")


@pytest.mark.parametrize("key", KEYS)
def test_each_template_instantiates_activates_and_runs_to_its_end(acme, alice, key):
    with firm_context(acme.id):
        workflow = instantiate(key, f"My {key}", alice)
        assert (workflow.name, workflow.status) == (f"My {key}", "draft")
        document = export_workflow(workflow)["workflow"]
        assert document["nodes"] == get_template(key).workflow["nodes"]
        assert document["goals"] == get_template(key).workflow["goals"]
        version, _ = publish(workflow, alice)
        assert version.number == 1 and workflow.status == "active"
        workflow_id = workflow.id

    contact = make_contact(
        acme,
        phone="+15550100",
        score=60,
        custom_fields={
            "birthday": "1990-03-02",
            "webinar_at": (START + timedelta(days=3)).date().isoformat(),
        },
    )
    from app.automation.engine.jobs import drain

    with time_machine.travel(START, tick=False) as clock, firm_context(acme.id):
        workflow = db.session.get(type(workflow), workflow_id)
        # Creating the contact may already have started it (contact_created).
        enroll(workflow, [contact.id], trigger_type="manual")
        execution_id = db.session.scalars(
            select(WorkflowExecution.id).where(WorkflowExecution.contact_id == contact.id)
        ).one()
        for _ in range(120):  # up to 60 days, half a day at a time
            drain()
            db.session.expire_all()
            execution = db.session.get(WorkflowExecution, execution_id)
            if execution.status in FINISHED_STATUSES:
                break
            clock.shift(timedelta(hours=12))
        assert execution.status in ("completed", "goal_reached"), (
            execution.status,
            execution.current_node,
            execution.last_error,
        )
        # The walk ended at a step with no way out.
        graph = Graph(get_template(key).workflow)
        assert execution.execution_path and not graph.outgoing(execution.execution_path[-1])


def test_instantiating_keeps_goal_rows_linked_to_their_nodes(acme, bob):
    with firm_context(acme.id):
        workflow = instantiate("ab_subject_test", "", bob)
        assert workflow.name == "A/B subject line test"
        (goal,) = db.session.scalars(select(WorkflowGoal)).all()
        assert goal.goal_node_id == workflow.node_by_key("clicked").id


def test_an_unknown_template_is_refused(acme, bob):
    with firm_context(acme.id), pytest.raises(UnknownTemplate):
        instantiate("nope", "x", bob)
