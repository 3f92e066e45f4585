"""Optional approval before publishing (firm setting ``require_approval``).

A marketer of such a firm asks to publish; the workflow stays as it is
(draft or paused, flagged "pending approval") until an admin approves —
which publishes exactly the graph the marketer asked for, with their
mapping — or rejects. Admins publish directly. The requests themselves
live in :mod:`.approval_requests`.
"""

from __future__ import annotations

from app.automation.graph.definition import definition_of
from app.automation.lifecycle.approval_requests import (  # noqa: F401  (callers use approvals.*)
    last_request,
    pending_request,
    pending_requests,
    pending_workflow_ids,
    request_publication,
    requires_approval,
    set_requires_approval,
)
from app.automation.lifecycle.publishing import needs_approval, publish
from app.clock import now
from app.extensions import db
from app.models import ApprovalRequest, Workflow
from app.models.audit import record


class ApprovalError(Exception):
    """The request cannot be decided (already decided, stale, not allowed)."""

    def __init__(self, message: str, *, status: int = 409):
        super().__init__(message)
        self.status = status


def _decidable(request: ApprovalRequest, admin) -> None:
    if admin is None or not getattr(admin, "is_admin", False):
        raise ApprovalError("only an admin can decide on an approval request", status=403)
    if request.status != "pending":
        raise ApprovalError(f"this request is already {request.status}")


def approve(request: ApprovalRequest, admin) -> tuple:
    """Publish what was requested, with the requested mapping; commits.

    Returns ``(version, moved_counts)``. Refuses when the workflow changed
    since the request (the admin would approve something unseen) — the
    marketer asks again. Publishing errors (unmapped contacts) propagate and
    leave the request pending."""
    _decidable(request, admin)
    workflow = db.session.get(Workflow, request.workflow_id)
    if definition_of(workflow) != request.definition:
        raise ApprovalError(
            "the workflow changed after this request was made; ask for a new approval"
        )
    version, moved = publish(
        workflow,
        admin,
        request.mapping or {},
        request.keep_on_old_version,
        commit=False,
    )
    request.status = "approved"
    request.decided_by_id = admin.id
    request.decided_at = now()
    request.version_number = version.number
    record("workflow.approval_approved", workflow, data={"request": request.id})
    db.session.commit()
    if moved:
        from app.queue import kick_engine

        kick_engine()
    return version, moved


def reject(request: ApprovalRequest, admin, note: str = "") -> ApprovalRequest:
    """Turn the request down, with an optional note for the marketer; commits."""
    _decidable(request, admin)
    request.status = "rejected"
    request.decided_by_id = admin.id
    request.decided_at = now()
    request.note = (note or "").replace("\x00", "").strip()[:2000]
    record("workflow.approval_rejected", request.workflow, data={"request": request.id})
    db.session.commit()
    return request


__all__ = [
    "ApprovalError",
    "approve",
    "needs_approval",
    "pending_request",
    "pending_requests",
    "pending_workflow_ids",
    "reject",
    "request_publication",
    "requires_approval",
    "set_requires_approval",
]
