"""The node-type registry: one class per node type.

A node type is one class, in one module of this package, carrying all of
it: its configuration schema (pydantic ``Config``), its output ports (the
``condition_type`` values its outgoing edges may carry), how the engine
executes it (``execute``), its inspector form (``form``, see
:mod:`app.automation.nodes.form`), its card text (``summary``) and what
kind of step it is (``sends_message``, ``waits``, ``uses_rules``). Adding a
type is one ``@register``-ed class; the palette, the inspector, graph
validation, the engine, retries and the API's enums read the registry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.automation.nodes.form import FormField
from app.automation.nodes.step import Outcome, Step


class NodeConfig(BaseModel):
    """Base of every node configuration; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class ActionConfig(NodeConfig):
    """Every action retries with exponential backoff (docs/CONTRACT.md)."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_seconds: float = Field(default=30, ge=0, le=86400)


@dataclass(frozen=True)
class Port:
    """An output of a node; ``condition_type`` is what its edge carries."""

    condition_type: str | None
    label: str = ""
    condition_config: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        if self.condition_type == "variant":
            return f"variant:{self.condition_config.get('variant')}"
        return self.condition_type or "next"


PLAIN = (Port(None, ""),)


@dataclass(frozen=True)
class CheckContext:
    """What a type's save-time :meth:`NodeType.check` may depend on beyond
    the configuration. The current firm is the session's (app/tenancy.py),
    so a check that queries the firm's rows (its sending domains) sees only
    that firm's. Built by ``graph.node_checks.node_problems``."""

    # WEBHOOK_ALLOW_PRIVATE: private and loopback addresses are allowed.
    allow_private: bool = False


class NodeType:
    key: ClassVar[str]
    label: ClassVar[str]
    family: ClassVar[str]  # "action", "control" or "goal"
    # A Lucide icon name (app/web/icons.py draws it).
    icon: ClassVar[str] = "circle-help"
    color: ClassVar[str] = "#64748b"
    description: ClassVar[str] = ""
    Config: ClassVar[type[NodeConfig]] = NodeConfig
    # The inspector's fields, in order (app/automation/nodes/form.py).
    form: ClassVar[tuple[FormField, ...]] = ()
    # Configuration keys rendered as templates when the step runs; they are
    # checked for template errors when saved.
    templated: ClassVar[tuple[str, ...]] = ()
    # What the inspector's preview renders: (key, label, as HTML).
    previewed: ClassVar[tuple[tuple[str, str, bool], ...]] = ()
    # Hands a message to the outbox (a retry re-queues the message), on
    # this outbox channel ("email", "sms", "webhook").
    sends_message: ClassVar[bool] = False
    channel: ClassVar[str | None] = None
    # May stop the execution until a moment (graph loops must pass one).
    waits: ClassVar[bool] = False
    # Its configuration carries a rule group (``match``/``rules``).
    uses_rules: ClassVar[bool] = False
    # Reaching it is a conversion: the analytics count it as a goal reached.
    converts: ClassVar[bool] = False
    # Reached by an incoming edge, or, when its configuration has rules, by
    # a jump from anywhere in the workflow once the contact meets them;
    # never the first step, and a contact standing on one does not jump.
    jump_target: ClassVar[bool] = False

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        """Run the step: change ``step``'s in-memory facts, record writes on
        ``step.effects`` and say where to go (app/automation/nodes/step.py)."""
        raise NotImplementedError(f"node type {cls.key!r} has no executor")

    @classmethod
    def check(cls, configuration: dict, context: CheckContext) -> dict[str, list[str]]:
        """Save-time problems of this type beyond its ``Config`` schema, keyed
        by configuration field (``from_email``, ``url``): what depends on the
        firm's data or the network rather than on the value alone.

        Called from one place, ``app.automation.graph.node_checks.node_problems``,
        which the builder inspector, the API and the workflow import share
        (template syntax of the ``templated`` keys is checked there for
        every type). ``configuration`` is the stored dict; its schema may
        have failed on other fields, and a field whose schema check failed
        is not reported again. Return ``{}`` when there is nothing to say.
        A check must not depend on DNS or another service being up: what
        may be right later (a webhook host that does not resolve yet) is a
        :meth:`save_warnings` entry, not a refusal."""
        return {}

    @classmethod
    def save_warnings(cls, configuration: dict, context: CheckContext) -> dict[str, list[str]]:
        """What a save should tell the marketer without refusing it, keyed
        by configuration field (a webhook host that does not resolve now).
        Asked by ``graph.node_checks.node_warnings`` after a save passed
        every check; the inspector shows them and the API returns them as
        ``warnings``. May be slow (a DNS lookup); ``{}`` by default."""
        return {}

    @classmethod
    def graph_problems(cls, config: NodeConfig, steps: dict[str, str]) -> list[str]:
        """What keeps this step from running in its workflow beyond its own
        configuration (a split measuring a goal step that is not there):
        ``steps`` maps each node id of the workflow to its type. Asked by
        the graph check before activation (app/automation/graph/
        validation.py); ``[]`` when fine."""
        return []

    @classmethod
    def parse_config(cls, configuration: dict | None) -> NodeConfig:
        """The validated configuration; raises pydantic.ValidationError."""
        return cls.Config.model_validate(configuration or {})

    @classmethod
    def ports(cls, config: NodeConfig | None = None) -> tuple[Port, ...]:
        return PLAIN

    @classmethod
    def default_config(cls) -> dict:
        return {}

    @classmethod
    def summary(cls, config: dict) -> str:
        """What the step does in a few words, for its card ("Wait 2 days").
        ``config`` is the stored configuration, finished or not; a type's
        own ``summary`` may raise on nonsense, which :func:`card_summary`
        turns into no summary."""
        return ""


NODE_TYPES: dict[str, type[NodeType]] = {}


def register(node_type: type[NodeType]) -> type[NodeType]:
    if node_type.key in NODE_TYPES:
        raise ValueError(f"node type {node_type.key!r} registered twice")
    NODE_TYPES[node_type.key] = node_type
    return node_type


def unregister(key: str) -> None:
    """Forget a type (tests that register a throwaway one)."""
    NODE_TYPES.pop(key, None)


def keys_where(flag: str) -> frozenset[str]:
    """The keys of the registered types with ``flag`` set (``waits``...)."""
    return frozenset(kind.key for kind in all_node_types() if getattr(kind, flag))


def has_flag(node_type: str, flag: str) -> bool:
    """Whether the type of that key has ``flag`` set (False: unknown type)."""
    try:
        return bool(getattr(get_node_type(node_type), flag))
    except UnknownNodeType:
        return False


def executor_for(node_type: str):
    """The ``execute`` of a registered type, or None."""
    try:
        return get_node_type(node_type).execute
    except UnknownNodeType:
        return None


def card_summary(node_type: str, configuration: dict | None) -> str:
    """The card text of a stored node, or "" for an unknown type or a
    configuration too broken to describe."""
    try:
        kind = get_node_type(node_type)
    except UnknownNodeType:
        return ""
    try:
        return kind.summary(dict(configuration or {}))
    except (TypeError, ValueError, AttributeError, KeyError, IndexError):
        return ""


class UnknownNodeType(KeyError):
    pass


def get_node_type(key: str) -> type[NodeType]:
    _load_all()
    try:
        return NODE_TYPES[key]
    except KeyError:
        raise UnknownNodeType(key) from None


def all_node_types() -> list[type[NodeType]]:
    _load_all()
    return list(NODE_TYPES.values())


def config_errors(node_type: str, configuration: dict | None) -> dict[str, list[str]]:
    """Field errors of a configuration (``{}`` when valid), keyed by dotted path."""
    try:
        kind = get_node_type(node_type)
    except UnknownNodeType:
        return {"node_type": [f"unknown node type {node_type!r}"]}
    try:
        kind.parse_config(configuration)
    except ValidationError as exc:
        return validation_error_fields(exc)
    return {}


def validation_error_fields(exc: ValidationError, prefix: str = "") -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not path:
            # Model-level checks name their field as "field: message".
            head, sep, rest = message.partition(": ")
            path, message = (head, rest) if sep and " " not in head else ("__root__", message)
        fields.setdefault(prefix + path, []).append(message)
    return fields


_loaded = False
_lock = threading.RLock()


def _load_all() -> None:
    """Import the modules that register the types, once (threads of one
    worker may race here)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            from app.automation.nodes import control, crm, messages  # noqa: F401

            _loaded = True
