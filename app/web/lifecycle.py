"""Lifecycle pages: versions with a visual diff, the publish / rollback
dialog with the contact mapping, the template gallery, export download and
import upload. Comments and the approval queue live in
:mod:`app.web.lifecycle_collab` on the same blueprint.

Views load (another firm's workflow is a 404), call one domain function
in ``app.automation``, and render or redirect."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for

from app.auth import login_required_page
from app.automation.graph.definition import definition_of
from app.automation.graph.validation import WorkflowInvalid, validate_workflow
from app.automation.lifecycle import approvals
from app.automation.lifecycle import publishing as lifecycle
from app.automation.lifecycle.gallery import UnknownTemplate, instantiate, list_templates
from app.automation.lifecycle.portability import (
    ImportProblems,
    export_workflow,
    import_workflow,
    loads,
)
from app.automation.lifecycle.versions import diff_definitions, diff_drawing
from app.models import Workflow
from app.web.pages import get_or_404, int_arg

bp = Blueprint("lifecycle", __name__, url_prefix="/automation")

KEEP_CHOICE = "__keep__"
MAX_UPLOAD = 1024 * 1024


def _builder_url(workflow: Workflow) -> str:
    return url_for("builder.builder_page", workflow_id=workflow.id)


# ----------------------------------------------------------------- versions


@bp.get("/<int:workflow_id>/versions")
@login_required_page
def versions(workflow_id: int):
    """The history, newest first, and the diff between two of them
    (``?base=1&to=2``; ``to=live`` compares with the unpublished graph)."""
    workflow = get_or_404(Workflow, workflow_id)
    history = lifecycle.list_versions(workflow)
    by_number = {version.number: version for version in history}
    live = definition_of(workflow)
    latest = history[0] if history else None
    base_number = int_arg("base", latest.number - 1 if latest and latest.number > 1 else None)
    to_raw = request.args.get("to", "live" if latest is None else str(latest.number))
    to_number = int(to_raw) if to_raw.isdigit() else None
    comparison = None
    base = by_number.get(base_number) if base_number else None
    target = by_number.get(to_number).definition if to_number in by_number else live
    if base is not None:
        diff = diff_definitions(base.definition, target)
        comparison = {
            "base": base.number,
            "to": to_number if to_number in by_number else "live",
            "diff": diff,
            "drawing": diff_drawing(base.definition, target, diff),
        }
    unpublished = latest is not None and latest.definition != live
    return render_template(
        "lifecycle/versions.html",
        workflow=workflow,
        history=history,
        comparison=comparison,
        unpublished=unpublished,
        inside=lifecycle.counts_by_version(workflow),
        pending=approvals.pending_request(workflow),
        last_request=approvals.last_request(workflow),
        user_needs_approval=lifecycle.needs_approval(workflow, g.user),
    )


# -------------------------------------------------------- publish / rollback


def _mapping_from_form(counts: dict[str, int]) -> dict[str, str | None]:
    mapping: dict[str, str | None] = {}
    for node in counts:
        choice = request.form.get(f"map-{node}", "")
        if choice == KEEP_CHOICE:
            mapping[node] = None
        elif choice:
            mapping[node] = choice
    return mapping


def _dialog(workflow: Workflow, target: dict, *, rollback_to=None, status=200, **context):
    latest = lifecycle.latest_version(workflow)
    diff = diff_definitions(latest.definition, target) if latest else None
    counts = lifecycle.waiting_counts(workflow)
    target_nodes = [(n["node_id"], n.get("label") or n["node_id"]) for n in target["nodes"]]
    keys = {key for key, _ in target_nodes}
    chosen = context.pop("chosen", None) or {}
    rows = [
        {
            "node": node,
            "count": count,
            "choice": chosen.get(node, node if node in keys else ""),
        }
        for node, count in sorted(counts.items())
    ]
    return (
        render_template(
            "lifecycle/publish.html",
            workflow=workflow,
            latest=latest,
            diff=diff,
            drawing=diff_drawing(latest.definition, target, diff) if latest else None,
            rows=rows,
            target_nodes=target_nodes,
            keep_choice=KEEP_CHOICE,
            rollback_to=rollback_to,
            needs_approval=lifecycle.needs_approval(workflow, g.user),
            **context,
        ),
        status,
    )


def _run_publish(workflow: Workflow, call, target: dict, rollback_to=None):
    """Call publish/rollback; on refusal show the dialog again with why."""
    mapping = _mapping_from_form(lifecycle.waiting_counts(workflow))
    keep = request.form.get("keep_on_old_version") == "on"
    try:
        version, moved = call(mapping, keep)
    except WorkflowInvalid as exc:
        return _dialog(workflow, target, rollback_to=rollback_to, problems=exc.problems, status=422)
    except lifecycle.UnmappedNodes as exc:
        return _dialog(
            workflow,
            target,
            rollback_to=rollback_to,
            unmapped=exc.unmapped,
            chosen={k: v or KEEP_CHOICE for k, v in mapping.items()},
            status=409,
        )
    except lifecycle.BadMapping as exc:
        return _dialog(workflow, target, rollback_to=rollback_to, error=str(exc), status=422)
    except (ValueError, LookupError) as exc:
        return _dialog(workflow, target, rollback_to=rollback_to, error=str(exc), status=409)
    total = sum(moved.values())
    flash(f"Published version {version.number}; {total} contact{'s' if total != 1 else ''} moved.")
    return redirect(url_for("lifecycle.versions", workflow_id=workflow.id))


@bp.route("/<int:workflow_id>/publish", methods=["GET", "POST"])
@login_required_page
def publish(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    target = definition_of(workflow)
    if request.method == "GET":
        return _dialog(workflow, target, problems=validate_workflow(workflow))
    if lifecycle.needs_approval(workflow, g.user):
        try:
            approvals.request_publication(
                workflow,
                g.user,
                _mapping_from_form(lifecycle.waiting_counts(workflow)),
                request.form.get("keep_on_old_version") == "on",
            )
        except WorkflowInvalid as exc:
            return _dialog(workflow, target, problems=exc.problems, status=422)
        flash("Sent to an admin for approval; the workflow stays as it is until then.")
        return redirect(url_for("lifecycle.versions", workflow_id=workflow.id))
    return _run_publish(
        workflow, lambda mapping, keep: lifecycle.publish(workflow, g.user, mapping, keep), target
    )


@bp.route("/<int:workflow_id>/rollback/<int:number>", methods=["GET", "POST"])
@login_required_page
def rollback(workflow_id: int, number: int):
    workflow = get_or_404(Workflow, workflow_id)
    version = lifecycle.get_version(workflow, number)
    if version is None:
        abort(404)
    if lifecycle.needs_approval(workflow, g.user):
        abort(403)
    if request.method == "GET":
        return _dialog(workflow, version.definition, rollback_to=number)
    return _run_publish(
        workflow,
        lambda mapping, keep: lifecycle.rollback(workflow, number, g.user, mapping, keep),
        version.definition,
        rollback_to=number,
    )


# ---------------------------------------------------------------- templates


@bp.get("/templates")
@login_required_page
def templates():
    return render_template("lifecycle/templates.html", templates=list_templates())


@bp.post("/templates/<key>")
@login_required_page
def create_from_template(key: str):
    name = request.form.get("name", "")
    if len(name) > 200:
        flash("The name may have at most 200 characters.", "error")
        return redirect(url_for("lifecycle.templates"))
    try:
        workflow = instantiate(key, name, g.user)
    except UnknownTemplate:
        abort(404)
    flash(f"Created “{workflow.name}” from a template: review it, then activate.")
    return redirect(_builder_url(workflow))


# ----------------------------------------------------------- export / import


@bp.get("/<int:workflow_id>/export.json")
@login_required_page
def export(workflow_id: int):
    workflow = get_or_404(Workflow, workflow_id)
    keep = request.args.get("header_values") == "1"
    body = json.dumps(export_workflow(workflow, header_values=keep), indent=2, ensure_ascii=False)
    slug = "".join(ch if ch.isalnum() else "-" for ch in workflow.name.lower()).strip("-")
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{slug or "workflow"}.json"'},
    )


@bp.route("/import", methods=["GET", "POST"])
@login_required_page
def import_page():
    if request.method == "GET":
        return render_template("lifecycle/import.html")
    upload = request.files.get("document")
    raw = upload.read(MAX_UPLOAD + 1) if upload and upload.filename else b""
    if not raw:
        raw = request.form.get("text", "").encode()
    problems: list[dict] = []
    if not raw.strip():
        problems = [{"field": "document", "node": None, "message": "choose a file or paste JSON"}]
    elif len(raw) > MAX_UPLOAD:
        problems = [{"field": "document", "node": None, "message": "the file is over 1 MiB"}]
    else:
        try:
            document = loads(raw)
            workflow = import_workflow(document, g.user, name=request.form.get("name") or None)
        except ImportProblems as exc:
            problems = exc.problems
        else:
            flash(f"Imported “{workflow.name}” as a draft.")
            return redirect(_builder_url(workflow))
    return render_template("lifecycle/import.html", problems=problems), 422
