"""What a batch walks on: definitions, contacts and their facts, in memory.

Everything is loaded set-based, once per batch: the version definitions
(cached per process: a published version never changes), the contacts,
their tags, lists and latest open deals, and the waiting flow states of
executions that resume. Actions change these in-memory facts as they go,
so a condition after ``add_tag`` sees the tag before anything is written.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, text

from app.automation.delivery.windows import WindowError, parse_window
from app.automation.engine.claim import id_in
from app.automation.engine.context import (
    CONTACT_FIELDS,
    Facts,
    deal_dict,
    load_audiences,
    load_events,
)
from app.automation.graph.definition import Graph, definition_of
from app.automation.hooks import facts as hook_facts
from app.automation.nodes.registry import UnknownNodeType, get_node_type
from app.extensions import db
from app.models import (
    Contact,
    ContactFlowState,
    ContactList,
    Deal,
    OutboxMessage,
    SplitDecision,
    Tag,
    User,
    Workflow,
    WorkflowVersion,
    contact_tags,
    list_members,
)
from app.models.execution import OPEN_VISIT_WHERE
from app.tenancy import firm_context


@dataclass
class NodeSpec:
    node_id: str
    node_type: str
    configuration: dict
    config: Any = None  # the parsed pydantic model
    config_error: str | None = None
    kind: Any = None  # the registered NodeType class


class WorkflowInfo:
    """One workflow version, ready to walk."""

    def __init__(self, workflow_id: int, firm_id: int, name: str, definition: dict):
        self.id = workflow_id
        self.firm_id = firm_id
        self.name = name
        self.graph = Graph(definition)
        settings = definition.get("settings") or {}
        self.exit_on_goal = bool(settings.get("exit_on_goal", True))
        try:
            self.send_window = parse_window(settings.get("send_window"))
        except WindowError:
            self.send_window = None  # checked on every save; an old version may predate it
        self.priority = int(settings.get("priority") or 5)
        self.nodes: dict[str, NodeSpec] = {}
        for key, node in self.graph.nodes.items():
            spec = NodeSpec(key, node["node_type"], dict(node.get("configuration") or {}))
            try:
                spec.kind = get_node_type(spec.node_type)
                spec.config = spec.kind.parse_config(spec.configuration)
            except UnknownNodeType:
                spec.config_error = f"unknown node type {spec.node_type!r}"
            except Exception as exc:  # pydantic.ValidationError
                spec.config_error = f"invalid configuration: {exc}"
            self.nodes[key] = spec
        self.rule_goals = [
            (node["node_id"], node["configuration"]) for node in self.graph.goals_with_rules()
        ]
        self.as_dict = {"id": workflow_id, "name": name}


_definitions: dict[tuple, dict] = {}
_definitions_lock = threading.Lock()


def _definitions_for(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], dict]:
    """Published versions are immutable, so their definitions are cached per
    process, keyed by the version row's identity (id and creation time: ids
    can be reused on SQLite after deletes). Version 0 (a never-published
    draft's test run) reads the live graph."""
    wanted = {pair for pair in pairs if pair[1]}
    if not wanted:
        return {}
    table = WorkflowVersion.__table__
    conn = db.session.connection()
    stmt = select(table.c.workflow_id, table.c.number, table.c.id, table.c.created_at).where(
        table.c.workflow_id.in_({w for w, _ in wanted}),
        table.c.number.in_({n for _, n in wanted}),
    )
    identity = {
        (w, n): (vid, created) for w, n, vid, created in conn.execute(stmt) if (w, n) in wanted
    }
    found = {pair: _definitions[ident] for pair, ident in identity.items() if ident in _definitions}
    missing = [identity[pair][0] for pair in identity if pair not in found]
    if missing:
        stmt = select(table.c.workflow_id, table.c.number, table.c.definition).where(
            table.c.id.in_(missing)
        )
        for workflow_id, number, definition in conn.execute(stmt):
            found[(workflow_id, number)] = definition
            with _definitions_lock:
                if len(_definitions) > 512:
                    _definitions.clear()
                _definitions[identity[(workflow_id, number)]] = definition
    return found


def has_rule_goal(definition: dict) -> bool:
    """Whether a definition holds a goal with rules (contacts anywhere in
    the workflow who meet them jump there)."""
    return bool(Graph(definition).goals_with_rules())


def rule_goal_versions(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The (workflow_id, version) pairs among ``pairs`` whose published
    definition has a rule goal (the definitions come from the cache)."""
    definitions = _definitions_for(pairs)
    return {pair for pair, definition in definitions.items() if has_rule_goal(definition)}


@dataclass
class ContactState:
    contact: dict
    tags: set[str] = field(default_factory=set)
    lists: set[int] = field(default_factory=set)
    deal: dict | None = None  # the latest open deal (maybe one created in this batch)


class BatchState:
    """Facts for one batch of claimed executions."""

    def __init__(self, rows: list[dict], moment: datetime):
        self.moment = moment
        # Workflows a REST hook subscription listens to (loaded with them):
        # the write-back records hook facts of these only.
        self.hooked_workflows: set[int] = set()
        self.workflows = self._load_workflows(rows)
        contact_ids = sorted({row["contact_id"] for row in rows})
        self.contacts = self._load_contacts(contact_ids)
        self.firm_of_contact = {row["contact_id"]: row["firm_id"] for row in rows}
        self.gate_run = None  # the send gates over this batch, made on its first message
        self._subscriptions: dict | None = None
        self.hook_deliveries = 0  # REST hook deliveries the write-back made
        self.waiting = self._load_waiting(rows)
        # Executions resuming a wait: a message step among them looks up the
        # outbox row of its visit; read for all of them at the first ask.
        self._resuming = {row["id"] for row in rows if row["wait_reason"]}
        self._messages: dict[tuple[int, str, int], dict] | None = None
        self._firm_tags: dict[int, dict[str, int]] = {}
        self._firm_lists: dict[int, dict[int, str]] = {}
        self._firm_users: dict[int, list[dict]] = {}
        self._split_winners: dict[int, dict[str, str]] = {}

    # -- loading -----------------------------------------------------------
    def _load_workflows(self, rows: list[dict]) -> dict[tuple[int, int], WorkflowInfo]:
        pairs = {(row["workflow_id"], row["version"] or 0) for row in rows}
        table = Workflow.__table__
        stmt = select(table.c.id, table.c.firm_id, table.c.name, hook_facts.listened(table)).where(
            table.c.id.in_({w for w, _ in pairs})
        )
        meta = {}
        for wid, firm_id, name, hooked in db.session.connection().execute(stmt):
            meta[wid] = (firm_id, name)
            if hooked:
                self.hooked_workflows.add(wid)
        definitions = _definitions_for(pairs)
        out: dict[tuple[int, int], WorkflowInfo] = {}
        for workflow_id, number in pairs:
            if workflow_id not in meta:
                continue
            definition = definitions.get((workflow_id, number))
            if definition is None:
                definition = self._live_definition(workflow_id, meta[workflow_id][0])
            firm_id, name = meta[workflow_id]
            out[(workflow_id, number)] = WorkflowInfo(workflow_id, firm_id, name, definition)
        return out

    @staticmethod
    def _live_definition(workflow_id: int, firm_id: int) -> dict:
        with firm_context(firm_id):
            workflow = db.session.get(Workflow, workflow_id)
            return definition_of(workflow)

    def _load_contacts(self, ids: list[int]) -> dict[int, ContactState]:
        conn = db.session.connection()
        table = Contact.__table__
        names = (*CONTACT_FIELDS, "custom_fields")
        stmt = select(*(table.c[name] for name in names)).where(id_in(table.c.id, ids))
        states = {}
        for values in conn.execute(stmt):
            data = dict(zip(names, values, strict=True))
            custom = dict(data["custom_fields"] or {})
            data["custom_fields"] = data["custom"] = custom
            data["full_name"] = f"{data['first_name'] or ''} {data['last_name'] or ''}".strip()
            states[data["id"]] = ContactState(data)
        tags = Tag.__table__
        stmt = (
            select(contact_tags.c.contact_id, tags.c.name)
            .join(tags, tags.c.id == contact_tags.c.tag_id)
            .where(id_in(contact_tags.c.contact_id, ids))
        )
        for contact_id, name in conn.execute(stmt):
            states[contact_id].tags.add(name)
        stmt = select(list_members.c.contact_id, list_members.c.list_id).where(
            id_in(list_members.c.contact_id, ids)
        )
        for contact_id, list_id in conn.execute(stmt):
            states[contact_id].lists.add(list_id)
        deals = Deal.__table__
        stmt = (
            select(deals)
            .where(id_in(deals.c.contact_id, ids), deals.c.status == "open")
            .order_by(deals.c.id)
        )
        for row in conn.execute(stmt):
            states[row.contact_id].deal = deal_dict(row)
        return states

    def _load_waiting(self, rows: list[dict]) -> dict[tuple[int, str, int], dict]:
        resuming = [row["id"] for row in rows if row["wait_reason"]]
        if not resuming:
            return {}
        return {
            (row.execution_id, row.node_id, row.visit): dict(row._mapping)
            for row in db.session.connection().execute(open_visits(resuming))
        }

    # -- lookups -------------------------------------------------------------
    def message_of(self, execution_id: int, node_id: str, visit: int) -> dict | None:
        """The outbox row a message step's visit wrote (status, last_error,
        message_id, id, response), or None.

        The rows of every execution the batch resumes are read in one
        query at the first ask: one query per resumed message, each built
        and sent alone, was a third of a small batch's walk at a trickle
        (benchmarks/trickle.py)."""
        table = OutboxMessage.__table__
        columns = (
            table.c.status,
            table.c.last_error,
            table.c.message_id,
            table.c.id,
            table.c.response,
        )
        if execution_id not in self._resuming:
            stmt = select(*columns).where(
                table.c.execution_id == execution_id,
                table.c.node_id == node_id,
                table.c.visit == visit,
            )
            row = db.session.connection().execute(stmt).first()
            return dict(row._mapping) if row is not None else None
        if self._messages is None:
            stmt = select(table.c.execution_id, table.c.node_id, table.c.visit, *columns).where(
                id_in(table.c.execution_id, sorted(self._resuming))
            )
            self._messages = {}
            for row in db.session.connection().execute(stmt):
                found = dict(row._mapping)
                key = (found.pop("execution_id"), found.pop("node_id"), found.pop("visit"))
                self._messages[key] = found
        return self._messages.get((execution_id, node_id, visit))

    def workflow_for(self, row: dict) -> WorkflowInfo | None:
        return self.workflows.get((row["workflow_id"], row["version"] or 0))

    def facts(self, state: ContactState, row: dict, context: dict) -> Facts:
        workflow_id, contact_id = row["workflow_id"], row["contact_id"]
        return Facts(
            {
                "contact": state.contact,
                "deal": state.deal,
                "context": context,
                "tags": state.tags,
                "lists": state.lists,
            },
            {
                "events": lambda: load_events([contact_id], workflow_id).get(contact_id, []),
                "subscriptions": lambda: self.subscriptions().get(contact_id, {}),
                "audiences": lambda: load_audiences([contact_id])[contact_id],
            },
        )

    def subscriptions(self) -> dict[int, dict[int, bool]]:
        """Every batch contact's topic subscriptions, read once, when a rule
        first asks (``{"topic": id, "op": "subscribed"}``)."""
        if self._subscriptions is None:
            from app.automation.engine.context import load_subscriptions

            self._subscriptions = load_subscriptions(
                {
                    cid: {"firm_id": self.firm_of_contact.get(cid), **state.contact}
                    for cid, state in self.contacts.items()
                }
            )
        return self._subscriptions

    def firm_tags(self, firm_id: int, names: set[str] | None = None) -> dict[str, int]:
        tags = self._firm_tags.get(firm_id)
        if tags is None or (names and not names <= tags.keys()):
            table = Tag.__table__
            stmt = select(table.c.name, table.c.id).where(table.c.firm_id == firm_id)
            tags = self._firm_tags[firm_id] = dict(db.session.connection().execute(stmt).all())
        return tags

    def firm_lists(self, firm_id: int) -> dict[int, str]:
        lists = self._firm_lists.get(firm_id)
        if lists is None:
            table = ContactList.__table__
            stmt = select(table.c.id, table.c.name).where(table.c.firm_id == firm_id)
            lists = self._firm_lists[firm_id] = dict(db.session.connection().execute(stmt).all())
        return lists

    def firm_users(self, firm_id: int) -> list[dict]:
        users = self._firm_users.get(firm_id)
        if users is None:
            table = User.__table__
            stmt = select(table.c.id, table.c.email, table.c.role).where(
                and_(table.c.firm_id == firm_id, table.c.is_active_user.is_(True))
            )
            users = self._firm_users[firm_id] = [
                dict(row._mapping) for row in db.session.connection().execute(stmt)
            ]
        return users

    def split_winners(self, workflow_id: int) -> dict[str, str]:
        """The decided winner of each split of a workflow (node_id -> variant),
        read once per batch (docs/EXPERIMENTS.md "Routing to the winner")."""
        winners = self._split_winners.get(workflow_id)
        if winners is None:
            table = SplitDecision.__table__
            stmt = select(table.c.node_id, table.c.winner).where(table.c.workflow_id == workflow_id)
            winners = self._split_winners[workflow_id] = dict(
                db.session.connection().execute(stmt).all()
            )
        return winners


def open_visits(execution_ids: list[int]):
    """The open visits (waiting, held, failed awaiting a retry) of the
    executions a batch resumes."""
    table = ContactFlowState.__table__
    return select(
        table.c.execution_id,
        table.c.node_id,
        table.c.visit,
        table.c.entered_at,
        table.c.action_result,
        table.c.variant,
    ).where(
        id_in(table.c.execution_id, execution_ids),
        # The partial index's own predicate, written out, so the planner
        # matches it in any plan, cached ones too (app/models/execution.py).
        text(OPEN_VISIT_WHERE),
    )


def group_by(items, key) -> dict:
    out: dict = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return out
