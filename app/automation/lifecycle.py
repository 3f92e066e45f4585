"""Activation, pausing and version snapshots of workflows."""

from __future__ import annotations

from sqlalchemy import select

from app.automation.definition import definition_of
from app.automation.validation import WorkflowInvalid, validate_workflow
from app.clock import now
from app.extensions import db
from app.models.audit import record
from app.models.workflow import WorkflowVersion


def latest_version(workflow) -> WorkflowVersion | None:
    stmt = (
        select(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow.id)
        .order_by(WorkflowVersion.number.desc())
        .limit(1)
    )
    return db.session.scalars(stmt).first()


def snapshot(workflow, user=None) -> WorkflowVersion:
    """Store the current graph as the next immutable version."""
    number = (workflow.version or 0) + 1
    version = WorkflowVersion(
        workflow_id=workflow.id,
        firm_id=workflow.firm_id,
        number=number,
        definition=definition_of(workflow),
        created_by_id=getattr(user, "id", None),
    )
    db.session.add(version)
    workflow.version = number
    return version


def activate_workflow(workflow, user=None) -> WorkflowVersion:
    """Validate and go live; a changed graph becomes a new version.

    Does not commit: the caller commits once with its other changes."""
    problems = validate_workflow(workflow)
    if problems:
        raise WorkflowInvalid(problems)
    version = latest_version(workflow)
    if version is None or version.definition != definition_of(workflow):
        version = snapshot(workflow, user)
    workflow.status = "active"
    workflow.activated_at = now()
    record("workflow.activated", workflow, data={"version": version.number})
    return version


def pause_workflow(workflow, user=None) -> None:
    if workflow.status != "active":
        raise ValueError(f"only an active workflow can be paused (it is {workflow.status})")
    workflow.status = "paused"
    record("workflow.paused", workflow)
