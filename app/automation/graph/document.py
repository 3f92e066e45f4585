"""The portable workflow document's schema (``portability`` reads and
writes it): strict pydantic models, so an unknown key or an oversized part
is refused with its path rather than ignored."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.automation.delivery.windows import WindowError, parse_window
from app.automation.graph.validation import MAX_NODES

FORMAT = "automation-workflow"
FORMAT_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeDoc(_Strict):
    node_id: str = Field(min_length=1, max_length=100)
    node_type: str = Field(min_length=1, max_length=50)
    label: str = Field(default="", max_length=200)
    position_x: float = 0.0
    position_y: float = 0.0
    configuration: dict[str, Any] = Field(default_factory=dict)


class EdgeDoc(_Strict):
    source: str = Field(min_length=1, max_length=100)
    target: str = Field(min_length=1, max_length=100)
    condition_type: str | None = Field(default=None, max_length=20)
    condition_config: dict[str, Any] = Field(default_factory=dict)
    label: str = Field(default="", max_length=200)


class TriggerDoc(_Strict):
    trigger_type: str = Field(min_length=1, max_length=50)
    configuration: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True


class GoalDoc(_Strict):
    name: str = Field(min_length=1, max_length=200)
    node: str | None = Field(default=None, max_length=100)
    goal_value: Decimal = Field(default=Decimal("0"), ge=0, max_digits=14, decimal_places=2)


class SettingsDoc(_Strict):
    allow_reentry: bool = False
    exit_on_goal: bool = True
    enroll_existing: bool = False
    send_window: dict | None = None
    priority: int = Field(default=5, ge=1, le=10)

    @field_validator("send_window")
    @classmethod
    def _window(cls, value):
        try:
            window = parse_window(value)
        except WindowError as exc:
            raise ValueError(str(exc)) from None
        return window.as_dict() if window is not None else None


class WorkflowDoc(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    settings: SettingsDoc = Field(default_factory=SettingsDoc)
    nodes: list[NodeDoc] = Field(default_factory=list, max_length=MAX_NODES)
    edges: list[EdgeDoc] = Field(default_factory=list, max_length=MAX_NODES * 10)
    triggers: list[TriggerDoc] = Field(default_factory=list, max_length=50)
    goals: list[GoalDoc] = Field(default_factory=list, max_length=100)


class Document(_Strict):
    format: Literal["automation-workflow"]
    version: Literal[1]
    workflow: WorkflowDoc
