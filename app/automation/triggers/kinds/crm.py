"""Trigger types the CRM's changes start: contacts, tags, lists, deals, score.

Each is one ``register`` call: configuration, family, event filter and,
where the filter has a meaning for a contact already there, its rules
(app/automation/triggers/registry.py).
"""

from __future__ import annotations

from pydantic import Field

from app.automation.triggers.base import Filter, TriggerConfig, TriggerType, register
from app.automation.triggers.filters import any_event, num, same_text

register(
    TriggerType(
        "contact_created",
        "Contact created",
        "CRM",
        TriggerConfig,
        "A new contact is added.",
        filter=any_event,
    )
)


class ContactUpdatedConfig(TriggerConfig):
    # Fire only when one of these fields changed (all fields when empty).
    fields: list[str] = Field(default_factory=list)


def changed_field_names(changed: dict) -> set[str]:
    """``{"custom_fields": [old, new], "score": [...]}`` -> the names a
    ``fields`` filter may use: ``score``, ``contact.score``,
    ``custom_fields`` and ``custom.<key>`` for each custom key changed."""
    names: set[str] = set()
    for name, change in (changed or {}).items():
        names.update({name, f"contact.{name}"})
        if name == "custom_fields" and isinstance(change, list | tuple) and len(change) == 2:
            old, new = (change[0] or {}), (change[1] or {})
            for key in set(old) | set(new):
                if old.get(key) != new.get(key):
                    names.update({f"custom.{key}", f"contact.custom.{key}"})
        elif name.startswith("custom."):
            names.add(f"contact.{name}")
    return names


def _contact_updated(config: dict, data: dict) -> bool:
    fields = config.get("fields") or []
    if not fields:
        return True
    return bool(set(fields) & changed_field_names(data.get("changed") or {}))


register(
    TriggerType(
        "contact_updated",
        "Contact updated",
        "CRM",
        ContactUpdatedConfig,
        "A contact's fields change.",
        filter=_contact_updated,
    )
)


class TagFilterConfig(TriggerConfig):
    tag: str | None = None


def _tag(config: dict, data: dict) -> bool:
    wanted = config.get("tag")
    return not wanted or same_text(wanted, data.get("tag"))


register(
    TriggerType(
        "contact_tag_added",
        "Tag added",
        "CRM",
        TagFilterConfig,
        "A tag is added to a contact.",
        filter=_tag,
        existing_rules=lambda c: [{"tag": c["tag"], "op": "has"}] if c.get("tag") else [],
    )
)

register(
    TriggerType(
        "contact_tag_removed",
        "Tag removed",
        "CRM",
        TagFilterConfig,
        "A tag is removed from a contact.",
        filter=_tag,
    )
)


class ListFilterConfig(TriggerConfig):
    list: int | None = None


def _list(config: dict, data: dict) -> bool:
    wanted = config.get("list")
    return wanted is None or num(data.get("list")) == num(wanted)


register(
    TriggerType(
        "contact_list_added",
        "Added to list",
        "CRM",
        ListFilterConfig,
        "A contact joins a list.",
        filter=_list,
        existing_rules=lambda c: [{"list": c["list"], "op": "in"}] if c.get("list") else [],
    )
)

register(
    TriggerType(
        "contact_list_removed",
        "Removed from list",
        "CRM",
        ListFilterConfig,
        "A contact leaves a list.",
        filter=_list,
    )
)


class DealConfig(TriggerConfig):
    pipeline_stage: str | None = None


class DealStageConfig(TriggerConfig):
    from_stage: str | None = None
    to_stage: str | None = None


class DealValueConfig(TriggerConfig):
    min_value: float | None = None


def _deal(config: dict, data: dict) -> bool:
    wanted = config.get("pipeline_stage")
    return not wanted or same_text(wanted, data.get("stage"))


def _deal_stage(config: dict, data: dict) -> bool:
    if config.get("from_stage") and not same_text(config["from_stage"], data.get("from_stage")):
        return False
    return not config.get("to_stage") or same_text(config["to_stage"], data.get("to_stage"))


def _deal_value(config: dict, data: dict) -> bool:
    minimum = num(config.get("min_value"))
    if minimum is None:
        return True
    new = num(data.get("new_value"))
    return new is not None and new >= minimum


register(
    TriggerType(
        "deal_created",
        "Deal created",
        "Deals",
        DealConfig,
        "A deal is created for a contact.",
        filter=_deal,
    )
)

register(
    TriggerType(
        "deal_stage_changed",
        "Deal stage changed",
        "Deals",
        DealStageConfig,
        "A deal moves between stages.",
        filter=_deal_stage,
    )
)

register(
    TriggerType(
        "deal_value_changed",
        "Deal value changed",
        "Deals",
        DealValueConfig,
        "A deal's value changes.",
        filter=_deal_value,
    )
)

register(
    TriggerType(
        "deal_won",
        "Deal won",
        "Deals",
        DealConfig,
        "A deal's status becomes won.",
        filter=_deal,
    )
)

register(
    TriggerType(
        "deal_lost",
        "Deal lost",
        "Deals",
        DealConfig,
        "A deal's status becomes lost.",
        filter=_deal,
    )
)


class ScoreConfig(TriggerConfig):
    threshold: int


def _score(direction: str) -> Filter:
    """Crossing, not every change: reached when the score goes from below
    the threshold to at or above it; dropped for the way back down."""

    def check(config: dict, data: dict) -> bool:
        threshold = num(config.get("threshold"))
        if threshold is None:
            return False
        old, new = num(data.get("old_score")), num(data.get("new_score"))
        if new is None:
            # The seed's helper reports a score against a threshold it names.
            new = num(data.get("score"))
            named = num(data.get("threshold"))
            if new is None or (named is not None and named != threshold):
                return False
            return new >= threshold if direction == "up" else new < threshold
        if old is None:
            old = 0.0
        if direction == "up":
            return old < threshold <= new
        return new < threshold <= old

    return check


register(
    TriggerType(
        "score_threshold_reached",
        "Score reached",
        "Score",
        ScoreConfig,
        "A contact's score rises to the threshold.",
        filter=_score("up"),
        existing_rules=lambda c: (
            [{"field": "contact.score", "op": "gte", "value": c["threshold"]}]
            if c.get("threshold") is not None
            else []
        ),
    )
)

register(
    TriggerType(
        "score_threshold_dropped",
        "Score dropped",
        "Score",
        ScoreConfig,
        "A contact's score falls below the threshold.",
        filter=_score("down"),
    )
)
