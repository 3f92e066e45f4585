"""Lifecycle endpoints (docs/CONTRACT.md "Lifecycle"): versions and their diff,
publish and rollback with contact mapping, templates, export/import,
comments and approval requests. Views are thin: load, call the domain in
``app.automation``, translate its exceptions into the API's error shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import jsonify, request
from pydantic import Field
from sqlalchemy import select

from app.api.access import get_or_404
from app.api.core import ENDPOINTS, Input, Output, endpoint
from app.api.errors import ApiError, not_found, validation_error
from app.api.pagination import PageQuery, page_of, paginate
from app.api.schemas.automation import WorkflowDetail
from app.automation.graph.definition import definition_of
from app.automation.graph.validation import WorkflowInvalid
from app.automation.lifecycle import approvals
from app.automation.lifecycle import publishing as lifecycle
from app.automation.lifecycle.gallery import UnknownTemplate, instantiate, list_templates
from app.automation.lifecycle.portability import (
    Document,
    ImportProblems,
    export_workflow,
    import_workflow,
    loads,
)
from app.automation.lifecycle.versions import diff_definitions
from app.models import Workflow, WorkflowVersion

TAG = "Lifecycle"
WF = "/automation/workflows/<int:workflow_id>"


# ------------------------------------------------------------------ models


class VersionOut(Output):
    number: int
    created_at: datetime
    created_by: int | None = Field(validation_alias="created_by_id")
    definition: dict[str, Any]


class PublishIn(Input):
    mapping: dict[str, str | None] = Field(
        default_factory=dict,
        description="old node_id -> new node_id (null: keep those contacts on their version)",
    )
    keep_on_old_version: bool = False


class RollbackIn(PublishIn):
    version: int = Field(ge=1)


class ApprovalOut(Output):
    id: int
    workflow: int = Field(validation_alias="workflow_id")
    status: str
    mapping: dict[str, Any]
    keep_on_old_version: bool
    requested_by: int | None = Field(validation_alias="requested_by_id")
    decided_by: int | None = Field(validation_alias="decided_by_id")
    decided_at: datetime | None
    note: str
    version_number: int | None
    created_at: datetime


class PublishOut(Output):
    version: VersionOut | None = None
    moved: dict[str, int] = Field(default_factory=dict, description="contacts moved per old node")
    approval: ApprovalOut | None = Field(
        default=None, description="set (with 202) when an admin must approve"
    )


class WaitingOut(Output):
    counts: dict[str, int]


class DiffQuery(Input):
    base: int = Field(ge=1, description="the older version number")
    to: str = Field(default="live", description="a version number, or 'live' (the draft graph)")


class TemplateOut(Output):
    key: str
    name: str
    description: str
    category: str
    steps: int
    triggers: list[str]


class TemplateList(Output):
    results: list[TemplateOut]
    next: str | None = None


class InstantiateIn(Input):
    name: str = Field(default="", max_length=200)


# ---------------------------------------------------------------- helpers


def workflow_or_404(workflow_id: int) -> Workflow:
    return get_or_404(Workflow, workflow_id, what="workflow")


def acting_user():
    from flask import g

    return g.user


def publish_errors(call):
    """Run a publish/rollback and map domain refusals onto API errors."""
    try:
        return call()
    except WorkflowInvalid as exc:
        raise ApiError(
            422, "invalid_workflow", "the workflow cannot be published", problems=exc.problems
        ) from None
    except lifecycle.BadMapping as exc:
        raise validation_error(
            {f"mapping.{p['node']}": [p["message"]] for p in exc.problems}, status=422
        ) from None
    except lifecycle.UnmappedNodes as exc:
        raise ApiError(
            409,
            "unmapped_nodes",
            str(exc) + "; map them or keep them on their version",
            unmapped=exc.unmapped,
        ) from None
    except ValueError as exc:  # archived
        raise ApiError(409, "conflict", str(exc)) from None


def _published(version, moved) -> dict:
    return {"version": version, "moved": moved, "approval": None}


def _ask_approval(workflow: Workflow, body: PublishIn):
    """The firm requires approval: answer 202 with the new request."""
    approval = publish_errors(
        lambda: approvals.request_publication(
            workflow, acting_user(), body.mapping, body.keep_on_old_version
        )
    )
    answer = PublishOut(approval=ApprovalOut.model_validate(approval))
    response = jsonify(answer.model_dump(mode="json"))
    response.status_code = 202
    return response


# ---------------------------------------------------------------- versions


@endpoint(
    f"{WF}/versions/",
    tag=TAG,
    summary="List a workflow's versions (newest first)",
    query=PageQuery,
    response=page_of(VersionOut),
    errors=(404,),
)
def list_versions(workflow_id: int, query: PageQuery):
    workflow_or_404(workflow_id)
    stmt = select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id)
    return paginate(stmt, WorkflowVersion.id, query, newest_first=True)


@endpoint(
    f"{WF}/versions/<int:number>/",
    tag=TAG,
    summary="One immutable version",
    response=VersionOut,
    errors=(404,),
)
def get_version(workflow_id: int, number: int):
    version = lifecycle.get_version(workflow_or_404(workflow_id), number)
    if version is None:
        raise not_found("version")
    return version


@endpoint(
    f"{WF}/versions/diff/",
    tag=TAG,
    summary="What changed between two versions (or a version and the live graph)",
    query=DiffQuery,
    errors=(404,),
)
def diff_versions(workflow_id: int, query: DiffQuery):
    """Nodes added/removed/changed (with the configuration fields that
    changed), edges added/removed, trigger and setting changes."""
    workflow = workflow_or_404(workflow_id)
    base = lifecycle.get_version(workflow, query.base)
    if base is None:
        raise not_found("version")
    if query.to == "live":
        target = definition_of(workflow)
    else:
        if not query.to.isdigit():
            raise validation_error({"to": ["a version number or 'live'"]})
        other = lifecycle.get_version(workflow, int(query.to))
        if other is None:
            raise not_found("version")
        target = other.definition
    return diff_definitions(base.definition, target)


@endpoint(
    f"{WF}/waiting/",
    tag=TAG,
    summary="Contacts inside the workflow per node (for the publish mapping)",
    response=WaitingOut,
    errors=(404,),
)
def waiting(workflow_id: int):
    return {"counts": lifecycle.waiting_counts(workflow_or_404(workflow_id))}


@endpoint(
    f"{WF}/publish/",
    "POST",
    tag=TAG,
    summary="Publish the current graph as the next version and move waiting contacts",
    body=PublishIn,
    response=PublishOut,
    errors=(404, 409, 422),
)
def publish(workflow_id: int, body: PublishIn):
    """Contacts on older versions move to the node with the same node_id,
    or where ``mapping`` says (null keeps them on their version); 409
    ``unmapped_nodes`` lists nodes with contacts but no counterpart. When
    the firm requires approval, a marketer's call creates an approval
    request instead (202 with ``approval``)."""
    workflow = workflow_or_404(workflow_id)
    if lifecycle.needs_approval(workflow, acting_user()):
        return _ask_approval(workflow, body)
    version, moved = publish_errors(
        lambda: lifecycle.publish(workflow, acting_user(), body.mapping, body.keep_on_old_version)
    )
    return _published(version, moved)


@endpoint(
    f"{WF}/rollback/",
    "POST",
    tag=TAG,
    summary="Publish an old version's graph again, moving waiting contacts",
    body=RollbackIn,
    response=PublishOut,
    errors=(404, 409, 422),
)
def rollback(workflow_id: int, body: RollbackIn):
    workflow = workflow_or_404(workflow_id)
    if lifecycle.get_version(workflow, body.version) is None:
        raise validation_error({"version": ["this workflow has no such version"]}, status=422)
    if lifecycle.needs_approval(workflow, acting_user()):
        raise ApiError(403, "approval_required", "only an admin can roll back in this firm")
    version, moved = publish_errors(
        lambda: lifecycle.rollback(
            workflow, body.version, acting_user(), body.mapping, body.keep_on_old_version
        )
    )
    return _published(version, moved)


# --------------------------------------------------------------- templates


@endpoint(
    "/automation/templates/",
    tag=TAG,
    summary="The templates library",
    response=TemplateList,
)
def templates():
    return {"results": [template.summary() for template in list_templates()], "next": None}


@endpoint(
    "/automation/templates/<key>/instantiate/",
    "POST",
    tag=TAG,
    summary="Create a draft workflow from a template",
    body=InstantiateIn,
    response=WorkflowDetail,
    status=201,
    errors=(404,),
)
def instantiate_template(key: str, body: InstantiateIn):
    try:
        return instantiate(key, body.name, acting_user())
    except UnknownTemplate:
        raise not_found("template") from None


# ---------------------------------------------------------- export/import


class ExportQuery(Input):
    include_header_values: bool = Field(
        default=False,
        description="keep webhook header values (they may be credentials); blank by default",
    )


@endpoint(
    f"{WF}/export/",
    tag=TAG,
    summary="The workflow as a portable JSON document (no ids, no firm data)",
    query=ExportQuery,
    response=Document,
    errors=(404,),
)
def export(workflow_id: int, query: ExportQuery):
    workflow = workflow_or_404(workflow_id)
    return jsonify(export_workflow(workflow, header_values=query.include_header_values))


@endpoint(
    "/automation/workflows/import/",
    "POST",
    tag=TAG,
    summary="Create a draft workflow from an exported document",
    response=WorkflowDetail,
    status=201,
    errors=(422,),
)
def import_document():
    """The body is a document as ``export`` returns it. Problems (bad shape,
    unknown types, invalid configurations, missing references) answer 422
    with ``problems``: ``[{"field", "node", "message"}]``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "malformed_json", "the body must be a JSON document")
    try:
        document = loads(raw)
    except ImportProblems as exc:
        raise ApiError(400, "malformed_json", exc.problems[0]["message"]) from None
    try:
        return import_workflow(document, acting_user())
    except ImportProblems as exc:
        raise ApiError(
            422, "invalid_document", "the document cannot be imported", problems=exc.problems
        ) from None


# The import body is read by hand (problems are 422, not 400), so the
# document's schema is attached to the operation for the docs only.
next(ep for ep in ENDPOINTS if ep.name == "lifecycle_import_document").body = Document
