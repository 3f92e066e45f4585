"""Executors of the control nodes: condition, waits, split, goal.

A wait node enters by returning ``Outcome.wait``; when the execution comes
back (the sweeper found it due, or ``engine.wake``) the same executor runs
with ``step.resuming`` set and decides again from the clock and the facts,
so an early wake never cuts a wait short.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app

from app.automation.nodes.executors import executor
from app.automation.nodes.executors.base import Outcome, Step
from app.automation.rules import evaluate, evaluate_with_explanation
from app.clock import ensure_utc


def _rules(config) -> dict:
    return {
        "match": config.match,
        "rules": [
            rule.model_dump() if hasattr(rule, "model_dump") else rule for rule in config.rules
        ],
    }


def rule_group(configuration: dict) -> dict:
    """The ``match``/``rules`` part of a raw node configuration."""
    return {"match": configuration.get("match", "all"), "rules": configuration.get("rules") or []}


@executor("condition")
def condition(step: Step) -> Outcome:
    met, details = evaluate_with_explanation(rule_group(step.node.configuration), step.facts())
    return Outcome(branch="yes" if met else "no", result={"result": met, "explain": details})


def _entered_at(step: Step) -> datetime:
    if step.waiting and step.waiting.get("entered_at"):
        return ensure_utc(step.waiting["entered_at"])
    return step.moment


@executor("wait_time")
def wait_time(step: Step) -> Outcome:
    until = _entered_at(step) + timedelta(seconds=step.config.seconds)
    if step.test_mode:
        return Outcome(result={"test": True, "would_wait_until": until.isoformat()})
    if step.moment >= until:
        return Outcome(result={"waited_until": until.isoformat()})
    return Outcome.wait(until, "time", wait_until=until.isoformat())


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _field_value(step: Step, name: str):
    name = name.removeprefix("contact.")
    contact = step.contact.contact
    if name.startswith("custom."):
        return (contact.get("custom_fields") or {}).get(name[len("custom.") :])
    return contact.get(name)


def target_time(step: Step) -> datetime | None:
    """``until``, or the contact's date field + offset_days (at ``at`` in the
    contact's timezone); None when the field is empty or unreadable."""
    config = step.config
    if config.until is not None:
        return ensure_utc(config.until)
    value = _field_value(step, config.field)
    zone = _zone(step.contact.contact.get("timezone"))
    if isinstance(value, str):
        try:
            value = (
                date.fromisoformat(value)
                if len(value.strip()) == 10
                else datetime.fromisoformat(value.replace("Z", "+00:00"))
            )
        except ValueError:
            return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        if config.at is None:
            return ensure_utc(aware + timedelta(days=config.offset_days))
        day = aware.astimezone(zone).date()
    elif isinstance(value, date):
        day = value
    else:
        return None
    day = day + timedelta(days=config.offset_days)
    hour, minute = (int(part) for part in (config.at or "00:00").split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)


@executor("wait_until")
def wait_until(step: Step) -> Outcome:
    until = target_time(step)
    if until is None:
        return Outcome(status="skipped", result={"reason": "no date to wait for"})
    if step.test_mode:
        return Outcome(result={"test": True, "would_wait_until": until.isoformat()})
    if step.moment >= until:
        return Outcome(result={"waited_until": until.isoformat()})
    return Outcome.wait(until, "until", wait_until=until.isoformat())


@executor("wait_condition")
def wait_condition(step: Step) -> Outcome:
    met, details = evaluate_with_explanation(rule_group(step.node.configuration), step.facts())
    deadline = _entered_at(step) + timedelta(seconds=step.config.timeout)
    if met:
        return Outcome(branch="yes", result={"result": True, "explain": details})
    if step.test_mode or step.moment >= deadline:
        return Outcome(
            branch="timeout",
            result={"result": False, "timed_out_at": deadline.isoformat(), "explain": details},
        )
    # Re-checked when the contact changes (condition_wakes.py) and every
    # CONDITION_RECHECK_SECONDS besides; given up at the deadline.
    recheck = float(current_app.config.get("CONDITION_RECHECK_SECONDS") or 300)
    wake_at = min(deadline, step.moment + timedelta(seconds=recheck))
    return Outcome.wait(wake_at, "condition", timeout_at=deadline.isoformat())


def split_bucket(workflow_id: int, node_id: str, contact_id: int) -> float:
    """A stable number in [0, 100) per (workflow, node, contact): the same
    contact lands on the same variant every time it passes this split."""
    digest = hashlib.sha256(f"{workflow_id}:{node_id}:{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@executor("split")
def split(step: Step) -> Outcome:
    variants = step.config.variants
    bucket = split_bucket(step.workflow.id, step.node.node_id, step.contact_id)
    chosen = variants[-1].name
    total = 0.0
    for variant in variants:
        total += variant.weight
        if bucket < total:
            chosen = variant.name
            break
    step.context.setdefault("variants", {})[step.node.node_id] = chosen
    return Outcome(branch="variant", variant=chosen, result={"variant": chosen})


@executor("goal")
def goal(step: Step) -> Outcome:
    value = getattr(step.config, "goal_value", 0) or 0
    return Outcome(goal=True, result={"goal": step.node.node_id, "goal_value": value})


def goal_met(configuration: dict, facts) -> bool:
    group = rule_group(configuration)
    return bool(group["rules"]) and evaluate(group, facts)
