"""Does an event pass a trigger's configuration filter?

One small function per trigger family, chosen by the trigger type. The
event ``data`` shapes are the ones the sources emit (see ``bus.py``); a
filter key left empty (None / missing) means "any". Rules (``match`` /
``rules``) are not looked at here: they filter the contact and are
evaluated by the bus with the one rules evaluator.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

Filter = Callable[[dict, dict], bool]


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def _same_text(wanted: Any, actual: Any) -> bool:
    return str(wanted).strip().lower() == str(actual or "").strip().lower()


def _form(config: dict, data: dict) -> bool:
    wanted = config.get("form_id")
    return wanted is None or _num(data.get("form_id")) == _num(wanted)


def _email(config: dict, data: dict) -> bool:
    if config.get("workflow_id") is not None and _num(data.get("workflow_id")) != _num(
        config["workflow_id"]
    ):
        return False
    if config.get("node") and data.get("node") != config["node"]:
        return False
    return _url(config, data)


def _url(config: dict, data: dict) -> bool:
    needle = config.get("url_contains")
    if not needle:
        return True
    haystack = data.get("url") or data.get("link_url") or data.get("page_url") or ""
    return str(needle).lower() in str(haystack).lower()


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


def _tag(config: dict, data: dict) -> bool:
    wanted = config.get("tag")
    return not wanted or _same_text(wanted, data.get("tag"))


def _list(config: dict, data: dict) -> bool:
    wanted = config.get("list")
    return wanted is None or _num(data.get("list")) == _num(wanted)


def _deal(config: dict, data: dict) -> bool:
    wanted = config.get("pipeline_stage")
    return not wanted or _same_text(wanted, data.get("stage"))


def _deal_stage(config: dict, data: dict) -> bool:
    if config.get("from_stage") and not _same_text(config["from_stage"], data.get("from_stage")):
        return False
    return not config.get("to_stage") or _same_text(config["to_stage"], data.get("to_stage"))


def _deal_value(config: dict, data: dict) -> bool:
    minimum = _num(config.get("min_value"))
    if minimum is None:
        return True
    new = _num(data.get("new_value"))
    return new is not None and new >= minimum


def _score(direction: str) -> Filter:
    """Crossing, not every change: reached when the score goes from below
    the threshold to at or above it; dropped for the way back down."""

    def check(config: dict, data: dict) -> bool:
        threshold = _num(config.get("threshold"))
        if threshold is None:
            return False
        old, new = _num(data.get("old_score")), _num(data.get("new_score"))
        if new is None:
            # The seed's helper reports a score against a threshold it names.
            new = _num(data.get("score"))
            named = _num(data.get("threshold"))
            if new is None or (named is not None and named != threshold):
                return False
            return new >= threshold if direction == "up" else new < threshold
        if old is None:
            old = 0.0
        if direction == "up":
            return old < threshold <= new
        return new < threshold <= old

    return check


def _always(config: dict, data: dict) -> bool:
    return True


FILTERS: dict[str, Filter] = {
    "form_submitted": _form,
    "email_opened": _email,
    "email_clicked": _email,
    "email_replied": _email,
    "email_bounced": _email,
    "email_complained": _email,
    "email_unsubscribed": _email,
    "page_visited": _url,
    "site_activity": _url,
    "contact_updated": _contact_updated,
    "contact_tag_added": _tag,
    "contact_tag_removed": _tag,
    "contact_list_added": _list,
    "contact_list_removed": _list,
    "deal_created": _deal,
    "deal_won": _deal,
    "deal_lost": _deal,
    "deal_stage_changed": _deal_stage,
    "deal_value_changed": _deal_value,
    "score_threshold_reached": _score("up"),
    "score_threshold_dropped": _score("down"),
}


def event_matches(trigger_type: str, configuration: dict | None, data: dict | None) -> bool:
    """True when the event passes the trigger's configuration filter."""
    check = FILTERS.get(trigger_type, _always)
    return check(configuration or {}, data or {})


def rule_group_of(configuration: dict | None) -> dict | None:
    """The trigger's optional contact rules, or None when it has none."""
    configuration = configuration or {}
    rules = configuration.get("rules") or []
    if not rules:
        return None
    return {"match": configuration.get("match") or "all", "rules": rules}
