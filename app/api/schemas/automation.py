"""Models of the automation resources, with the seed's field names.

Node and edge references are integer ids named ``workflow``,
``source_node``, ``target_node`` (docs/CONTRACT.md); in the ORM they are the
``*_id`` columns, read through ``validation_alias``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, EmailStr, Field

from app.api.core import DbId, Input, Output
from app.automation.delivery.windows import WindowError, parse_window
from app.automation.lifecycle.workflow_ops import DESCRIPTION_MAX, NAME_MAX
from app.automation.nodes.registry import all_node_types
from app.automation.triggers.registry import TRIGGER_TYPES
from app.models.execution import EXECUTION_STATUSES

NODE_KEY = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,99}$"
Name = Field(min_length=1, max_length=NAME_MAX)


class _OneOf:
    """A string field documented as an enum of ``values()``, read when the
    OpenAPI document is built (so every registered type is listed). Input
    stays a string so an unknown type is the contract's 422 with the
    registry's message, not a bare 400."""

    def __init__(self, values: Callable[[], Iterable[str]], description: str):
        self.values = values
        self.description = description

    def __get_pydantic_json_schema__(self, core_schema, handler) -> dict:
        return {"type": "string", "enum": sorted(self.values()), "description": self.description}


NodeTypeName = Annotated[
    str, _OneOf(lambda: (t.key for t in all_node_types()), "a registered node type")
]
TriggerTypeName = Annotated[str, _OneOf(lambda: TRIGGER_TYPES, "a registered trigger type")]
ExecutionStatus = Annotated[str, _OneOf(lambda: EXECUTION_STATUSES, "the execution's state")]
WorkflowStatus = Literal["draft", "active", "paused", "archived"]


# --- workflows -------------------------------------------------------------


def _send_window(value):
    try:
        window = parse_window(value)
    except WindowError as exc:
        raise ValueError(str(exc)) from None
    return window.as_dict() if window is not None else None


# {"days": ["mon", ...], "start": "09:00", "end": "17:00", "timezone": "contact"}
SendWindow = Annotated[dict[str, Any], AfterValidator(_send_window)]


class WorkflowCreate(Input):
    name: str = Name
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    status: Literal["draft"] = Field(
        default="draft", description="new workflows are drafts; use activate"
    )
    canvas_data: dict[str, Any] = Field(default_factory=dict)
    allow_reentry: bool = False
    exit_on_goal: bool = True
    enroll_existing: bool = False
    send_window: SendWindow | None = None
    priority: int = Field(default=5, ge=1, le=10, description="1 highest .. 10")


class WorkflowUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    status: Literal["draft", "archived"] | None = Field(
        default=None, description="archive or un-archive; activate/pause have their own endpoints"
    )
    canvas_data: dict[str, Any] | None = None
    allow_reentry: bool | None = None
    exit_on_goal: bool | None = None
    enroll_existing: bool | None = None
    send_window: SendWindow | None = None
    priority: int | None = Field(default=None, ge=1, le=10, description="1 highest .. 10")


class WorkflowOut(Output):
    id: int
    name: str
    description: str
    status: WorkflowStatus
    version: int
    canvas_data: dict[str, Any]
    allow_reentry: bool
    exit_on_goal: bool
    enroll_existing: bool
    send_window: dict[str, Any] | None = None
    priority: int = 5
    created_by: int | None = Field(validation_alias="created_by_id")
    activated_at: datetime | None
    created_at: datetime
    updated_at: datetime


# --- triggers --------------------------------------------------------------


class TriggerCreate(Input):
    workflow: DbId
    trigger_type: TriggerTypeName = Field(min_length=1, max_length=50)
    configuration: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True


class TriggerUpdate(Input):
    trigger_type: TriggerTypeName | None = Field(default=None, min_length=1, max_length=50)
    configuration: dict[str, Any] | None = None
    is_active: bool | None = None


class TriggerOut(Output):
    id: int
    workflow: int = Field(validation_alias="workflow_id")
    trigger_type: TriggerTypeName
    configuration: dict[str, Any]
    is_active: bool
    created_at: datetime
    updated_at: datetime


# --- nodes -----------------------------------------------------------------


class NodeCreate(Input):
    workflow: DbId
    node_id: str = Field(pattern=NODE_KEY, description="the node's key in the graph")
    node_type: NodeTypeName = Field(min_length=1, max_length=50)
    label: str = Field(default="", max_length=200)
    position_x: float = Field(default=0.0, ge=-1e6, le=1e6)
    position_y: float = Field(default=0.0, ge=-1e6, le=1e6)
    configuration: dict[str, Any] = Field(default_factory=dict)


class NodeUpdate(Input):
    node_id: str | None = Field(default=None, pattern=NODE_KEY)
    node_type: NodeTypeName | None = Field(default=None, min_length=1, max_length=50)
    label: str | None = Field(default=None, max_length=200)
    position_x: float | None = Field(default=None, ge=-1e6, le=1e6)
    position_y: float | None = Field(default=None, ge=-1e6, le=1e6)
    configuration: dict[str, Any] | None = None


class NodeOut(Output):
    id: int
    workflow: int = Field(validation_alias="workflow_id")
    node_id: str
    node_type: NodeTypeName
    label: str
    position_x: float
    position_y: float
    configuration: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    warnings: dict[str, list[str]] = Field(
        default_factory=dict,
        description="on create and on a change of configuration: what was saved but may "
        "not work yet (a webhook host that does not resolve now), keyed like errors",
    )


# --- edges -----------------------------------------------------------------


class EdgeCreate(Input):
    workflow: DbId | None = Field(
        default=None, description="optional; must be the source node's workflow"
    )
    source_node: DbId
    target_node: DbId
    condition_type: str | None = Field(
        default=None, max_length=20, description="null for a plain edge; yes/no, timeout, variant"
    )
    condition_config: dict[str, Any] = Field(default_factory=dict)
    label: str = Field(default="", max_length=200)


class EdgeOut(Output):
    id: int
    workflow: int = Field(validation_alias="workflow_id")
    source_node: int = Field(validation_alias="source_node_id")
    target_node: int = Field(validation_alias="target_node_id")
    condition_type: str | None
    condition_config: dict[str, Any]
    label: str
    created_at: datetime


class WorkflowDetail(WorkflowOut):
    """A workflow with its graph: ``triggers``, ``nodes`` and ``edges``."""

    triggers: list[TriggerOut]
    nodes: list[NodeOut]
    edges: list[EdgeOut]


# --- executions ------------------------------------------------------------


class ExecutionOut(Output):
    id: int
    workflow: int = Field(validation_alias="workflow_id")
    version: int
    contact: int = Field(validation_alias="contact_id")
    status: ExecutionStatus
    current_node: str | None
    execution_path: list[str]
    context_data: dict[str, Any]
    trigger_type: str
    goal_reached: bool
    idempotency_key: str
    test_mode: bool
    wake_at: datetime | None
    wait_reason: str | None
    attempts: int
    last_error: str | None
    started_at: datetime
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class FlowStateOut(Output):
    node_id: str
    node_type: NodeTypeName
    visit: int
    entered_at: datetime
    exited_at: datetime | None
    action_status: str
    action_result: dict[str, Any]
    variant: str | None
    branch: str | None
    next_node: str | None


class ExecutionDetail(ExecutionOut):
    flow_states: list[FlowStateOut]


class TriggerRun(Input):
    contact_id: DbId | None = Field(default=None, description="the contact to start; or email")
    email: EmailStr | None = Field(
        default=None,
        max_length=320,
        description="instead of contact_id: the contact with this address, made if there is none",
    )
    context: dict[str, Any] = Field(default_factory=dict)


class FlowNodeOut(Output):
    id: str
    visits: int
    drop_off: int


class FlowEdgeOut(Output):
    source: str
    target: str
    transitions: int


class FlowVisualization(Output):
    nodes: list[FlowNodeOut]
    edges: list[FlowEdgeOut]


# --- goals and analytics ---------------------------------------------------


class GoalCreate(Input):
    workflow: DbId
    name: str = Name
    goal_node: DbId | None = None
    goal_value: Decimal = Field(default=Decimal("0"), ge=0, max_digits=14, decimal_places=2)


class GoalUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    goal_node: DbId | None = None
    goal_value: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)


class GoalOut(Output):
    id: int
    workflow: int = Field(validation_alias="workflow_id")
    name: str
    goal_node: int | None = Field(validation_alias="goal_node_id")
    goal_value: float
    total_conversions: int
    conversion_rate: float
    total_value: float
    created_at: datetime
    updated_at: datetime


class AnalyticsOut(Output):
    id: int | None = None
    workflow: int = Field(validation_alias="workflow_id")
    period_start: date
    period_end: date
    total_executions: int
    completed_executions: int
    failed_executions: int
    goal_reached_executions: int
    avg_completion_time_seconds: float | None
    median_completion_time_seconds: float | None
    drop_off_points: list[Any]
    node_performance: dict[str, Any]
    goal_conversion_rate: float
    computed_at: datetime | None = None
