"""Asking for approval before publishing (firm setting ``require_approval``):
the setting, the pending requests, and the request a marketer's publish
becomes. :mod:`.publishing` turns a marketer's activation into a request
here; deciding it (:mod:`.approvals`) publishes, so this module needs
neither of them.
"""

from __future__ import annotations

from sqlalchemy import select

from app.automation.graph.definition import definition_of
from app.automation.graph.validation import WorkflowInvalid, validate_workflow
from app.clock import now
from app.extensions import db
from app.models import ApprovalRequest, Firm, Notification, User, Workflow
from app.models.audit import record


def requires_approval(firm_id: int) -> bool:
    firm = db.session.get(Firm, firm_id)
    return bool(firm is not None and (firm.settings or {}).get("require_approval"))


def set_requires_approval(firm: Firm, value: bool) -> None:
    """Turn the firm setting on or off; commits."""
    firm.settings = {**(firm.settings or {}), "require_approval": bool(value)}
    record("firm.approval_setting", firm, data={"require_approval": bool(value)})
    db.session.commit()


def pending_request(workflow: Workflow) -> ApprovalRequest | None:
    stmt = select(ApprovalRequest).where(
        ApprovalRequest.workflow_id == workflow.id, ApprovalRequest.status == "pending"
    )
    return db.session.scalars(stmt.order_by(ApprovalRequest.id.desc())).first()


def last_request(workflow: Workflow) -> ApprovalRequest | None:
    """The newest request of any status (the versions page shows its outcome)."""
    stmt = select(ApprovalRequest).where(ApprovalRequest.workflow_id == workflow.id)
    return db.session.scalars(stmt.order_by(ApprovalRequest.id.desc())).first()


def pending_workflow_ids(workflow_ids) -> set[int]:
    """Which of these workflows wait for an approval (one query for a list)."""
    ids = list(workflow_ids)
    if not ids:
        return set()
    stmt = select(ApprovalRequest.workflow_id).where(
        ApprovalRequest.workflow_id.in_(ids), ApprovalRequest.status == "pending"
    )
    return set(db.session.scalars(stmt))


def pending_requests() -> list[ApprovalRequest]:
    """The current firm's queue, oldest first."""
    stmt = select(ApprovalRequest).where(ApprovalRequest.status == "pending")
    return list(db.session.scalars(stmt.order_by(ApprovalRequest.id)))


def request_publication(
    workflow: Workflow,
    user,
    mapping: dict | None = None,
    keep_on_old_version: bool = False,
) -> ApprovalRequest:
    """Ask an admin to publish the workflow as it is now; commits.

    The graph must be valid already (an admin should not receive a request
    that cannot be approved). A newer request replaces a pending one."""
    problems = validate_workflow(workflow)
    if problems:
        raise WorkflowInvalid(problems)
    previous = pending_request(workflow)
    if previous is not None:
        previous.status = "withdrawn"
        previous.decided_at = now()
        previous.note = "replaced by a newer request"
    request = ApprovalRequest(
        workflow_id=workflow.id,
        firm_id=workflow.firm_id,
        definition=definition_of(workflow),
        mapping=dict(mapping or {}),
        keep_on_old_version=bool(keep_on_old_version),
        requested_by_id=getattr(user, "id", None),
    )
    db.session.add(request)
    db.session.flush()
    record("workflow.approval_requested", workflow, data={"request": request.id})
    db.session.commit()
    _notify_admins(workflow, user)
    return request


def _notify_admins(workflow: Workflow, user) -> None:
    """Best effort: admins see the request in their notifications too."""
    admins = db.session.scalars(select(User).where(User.role == "admin")).all()
    who = getattr(user, "email", "someone")
    for admin in admins:
        db.session.add(
            Notification(
                user_id=admin.id,
                message=f"{who} asks to publish workflow “{workflow.name}”",
            )
        )
    db.session.commit()
