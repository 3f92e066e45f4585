"""Words for a step's card: the pieces node types' ``summary`` use.

A card says what its step does ("Wait 2 days", "If score >= 50"). The
configuration may be a half-finished draft, so every helper takes what is
there and never raises.
"""

from __future__ import annotations

from typing import Any

OPS = {
    "eq": "=",
    "neq": "!=",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "in": "in",
    "is_set": "is set",
    "is_not_set": "is not set",
}


def quoted(text: Any, limit: int = 40) -> str:
    text = " ".join(str(text or "").split())
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return f"\u201c{text}\u201d"


def duration(hours: Any) -> str:
    """48 -> "2 days", 0.5 -> "30 minutes", 1.5 -> "1.5 hours"."""
    try:
        hours = float(hours)
    except (TypeError, ValueError):
        return ""
    for unit, size in (("day", 24.0), ("hour", 1.0), ("minute", 1 / 60)):
        amount = hours / size
        if amount >= 1 and abs(amount - round(amount)) < 1e-9:
            count = int(round(amount))
            return f"{count} {unit}{'' if count == 1 else 's'}"
    if hours >= 1:
        return f"{hours:g} hours"
    return f"{hours * 60:.3g} minutes"


def hours_of(config: dict, hours_key: str, seconds_key: str) -> float | None:
    if config.get(hours_key) is not None:
        return config[hours_key]
    if config.get(seconds_key) is not None:
        try:
            return float(config[seconds_key]) / 3600
        except (TypeError, ValueError):
            return None
    return None


def rule(item: Any) -> str:
    if not isinstance(item, dict):
        return "?"
    if "rules" in item:
        return f"({rules(item) or 'no rules'})"
    if "tag" in item:
        return f"{'has' if item.get('op') != 'has_not' else 'has no'} tag {item['tag']}"
    if "list" in item:
        return f"{'in' if item.get('op') != 'not_in' else 'not in'} list {item['list']}"
    if "topic" in item:
        sub = "subscribed" if item.get("op") != "not_subscribed" else "not subscribed"
        return f"{sub} to topic {item['topic']}"
    if "event" in item:
        what = str(item["event"]).removeprefix("email_")
        return f"{what} {item.get('node') or 'an e-mail'}"
    if "audience" in item:
        return f"{'in' if item.get('op') != 'not_in' else 'not in'} audience {item['audience']}"
    field = str(item.get("field", "?"))
    for prefix in ("contact.custom.", "contact."):
        field = field.removeprefix(prefix)
    op = OPS.get(str(item.get("op")), str(item.get("op", "")))
    if item.get("op") in ("is_set", "is_not_set"):
        return f"{field} {op}"
    return f"{field} {op} {item.get('value', '')}".strip()


def rules(config: Any) -> str:
    """ "score >= 50 and has tag vip", or "score >= 50 and 2 more"."""
    if not isinstance(config, dict) or not isinstance(config.get("rules"), list):
        return ""
    items = config["rules"]
    if not items:
        return ""
    joiner = " or " if config.get("match") == "any" else " and "
    first = rule(items[0])
    if len(items) == 1:
        return first
    if len(items) == 2:
        return first + joiner + rule(items[1])
    return f"{first}{joiner}{len(items) - 1} more"
