"""Comments panel and approval queue (blueprint of :mod:`app.web.lifecycle`).

``/automation/<id>/comments?node=<node_id>`` answers a fragment for HTMX
(the builder links its node badges here) and a whole page otherwise."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from app.auth import admin_required_page, login_required_page
from app.automation.graph.definition import definition_of
from app.automation.graph.validation import WorkflowInvalid
from app.automation.lifecycle import approvals, comments
from app.automation.lifecycle import publishing as lifecycle
from app.automation.lifecycle.versions import diff_definitions
from app.extensions import db
from app.models import ApprovalRequest, Firm, Workflow
from app.web.lifecycle import bp
from app.web.pages import get_or_404, is_htmx, page_or_block


def _comments_context(workflow: Workflow, node: str | None, **extra) -> dict:
    labels = {n.node_id: (n.label or n.node_id) for n in workflow.nodes}
    return {
        "workflow": workflow,
        "node": node,
        "node_label": labels.get(node or "", node),
        "labels": labels,
        "comments": comments.list_comments(workflow, node),
        "counts": comments.comments_by_node(workflow),
        "can_delete": lambda c: comments.can_delete(c, g.user),
        **extra,
    }


@bp.get("/<int:workflow_id>/comments")
@login_required_page
def comments_panel(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    node = request.args.get("node") or None
    return page_or_block("lifecycle/comments.html", "panel", **_comments_context(workflow, node))


@bp.post("/<int:workflow_id>/comments")
@login_required_page
def add_comment(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    node = request.form.get("node_id") or None
    body = request.form.get("body", "")
    try:
        comments.add_comment(workflow, g.user, body, node)
    except comments.CommentError as exc:
        context = _comments_context(
            workflow, node, error=str(exc), error_field=exc.field, body=body
        )
        return page_or_block("lifecycle/comments.html", "panel", 400, **context)
    if is_htmx():
        return page_or_block(
            "lifecycle/comments.html", "panel", **_comments_context(workflow, node)
        )
    return redirect(url_for("lifecycle.comments_panel", workflow_id=workflow.id, node=node))


@bp.post("/<int:workflow_id>/comments/<int:comment_id>/delete")
@login_required_page
def delete_comment(workflow_id: int, comment_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    comment = comments.get_comment(workflow, comment_id)
    if comment is None:
        abort(404)
    node = comment.node_id
    try:
        comments.delete_comment(comment, g.user)
    except comments.CommentError:
        abort(403)
    if is_htmx():
        return page_or_block(
            "lifecycle/comments.html", "panel", **_comments_context(workflow, node)
        )
    return redirect(url_for("lifecycle.comments_panel", workflow_id=workflow.id, node=node))


# ---------------------------------------------------------------- approvals


def _request_rows() -> list[dict]:
    rows = []
    for item in approvals.pending_requests():
        workflow = db.session.get(Workflow, item.workflow_id)
        latest = lifecycle.latest_version(workflow)
        diff = diff_definitions(latest.definition, item.definition) if latest else None
        rows.append(
            {
                "request": item,
                "workflow": workflow,
                "latest": latest,
                "diff": diff,
                "stale": definition_of(workflow) != item.definition,
            }
        )
    return rows


@bp.get("/approvals")
@admin_required_page
def approval_queue():
    firm = db.session.get(Firm, g.user.firm_id)
    return render_template(
        "lifecycle/approvals.html",
        rows=_request_rows(),
        require_approval=approvals.requires_approval(firm.id),
    )


@bp.post("/approvals/settings")
@admin_required_page
def approval_settings():
    firm = db.session.get(Firm, g.user.firm_id)
    approvals.set_requires_approval(firm, request.form.get("require_approval") == "on")
    flash(
        "Marketers now need an admin's approval to publish."
        if approvals.requires_approval(firm.id)
        else "Marketers publish directly."
    )
    return redirect(url_for("lifecycle.approval_queue"))


def _approval_or_404(approval_id: int) -> ApprovalRequest:
    return get_or_404(ApprovalRequest, approval_id)


@bp.post("/approvals/<int:approval_id>/approve")
@admin_required_page
def approve(approval_id: int):
    item = _approval_or_404(approval_id)
    try:
        version, moved = approvals.approve(item, g.user)
    except approvals.ApprovalError as exc:
        flash(str(exc), "error")
    except lifecycle.UnmappedNodes as exc:
        flash(f"Cannot publish: {exc}. Ask for a request with a mapping.", "error")
    except (WorkflowInvalid, lifecycle.BadMapping, ValueError) as exc:
        flash(f"Cannot publish: {exc}", "error")
    else:
        flash(f"Approved: version {version.number} is live; {sum(moved.values())} contacts moved.")
    return redirect(url_for("lifecycle.approval_queue"))


@bp.post("/approvals/<int:approval_id>/reject")
@admin_required_page
def reject(approval_id: int):
    item = _approval_or_404(approval_id)
    try:
        approvals.reject(item, g.user, request.form.get("note", ""))
    except approvals.ApprovalError as exc:
        flash(str(exc), "error")
    else:
        flash("Rejected; the marketer sees your note on the versions page.")
    return redirect(url_for("lifecycle.approval_queue"))
