"""The node-type registry: one class per node type (DESIGN.md rule 6).

A node type declares its configuration schema (pydantic), its output ports
(the ``condition_type`` values its outgoing edges may carry) and how the
engine executes it. Adding a type means one class in one module of this
package plus its inspector partial ``templates/nodes/_<key>.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class NodeConfig(BaseModel):
    """Base of every node configuration; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class ActionConfig(NodeConfig):
    """Every action retries with exponential backoff (CONTRACT.md)."""

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


class NodeType:
    key: ClassVar[str]
    label: ClassVar[str]
    family: ClassVar[str]  # "action", "control" or "goal"
    # A Lucide icon name (app/web/icons.py draws it).
    icon: ClassVar[str] = "circle-help"
    color: ClassVar[str] = "#64748b"
    description: ClassVar[str] = ""
    Config: ClassVar[type[NodeConfig]] = NodeConfig
    # Email, SMS and webhook steps hand a message to the outbox.
    sends_message: ClassVar[bool] = False

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


def _load_all() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from app.automation.nodes import actions, control, messaging  # noqa: F401
