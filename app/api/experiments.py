"""A workflow's experiments: its splits, their numbers and decisions
(docs/EXPERIMENTS.md, docs/CONTRACT.md "Experiments, audiences, forecasts,
integrations")."""

from __future__ import annotations

from pydantic import Field

from app.api.access import get_or_404
from app.api.core import Output, endpoint
from app.automation.analytics.experiments import workflow_experiments
from app.models import Workflow

TAG = "Experiments"


class VariantOut(Output):
    name: str
    weight: float
    entered: int
    conversions: int
    rate: float = Field(description="percent")
    interval: list[float] = Field(description="95% Wilson interval of the rate, percent")


class AutoWinnerOut(Output):
    min_per_variant: int
    alpha: float


class DecisionOut(Output):
    winner: str
    p_value: float
    alpha: float
    test: str
    metric: str
    numbers: dict[str, dict[str, int]] = Field(
        description="per variant, entered and conversions at the decision"
    )
    decided_at: str


class GroupOut(Output):
    contacts: int
    conversions: int
    rate: float
    interval: list[float]


class LiftOut(Output):
    available: bool
    note: str = ""
    goal: str | None = None
    test: str | None = None
    treated: GroupOut | None = None
    holdout: GroupOut | None = None
    difference: float | None = Field(
        default=None, description="treated rate minus holdout rate, percentage points"
    )
    interval: list[float] | None = None


class HoldoutOut(Output):
    percent: float
    entered: int
    lift: LiftOut


class ExperimentOut(Output):
    node_id: str
    label: str
    metric: str = Field(description='"goal_reached", "goal:<node_id>", "click" or "open"')
    auto_winner: AutoWinnerOut | None
    test: str
    variants: list[VariantOut]
    best: str | None
    p_value: float | None = Field(description="always-valid p-value, Bonferroni-adjusted")
    ready: bool = Field(description="every variant has min_per_variant contacts")
    winner: str | None
    decided_at: str | None
    decision: DecisionOut | None
    holdout: HoldoutOut | None


class ExperimentList(Output):
    results: list[ExperimentOut]
    next: str | None = None


@endpoint(
    "/automation/workflows/<int:workflow_id>/experiments/",
    tag=TAG,
    summary="The workflow's splits as experiments",
    response=ExperimentList,
    errors=(404,),
)
def list_experiments(workflow_id: int):
    """Each split with per-variant numbers, the sequential test, the winner
    (null until decided) and the moment of the decision; a split with a
    holdout also shows the lift over it."""
    workflow = get_or_404(Workflow, workflow_id, what="workflow")
    return {"results": workflow_experiments(workflow), "next": None}
