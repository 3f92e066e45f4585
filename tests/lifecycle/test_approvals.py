"""With require_approval, marketers ask and admins decide."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.automation.graph.validation import WorkflowInvalid
from app.automation.lifecycle.approvals import (
    ApprovalError,
    approve,
    pending_request,
    pending_requests,
    pending_workflow_ids,
    reject,
    request_publication,
    set_requires_approval,
)
from app.automation.lifecycle.publishing import (
    ApprovalRequired,
    activate_workflow,
    list_versions,
    publish,
)
from app.extensions import db
from app.models import Notification
from app.tenancy import firm_context
from tests.lifecycle.helpers import nurture_workflow, park


@pytest.fixture
def strict(acme, alice):
    with firm_context(acme.id):
        set_requires_approval(acme, True)
    return acme


def test_a_marketer_cannot_publish_directly(strict, bob):
    workflow = nurture_workflow(strict)
    with firm_context(strict.id):
        with pytest.raises(ApprovalRequired):
            publish(workflow, bob)
        assert workflow.status == "draft" and list_versions(workflow) == []
        assert pending_request(workflow) is None


def test_activation_by_a_marketer_becomes_an_approval_request(strict, bob):
    workflow = nurture_workflow(strict)
    with firm_context(strict.id):
        with pytest.raises(ApprovalRequired) as info:
            activate_workflow(workflow, bob)
        # A kind of WorkflowInvalid: activation views show it as a message.
        assert isinstance(info.value, WorkflowInvalid)
        assert "approval" in info.value.problems[0]["message"]
        db.session.rollback()  # what an activation view does on the exception
        request = pending_request(workflow)
        assert request is not None and request.requested_by_id == bob.id
        assert workflow.status == "draft" and list_versions(workflow) == []


def test_without_the_setting_a_marketer_publishes(acme, bob):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        version, _ = publish(workflow, bob)
        assert version.number == 1


def test_a_request_keeps_the_workflow_a_flagged_draft_until_approved(strict, alice, bob):
    workflow = nurture_workflow(strict)
    with firm_context(strict.id):
        assert not (pending_request(workflow) is not None)
        request = request_publication(workflow, bob)
        assert workflow.status == "draft" and (pending_request(workflow) is not None)
        assert pending_workflow_ids([workflow.id, workflow.id + 1]) == {workflow.id}
        assert pending_request(workflow) == request
        assert pending_requests() == [request]
        notes = db.session.scalars(select(Notification)).all()
        assert [n.user_id for n in notes] == [alice.id]

        version, moved = approve(request, alice)
        assert (version.number, moved) == (1, {})
        assert workflow.status == "active"
        assert (request.status, request.decided_by_id, request.version_number) == (
            "approved",
            alice.id,
            1,
        )
        assert pending_request(workflow) is None


def test_a_marketer_cannot_approve_or_reject(strict, bob):
    workflow = nurture_workflow(strict)
    with firm_context(strict.id):
        request = request_publication(workflow, bob)
        with pytest.raises(ApprovalError) as info:
            approve(request, bob)
        assert info.value.status == 403
        with pytest.raises(ApprovalError):
            reject(request, bob)
        assert request.status == "pending" and workflow.status == "draft"


def test_an_admin_rejects_with_a_note(strict, alice, bob):
    workflow = nurture_workflow(strict)
    with firm_context(strict.id):
        request = request_publication(workflow, bob)
        reject(request, alice, "Subject line needs work")
        assert (request.status, request.note) == ("rejected", "Subject line needs work")
        assert workflow.status == "draft"
        with pytest.raises(ApprovalError):
            approve(request, alice)


def test_approving_a_request_for_a_changed_workflow_is_refused(strict, alice, bob):
    workflow = nurture_workflow(strict)
    with firm_context(strict.id):
        request = request_publication(workflow, bob)
        workflow.node_by_key("tag_done").configuration = {"tag": "changed"}
        db.session.commit()
        with pytest.raises(ApprovalError, match="changed"):
            approve(request, alice)
        assert request.status == "pending" and workflow.status == "draft"


def test_the_approved_mapping_moves_contacts(strict, alice, bob):
    workflow = nurture_workflow(strict)
    with firm_context(strict.id):
        publish(workflow, alice)
    ids = park(strict, workflow, "send_tips", 2)
    with firm_context(strict.id):
        workflow.node_by_key("send_tips").configuration = {"subject": "v2", "body_text": "v2"}
        db.session.commit()
        request = request_publication(workflow, bob, mapping={"send_tips": "wait_1_day"})
        version, moved = approve(request, alice)
    assert (version.number, moved) == (2, {"send_tips": 2})
    from tests.lifecycle.helpers import executions

    assert {r.current_node for r in executions(strict, ids)} == {"wait_1_day"}


def test_a_new_request_replaces_the_pending_one(strict, bob):
    workflow = nurture_workflow(strict)
    with firm_context(strict.id):
        first = request_publication(workflow, bob)
        second = request_publication(workflow, bob)
        assert first.status == "withdrawn" and pending_request(workflow) == second


def test_an_invalid_workflow_cannot_be_submitted(strict, bob):
    workflow = nurture_workflow(strict, name="Broken")
    with firm_context(strict.id):
        for trigger in list(workflow.triggers):
            db.session.delete(trigger)
        db.session.commit()
        db.session.refresh(workflow)
        with pytest.raises(WorkflowInvalid):
            request_publication(workflow, bob)
        assert pending_request(workflow) is None
