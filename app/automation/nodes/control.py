"""Control-flow nodes (condition, waits, split) and the goal node.

A wait node enters by returning ``Outcome.wait``; when the execution comes
back (the sweeper found it due, or a wake) the same ``execute`` runs with
``step.resuming`` set and decides again from the clock and the facts, so an
early wake never cuts a wait short.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.automation.crm.dates import field_moment, field_value, zone_of
from app.automation.nodes import form, summaries
from app.automation.nodes.registry import NodeConfig, NodeType, Port, register
from app.automation.nodes.step import Outcome, Step
from app.automation.rules.evaluator import evaluate, evaluate_with_explanation
from app.automation.rules.schema import HasRules
from app.clock import ensure_utc

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def rule_group(configuration: dict) -> dict:
    """The ``match``/``rules`` part of a raw node configuration."""
    return {"match": configuration.get("match", "all"), "rules": configuration.get("rules") or []}


def _entered_at(step: Step) -> datetime:
    if step.waiting and step.waiting.get("entered_at"):
        return ensure_utc(step.waiting["entered_at"])
    return step.moment


def target_time(step: Step) -> datetime | None:
    """``until``, or the contact's date field + offset_days at ``at``
    (default 09:00) in the contact's timezone, by the date triggers' rule
    (app/automation/crm/dates.py); None when the field is empty or not a
    date."""
    config = step.config
    if config.until is not None:
        return ensure_utc(config.until)
    contact = step.contact.contact
    value = field_value(config.field, contact, contact.get("custom_fields"))
    found = field_moment(value, zone_of(contact.get("timezone")), config.offset_days, config.at)
    return found[1] if found is not None else None


def split_bucket(workflow_id: int, node_id: str, contact_id: int) -> float:
    """A stable number in [0, 100) per (workflow, node, contact): the same
    contact lands on the same variant every time it passes this split."""
    digest = hashlib.sha256(f"{workflow_id}:{node_id}:{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def goal_met(configuration: dict, facts) -> bool:
    group = rule_group(configuration)
    return bool(group["rules"]) and evaluate(group, facts)


class ConditionConfig(NodeConfig, HasRules):
    pass


@register
class Condition(NodeType):
    key = "condition"
    label = "If / else"
    family = "control"
    icon = "git-branch"
    color = "#f59e0b"
    description = "Branch on contact fields, tags, lists, deals or e-mail activity."
    Config = ConditionConfig
    uses_rules = True
    form = (
        form.Rules(
            label="Go down \u201cYes\u201d when the contact matches",
            help="Otherwise the contact goes down \u201cNo\u201d.",
        ),
    )

    @classmethod
    def ports(cls, config=None):
        return (Port("yes", "Yes"), Port("no", "No"))

    @classmethod
    def default_config(cls) -> dict:
        return {"match": "all", "rules": [{"field": "contact.score", "op": "gte", "value": 50}]}

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"If {summaries.rules(config)}" if summaries.rules(config) else "No rules yet"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        met, details = evaluate_with_explanation(rule_group(step.node.configuration), step.facts())
        return Outcome(branch="yes" if met else "no", result={"result": met, "explain": details})


class WaitTimeConfig(NodeConfig):
    wait_duration_hours: float | None = Field(default=None, gt=0, le=24 * 366 * 5)
    wait_duration_seconds: float | None = Field(default=None, gt=0, le=3600 * 24 * 366 * 5)
    # Accepted for the seed's example; the duration fields decide.
    wait_type: str | None = None

    @model_validator(mode="after")
    def _one_duration(self):
        if self.wait_duration_hours is None and self.wait_duration_seconds is None:
            raise ValueError("wait_duration_hours: required (or wait_duration_seconds)")
        return self

    @property
    def seconds(self) -> float:
        if self.wait_duration_seconds is not None:
            return self.wait_duration_seconds
        return self.wait_duration_hours * 3600


@register
class WaitTime(NodeType):
    key = "wait_time"
    label = "Wait"
    family = "control"
    icon = "timer"
    color = "#64748b"
    description = "Wait for a number of minutes, hours or days."
    Config = WaitTimeConfig
    waits = True
    form = (
        form.Duration(
            "wait",
            "Wait for",
            hours_key="wait_duration_hours",
            seconds_key="wait_duration_seconds",
            error_keys=("wait_duration_hours", "wait_duration_seconds", "__root__"),
        ),
    )

    @classmethod
    def default_config(cls) -> dict:
        return {"wait_duration_hours": 24}

    @classmethod
    def summary(cls, config: dict) -> str:
        hours = summaries.hours_of(config, "wait_duration_hours", "wait_duration_seconds")
        return f"Wait {summaries.duration(hours)}" if hours else "No duration yet"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        until = _entered_at(step) + timedelta(seconds=step.config.seconds)
        if step.test_mode:
            return Outcome(result={"test": True, "would_wait_until": until.isoformat()})
        if step.moment >= until:
            return Outcome(result={"waited_until": until.isoformat()})
        return Outcome.wait(until, "time", wait_until=until.isoformat())


def _time_of_day(value: str | None) -> str | None:
    if value is not None and not _TIME_OF_DAY.match(value):
        raise ValueError("must be a time of day like 09:00")
    return value


class WaitUntilConfig(NodeConfig):
    until: datetime | None = None
    field: str | None = Field(default=None, max_length=120)
    offset_days: int = Field(default=0, ge=-3660, le=3660)
    at: str | None = None

    _check_at = field_validator("at")(classmethod(lambda cls, v: _time_of_day(v)))

    @field_validator("until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a timezone, e.g. 2026-12-24T09:00:00Z")
        return value

    @model_validator(mode="after")
    def _until_or_field(self):
        if (self.until is None) == (self.field is None):
            raise ValueError("until: give either until or field (+ offset_days)")
        return self


@register
class WaitUntil(NodeType):
    key = "wait_until"
    label = "Wait until"
    family = "control"
    icon = "calendar-clock"
    color = "#475569"
    description = "Wait until a date, or a contact date field plus an offset."
    Config = WaitUntilConfig
    waits = True
    form = (form.WaitTarget(),)

    @classmethod
    def default_config(cls) -> dict:
        return {"field": "custom.renewal_date", "offset_days": -7, "at": "09:00"}

    @classmethod
    def summary(cls, config: dict) -> str:
        if config.get("until"):
            return f"Until {str(config['until']).replace('T', ' ')[:16]} UTC"
        if not config.get("field"):
            return "No date yet"
        days = config.get("offset_days") or 0
        offset = f" {int(days):+d} days" if isinstance(days, (int, float)) and days else ""
        at = f" at {config['at']}" if config.get("at") else ""
        return f"Until {str(config['field']).removeprefix('custom.')}{offset}{at}"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        until = target_time(step)
        if until is None:
            return Outcome(status="skipped", result={"reason": "no date to wait for"})
        if step.test_mode:
            return Outcome(result={"test": True, "would_wait_until": until.isoformat()})
        if step.moment >= until:
            return Outcome(result={"waited_until": until.isoformat()})
        return Outcome.wait(until, "until", wait_until=until.isoformat())


class WaitConditionConfig(NodeConfig, HasRules):
    timeout_hours: float | None = Field(default=None, gt=0, le=24 * 366 * 5)
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600 * 24 * 366 * 5)

    @model_validator(mode="after")
    def _has_timeout(self):
        if self.timeout_hours is None and self.timeout_seconds is None:
            raise ValueError("timeout_hours: required (or timeout_seconds)")
        if not self.rules:
            raise ValueError("rules: add at least one rule to wait for")
        return self

    @property
    def timeout(self) -> float:
        if self.timeout_seconds is not None:
            return self.timeout_seconds
        return self.timeout_hours * 3600


@register
class WaitCondition(NodeType):
    key = "wait_condition"
    label = "Wait for condition"
    family = "control"
    icon = "hourglass"
    color = "#334155"
    description = "Wait until the contact meets rules, or give up after a timeout."
    Config = WaitConditionConfig
    waits = True
    uses_rules = True
    form = (
        form.Rules(
            label="Wait until the contact matches",
            help="Met: continue down \u201cMet\u201d. Otherwise, after the timeout, down "
            "\u201cTimed out\u201d.",
        ),
        form.Duration(
            "timeout",
            "Give up after",
            hours_key="timeout_hours",
            seconds_key="timeout_seconds",
            error_keys=("timeout_hours", "timeout_seconds"),
        ),
    )

    @classmethod
    def ports(cls, config=None):
        return (Port("yes", "Met"), Port("timeout", "Timed out"))

    @classmethod
    def default_config(cls) -> dict:
        return {"match": "all", "rules": [{"tag": "customer", "op": "has"}], "timeout_hours": 72}

    @classmethod
    def summary(cls, config: dict) -> str:
        hours = summaries.hours_of(config, "timeout_hours", "timeout_seconds")
        limit = f", max {summaries.duration(hours)}" if hours else ""
        return f"Until {summaries.rules(config) or '...'}{limit}"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        met, details = evaluate_with_explanation(rule_group(step.node.configuration), step.facts())
        deadline = _entered_at(step) + timedelta(seconds=step.config.timeout)
        if met:
            return Outcome(branch="yes", result={"result": True, "explain": details})
        if step.test_mode or step.moment >= deadline:
            return Outcome(
                branch="timeout",
                result={"result": False, "timed_out_at": deadline.isoformat(), "explain": details},
            )
        # Re-checked when the contact changes (engine/wakes.py) and every
        # CONDITION_RECHECK_SECONDS besides; given up at the deadline.
        recheck = float(current_app.config.get("CONDITION_RECHECK_SECONDS") or 300)
        wake_at = min(deadline, step.moment + timedelta(seconds=recheck))
        return Outcome.wait(wake_at, "condition", timeout_at=deadline.isoformat())


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    weight: float = Field(ge=0, le=100)


METRICS = ("click", "open")
# Variant names a split may not use: the holdout's branch in flow states.
RESERVED_VARIANTS = ("holdout",)


class AutoWinner(BaseModel):
    """When a split decides its experiment (docs/EXPERIMENTS.md)."""

    model_config = ConfigDict(extra="forbid")

    min_per_variant: int = Field(default=100, ge=10, le=1_000_000)
    alpha: float = Field(default=0.05, gt=0, le=0.2)


class SplitConfig(NodeConfig):
    variants: list[Variant] = Field(min_length=2, max_length=10)
    # What converts: {"goal": "<goal node_id>"}, "click" or "open"; none:
    # the execution reached any goal.
    metric: str | dict | None = None
    auto_winner: AutoWinner | None = None
    holdout_percent: float = Field(default=0, ge=0, le=50)

    @field_validator("variants")
    @classmethod
    def _weights(cls, variants: list[Variant]) -> list[Variant]:
        names = [variant.name for variant in variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be different")
        if any(name.strip().lower() in RESERVED_VARIANTS for name in names):
            raise ValueError("a variant may not be called holdout")
        if abs(sum(variant.weight for variant in variants) - 100) > 0.001:
            raise ValueError("weights must add up to 100")
        return variants

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str | dict | None) -> str | dict | None:
        if metric is None or metric == "":
            return None
        if isinstance(metric, str):
            if metric not in METRICS:
                raise ValueError('choose "click", "open" or {"goal": "<goal step id>"}')
            return metric
        goal = metric.get("goal")
        if set(metric) != {"goal"} or not isinstance(goal, str) or not goal.strip():
            raise ValueError('a goal metric is {"goal": "<goal step id>"}')
        return {"goal": goal.strip()}


def holdout_bucket(workflow_id: int, node_id: str, contact_id: int) -> float:
    """A stable number in [0, 100) per (workflow, node, contact), drawn apart
    from :func:`split_bucket` so the holdout takes the same share of every
    variant."""
    digest = hashlib.sha256(f"holdout:{workflow_id}:{node_id}:{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@register
class Split(NodeType):
    key = "split"
    label = "A/B split"
    family = "control"
    icon = "split"
    color = "#e11d48"
    description = "Send contacts down weighted variants; each contact keeps its variant."
    Config = SplitConfig
    form = (form.Variants(), form.Experiment())

    @classmethod
    def ports(cls, config=None):
        if config is None:
            return ()
        return tuple(
            Port("variant", variant.name, {"variant": variant.name}) for variant in config.variants
        )

    @classmethod
    def default_config(cls) -> dict:
        return {"variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]}

    @classmethod
    def graph_problems(cls, config: NodeConfig, steps: dict[str, str]) -> list[str]:
        # A goal metric naming no goal step would count no conversion ever,
        # and the auto-winner would wait forever (docs/EXPERIMENTS.md).
        metric = getattr(config, "metric", None)
        if isinstance(metric, dict) and steps.get(metric["goal"]) != "goal":
            return [f"metric: no goal step {metric['goal']!r} in this workflow"]
        return []

    @classmethod
    def summary(cls, config: dict) -> str:
        variants = config.get("variants")
        if not isinstance(variants, list) or not variants:
            return "No variants yet"
        shown = [
            f"{v.get('name')} {v.get('weight', 0):g}%"
            if isinstance(v, dict) and isinstance(v.get("weight", 0), (int, float))
            else "?"
            for v in variants
        ]
        text = "Split " + " / ".join(shown)
        holdout = config.get("holdout_percent")
        if isinstance(holdout, (int, float)) and holdout > 0:
            text += f", {holdout:g}% held out"
        if isinstance(config.get("auto_winner"), dict):
            text += ", picks a winner"
        return text

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        """Held out (docs/EXPERIMENTS.md "Holdout"): the execution ends here,
        completed, with nothing sent. Else the decided winner once there is
        one (read once per batch), or the contact's stable weighted variant."""
        config = step.config
        workflow_id, node_id = step.workflow.id, step.node.node_id
        if config.holdout_percent and (
            holdout_bucket(workflow_id, node_id, step.contact_id) < config.holdout_percent
        ):
            return Outcome(status="skipped", branch="holdout", result={"reason": "holdout"})
        names = [variant.name for variant in config.variants]
        winner = step.state.split_winners(workflow_id).get(node_id)
        if winner in names:
            chosen = winner
            result = {"variant": chosen, "winner": True}
        else:
            bucket = split_bucket(workflow_id, node_id, step.contact_id)
            chosen = names[-1]
            total = 0.0
            for variant in config.variants:
                total += variant.weight
                if bucket < total:
                    chosen = variant.name
                    break
            result = {"variant": chosen}
        step.context.setdefault("variants", {})[node_id] = chosen
        return Outcome(branch="variant", variant=chosen, result=result)


class GoalConfig(NodeConfig, HasRules):
    goal_value: float = Field(default=0, ge=0)


@register
class Goal(NodeType):
    key = "goal"
    label = "Goal"
    family = "goal"
    icon = "trophy"
    color = "#059669"
    description = (
        "A conversion. With rules, contacts anywhere in the workflow who meet them jump here."
    )
    Config = GoalConfig
    uses_rules = True
    converts = True
    jump_target = True
    form = (
        form.Number("goal_value", "Value of a conversion", placeholder="0", default=0),
        form.Rules(
            label="Jump here when the contact matches (optional)",
            help="With rules, contacts anywhere in this workflow who meet them jump to this "
            "goal. Without rules, contacts reach it by its incoming connection.",
        ),
    )

    @classmethod
    def default_config(cls) -> dict:
        return {"match": "all", "rules": [], "goal_value": 0}

    @classmethod
    def summary(cls, config: dict) -> str:
        rules = summaries.rules(config)
        return f"When {rules}" if rules else "Reached by the path"

    @classmethod
    def execute(cls, step: Step) -> Outcome:
        value = getattr(step.config, "goal_value", 0) or 0
        return Outcome(goal=True, result={"goal": step.node.node_id, "goal_value": value})
