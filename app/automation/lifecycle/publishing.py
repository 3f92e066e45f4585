"""Activation, publishing, rollback and version snapshots of workflows.

A version is an immutable snapshot of the graph; every execution records
the version it runs on and keeps running on it. Publishing snapshots the
live graph as the next version and, in the same transaction, moves the
contacts inside older versions onto it, node by node, as the marketer
mapped them (default: the step with the same ``node_id``). Rollback is
publishing an old version's graph the same way.

The graph's rows (nodes, edges, triggers) are the draft. The engine walks
the version's definition; the event bus, the scheduler and the direct
starts read ``PublishedTrigger`` rows, which only :func:`publish_triggers`
writes, here, as the version goes live. A trigger edit on an active
workflow therefore waits for its publication, and its approval where the
firm requires one, like a node edit.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, or_, select, update

from app.automation.graph.definition import definition_of
from app.automation.graph.rows import apply_definition
from app.automation.graph.validation import WorkflowInvalid, validate_workflow
from app.automation.lifecycle.approval_requests import request_publication
from app.clock import now
from app.extensions import db
from app.models import ContactFlowState, Firm, Workflow, WorkflowExecution
from app.models.audit import record
from app.models.execution import ACTIVE_STATUSES
from app.models.workflow import PublishedTrigger, WorkflowVersion

# A mapping value meaning "leave these contacts on their old version".
KEEP = None


class UnmappedNodes(Exception):
    """Contacts wait on steps the new version does not have and nobody said
    where they go. ``unmapped``: ``[{"node": node_id, "count": n}]``."""

    def __init__(self, unmapped: list[dict]):
        names = ", ".join(f"{item['node']} ({item['count']})" for item in unmapped)
        super().__init__(f"contacts wait on steps the new version does not have: {names}")
        self.unmapped = unmapped


class BadMapping(ValueError):
    """A mapping names a step the new version does not have.
    ``problems``: ``[{"node": old node_id, "message": ...}]``."""

    def __init__(self, problems: list[dict]):
        super().__init__("; ".join(problem["message"] for problem in problems))
        self.problems = problems


class ApprovalRequired(WorkflowInvalid):
    """The firm requires an admin's approval for this user's publications.

    A kind of :class:`WorkflowInvalid` on purpose: every caller that shows
    activation problems shows this one too ("sent for approval") instead of
    failing; callers that care catch it first. ``request`` is the approval
    request created, when one was."""

    def __init__(self, message: str, request=None):
        super().__init__([{"node": None, "message": message}])
        self.request = request


def latest_version(workflow) -> WorkflowVersion | None:
    stmt = (
        select(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow.id)
        .order_by(WorkflowVersion.number.desc())
        .limit(1)
    )
    return db.session.scalars(stmt).first()


def has_unpublished_changes(workflow, definition: dict | None = None) -> bool:
    """The live graph differs from the version contacts run on (the same
    comparison activation makes before taking a new snapshot). ``definition``
    is the workflow's, when the caller already built it."""
    version = latest_version(workflow)
    if version is None:
        return False
    return version.definition != (definition or definition_of(workflow))


def get_version(workflow, number: int) -> WorkflowVersion | None:
    stmt = select(WorkflowVersion).where(
        WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.number == number
    )
    return db.session.scalars(stmt).first()


def list_versions(workflow) -> list[WorkflowVersion]:
    stmt = (
        select(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow.id)
        .order_by(WorkflowVersion.number.desc())
    )
    return list(db.session.scalars(stmt))


def _lock(workflow) -> None:
    """Serialize publications of one workflow (PostgreSQL row lock until
    commit; SQLite serializes writers anyway), so two publishers cannot
    both take the next version number."""
    db.session.execute(select(Workflow.id).where(Workflow.id == workflow.id).with_for_update())


def snapshot(workflow, user=None) -> WorkflowVersion:
    """Store the current graph as the next immutable version."""
    latest = latest_version(workflow)
    number = max(latest.number if latest else 0, workflow.version or 0) + 1
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


def publish_triggers(workflow) -> None:
    """The workflow's draft triggers become the ones events, dates and API
    calls start it by; does not commit. A published trigger keeps its id
    (and a date trigger its cursor) while its draft trigger exists, so
    executions and date occurrences keep naming it; one whose draft was
    deleted goes. Called only as a version goes live (activation,
    publication, approval, rollback)."""
    db.session.flush()  # draft triggers added in this transaction get their ids
    live = {
        row.draft_id: row
        for row in db.session.scalars(
            select(PublishedTrigger).where(PublishedTrigger.workflow_id == workflow.id)
        )
    }
    for trigger in workflow.triggers:
        row = live.pop(trigger.id, None)
        values = {
            "trigger_type": trigger.trigger_type,
            "configuration": dict(trigger.configuration or {}),
            "is_active": bool(trigger.is_active),
        }
        if row is None:
            db.session.add(
                PublishedTrigger(
                    workflow_id=workflow.id,
                    firm_id=workflow.firm_id,
                    draft_id=trigger.id,
                    **values,
                )
            )
            continue
        for name, value in values.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
    for row in live.values():
        db.session.delete(row)


def published_triggers(workflow) -> list[PublishedTrigger]:
    stmt = (
        select(PublishedTrigger)
        .where(PublishedTrigger.workflow_id == workflow.id)
        .order_by(PublishedTrigger.id)
    )
    return list(db.session.scalars(stmt))


def unpublished_triggers(workflow) -> tuple[dict[int, str], list[PublishedTrigger]]:
    """How the draft triggers differ from the live ones, for the builder:
    ``({draft trigger id: "new" | "changed"}, [published triggers the draft
    removed, still live])``. Nothing differs on a never-published workflow
    (it has nothing live to differ from)."""
    if not workflow.version:
        return {}, []
    live = {row.draft_id: row for row in published_triggers(workflow)}
    status: dict[int, str] = {}
    for trigger in workflow.triggers:
        row = live.pop(trigger.id, None)
        if row is None:
            status[trigger.id] = "new"
        elif (row.trigger_type, row.configuration or {}, bool(row.is_active)) != (
            trigger.trigger_type,
            trigger.configuration or {},
            bool(trigger.is_active),
        ):
            status[trigger.id] = "changed"
    return status, list(live.values())


def needs_approval(workflow, user) -> bool:
    """Marketers of a firm with ``require_approval`` publish through an
    admin; admins and system jobs (no user) publish directly."""
    if user is None or getattr(user, "is_admin", False):
        return False
    firm = db.session.get(Firm, workflow.firm_id)
    return bool(firm is not None and (firm.settings or {}).get("require_approval"))


def _check_valid(workflow) -> dict:
    definition = definition_of(workflow)
    problems = validate_workflow(workflow)
    if problems:
        raise WorkflowInvalid(problems)
    return definition


def _version_for(workflow, definition: dict, user) -> WorkflowVersion:
    """The version matching the live graph: the latest one if the graph has
    not changed since, else a new snapshot."""
    version = latest_version(workflow)
    if version is None or version.definition != definition:
        version = snapshot(workflow, user)
    return version


def _next_number(workflow, definition: dict) -> int:
    version = latest_version(workflow)
    if version is not None and version.definition == definition:
        return version.number
    return max(version.number if version else 0, workflow.version or 0) + 1


def activate_workflow(workflow, user=None) -> WorkflowVersion:
    """Validate and go live; a changed graph becomes a new version.

    On a draft this is the first publish. Resuming a paused workflow leaves
    contacts already inside on the version they run on (use :func:`publish`
    to move them). Does not commit: the caller commits once with its other
    changes. When an admin must approve, creates the approval request
    and raises :class:`ApprovalRequired`."""
    if workflow.status == "archived":
        raise ValueError("an archived workflow cannot be activated")
    if needs_approval(workflow, user):
        # Activation by a marketer becomes a request (committed now, so it
        # survives the caller rolling back on this exception).
        request = request_publication(workflow, user)
        raise ApprovalRequired(
            "sent to an admin for approval: it goes live when an admin approves it", request
        )
    _lock(workflow)
    version = _version_for(workflow, _check_valid(workflow), user)
    publish_triggers(workflow)
    workflow.status = "active"
    workflow.activated_at = now()
    record("workflow.activated", workflow, data={"version": version.number})
    return version


def pause_workflow(workflow, user=None) -> None:
    if workflow.status != "active":
        raise ValueError(f"only an active workflow can be paused (it is {workflow.status})")
    workflow.status = "paused"
    record("workflow.paused", workflow)


def _active_executions(workflow):
    return (
        WorkflowExecution.workflow_id == workflow.id,
        WorkflowExecution.status.in_(ACTIVE_STATUSES),
        WorkflowExecution.test_mode.is_(False),
        WorkflowExecution.current_node.is_not(None),
    )


def waiting_counts(workflow) -> dict[str, int]:
    """Contacts inside the workflow (waiting or running) per node_id, over
    every version: what the publish dialog asks the marketer to map."""
    stmt = (
        select(WorkflowExecution.current_node, func.count())
        .where(*_active_executions(workflow))
        .group_by(WorkflowExecution.current_node)
    )
    return {node: count for node, count in db.session.execute(stmt)}


def counts_by_version(workflow) -> dict[int, int]:
    """Contacts inside the workflow per version they run on."""
    stmt = (
        select(WorkflowExecution.version, func.count())
        .where(*_active_executions(workflow))
        .group_by(WorkflowExecution.version)
    )
    return {version: count for version, count in db.session.execute(stmt)}


def _groups_on_other_versions(workflow, number: int) -> list[tuple[int, str, int]]:
    stmt = (
        select(WorkflowExecution.version, WorkflowExecution.current_node, func.count())
        .where(*_active_executions(workflow), WorkflowExecution.version != number)
        .group_by(WorkflowExecution.version, WorkflowExecution.current_node)
        .order_by(WorkflowExecution.current_node, WorkflowExecution.version)
    )
    return [tuple(row) for row in db.session.execute(stmt)]


def _node_types(workflow, numbers: set[int]) -> dict[int, dict[str, str]]:
    if not numbers:
        return {}
    stmt = select(WorkflowVersion.number, WorkflowVersion.definition).where(
        WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.number.in_(numbers)
    )
    return {
        number: {node["node_id"]: node["node_type"] for node in definition.get("nodes", [])}
        for number, definition in db.session.execute(stmt)
    }


def publish(
    workflow,
    user=None,
    mapping: dict[str, str | None] | None = None,
    keep_on_old_version: bool = False,
    *,
    commit: bool = True,
) -> tuple[WorkflowVersion, dict[str, int]]:
    """Snapshot the live graph as the next version, go live, and move the
    contacts inside older versions onto it. Returns the version and the
    number of contacts moved per old node_id.

    ``mapping`` sends the contacts of an old node to a node of the new
    version; a node not in the mapping goes to the node with the same
    ``node_id``; ``None`` as a target (or ``keep_on_old_version``) leaves
    them on their version. Contacts moved to the same step keep their
    state (a wait keeps its wake-up time); contacts moved to another step
    land on it as if they had just arrived. Refuses, changing nothing,
    with :class:`UnmappedNodes` when contacts wait on a step the new
    version lacks and no mapping says where they go.

    Executions a worker holds at this instant (a live lease) stay where
    they are: moving them under the worker would race its write."""
    if workflow.status == "archived":
        raise ValueError("an archived workflow cannot be published")
    if needs_approval(workflow, user):
        raise ApprovalRequired("publishing needs an admin's approval in this firm")
    mapping = dict(mapping or {})
    _lock(workflow)
    definition = _check_valid(workflow)
    new_types = {node["node_id"]: node["node_type"] for node in definition["nodes"]}
    bad = [
        {"node": old, "message": f"{old}: {new!r} is not a step of the new version"}
        for old, new in mapping.items()
        if new is not KEEP and new not in new_types
    ]
    if bad:
        raise BadMapping(bad)

    number = _next_number(workflow, definition)
    plan: list[tuple[int, str, str]] = []
    unmapped: dict[str, int] = defaultdict(int)
    for old_version, node, count in _groups_on_other_versions(workflow, number):
        target = mapping.get(node, node)
        if keep_on_old_version or target is KEEP:
            continue
        if target not in new_types:
            unmapped[node] += count
            continue
        plan.append((old_version, node, target))
    if unmapped:
        raise UnmappedNodes([{"node": node, "count": n} for node, n in sorted(unmapped.items())])

    version = _version_for(workflow, definition, user)
    publish_triggers(workflow)
    moved, landed = _move(workflow, version.number, plan, new_types)
    workflow.status = "active"
    workflow.activated_at = now()
    record(
        "workflow.published",
        workflow,
        data={"version": version.number, "moved": moved, "keep": keep_on_old_version},
    )
    if commit:
        db.session.commit()
        if landed:
            from app.queue import kick_engine

            kick_engine()
    return version, moved


def _move(workflow, number: int, plan, new_types) -> tuple[dict[str, int], bool]:
    """Set-based UPDATEs, one per (old version, old node): version only when
    the step is the same, version + node + fresh state when it changes."""
    moment = now()
    db.session.flush()  # the new version row and the workflow first
    old_types = _node_types(workflow, {old_version for old_version, _, _ in plan})
    moved: dict[str, int] = defaultdict(int)
    landed_ids: list[int] = []
    for old_version, node, target in plan:
        where = (
            *_active_executions(workflow),
            WorkflowExecution.version == old_version,
            WorkflowExecution.current_node == node,
            or_(WorkflowExecution.lease_until.is_(None), WorkflowExecution.lease_until < moment),
        )
        same_step = target == node and old_types.get(old_version, {}).get(node) == new_types[node]
        stmt = update(WorkflowExecution).where(*where)
        if same_step:
            # Only the version changes: no ids needed, the row count says it.
            result = db.session.execute(
                stmt.values(version=number, updated_at=moment),
                execution_options={"synchronize_session": False},
            )
            if result.rowcount:
                moved[node] += result.rowcount
            continue
        stmt = stmt.returning(WorkflowExecution.id).values(
            version=number,
            current_node=target,
            status="running",
            wake_at=moment,
            wait_reason=None,
            attempts=0,
            updated_at=moment,
        )
        ids = list(db.session.scalars(stmt, execution_options={"synchronize_session": False}))
        if ids:
            moved[node] += len(ids)
            landed_ids.extend(ids)
            _close_open_visits(ids, node, target, moment)
    if moved:
        # Executions loaded before the UPDATEs must not show stale values.
        db.session.expire_all()
    return dict(moved), bool(landed_ids)


def _close_open_visits(execution_ids: list[int], node: str, target: str, moment) -> None:
    """The visit of the old step ends here: the contact was moved away."""
    for start in range(0, len(execution_ids), 1000):
        chunk = execution_ids[start : start + 1000]
        db.session.execute(
            update(ContactFlowState)
            .where(
                ContactFlowState.execution_id.in_(chunk),
                ContactFlowState.node_id == node,
                ContactFlowState.exited_at.is_(None),
            )
            .values(exited_at=moment, branch="moved", next_node=target),
            execution_options={"synchronize_session": False},
        )


def rollback(
    workflow,
    version_number: int,
    user=None,
    mapping: dict[str, str | None] | None = None,
    keep_on_old_version: bool = False,
) -> tuple[WorkflowVersion, dict[str, int]]:
    """Publish an old version's graph again, as the next version.

    The live nodes, edges, triggers and settings become the old version's
    (name and description stay), then :func:`publish` moves contacts the
    same way. Nothing changes when publishing refuses."""
    old = get_version(workflow, version_number)
    if old is None:
        raise LookupError(f"workflow {workflow.id} has no version {version_number}")
    if needs_approval(workflow, user):
        raise ApprovalRequired("rolling back needs an admin's approval in this firm")
    try:
        _lock(workflow)
        apply_definition(workflow, old.definition)
        result = publish(workflow, user, mapping, keep_on_old_version, commit=False)
    except Exception:
        db.session.rollback()
        raise
    record("workflow.rolled_back", workflow, data={"to": version_number})
    db.session.commit()
    if any(result[1].values()):
        from app.queue import kick_engine

        kick_engine()
    return result
