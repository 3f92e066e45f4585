"""The one rules evaluator (docs/ARCHITECTURE.md rule 7).

Condition nodes, wait-for-condition, goals and trigger filters all ask
:func:`evaluate`; :func:`explain` answers the same question and also says
which values decided, for the execution view and test runs.

A rule group is ``{"match": "all"|"any", "rules": [...]}`` (docs/CONTRACT.md).
``facts`` is a plain mapping (never ORM objects), normally built by
:func:`app.automation.engine.context.facts_for` or the engine's batch state:

- ``contact``: the contact's columns, ``custom_fields`` a dict
- ``deal``: the contact's latest open deal as a dict, or None
- ``context``: the execution's (or event's) context
- ``tags``: set of tag names; ``lists``: set of list ids
- ``events``: iterable of ``(kind, node_id, created_at)`` of tracking
  events ("open", "click") of this execution's workflow (of any workflow
  for an audience), made by people (machine opens and clicks are left out);
  a rule's ``within_days`` counts only events that recent
- ``subscriptions``: topic id -> whether the contact gets that topic
- ``audiences``: ids of the audiences the contact is a member of
  (``{"audience": 3, "op": "in"}``)

:mod:`app.automation.rules.sql` compiles the same rules to one SQL
condition over contacts (audience counts); tests/rules/test_sql_parity.py
runs a table of rules both ways.

Facts are read with ``facts[key]`` so a lazy mapping (``__missing__``) may
load the expensive ones (events) only when a rule needs them.

Comparisons: strings compare case-insensitively (people type "VIP" and
"vip"); a number compares with a numeric string as a number; ISO dates
and datetimes compare as instants. A missing value never satisfies a
comparison except ``neq``, ``not_contains`` and ``is_not_set``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.clock import ensure_utc, now

_MISSING = object()
EVENT_KINDS = {"email_opened": "open", "email_clicked": "click"}


def evaluate(rule_group: Mapping | None, facts: Mapping) -> bool:
    """Does ``facts`` satisfy the rule group? An empty ``all`` group is true,
    an empty ``any`` group false."""
    if not rule_group:
        return True
    return _group(rule_group, facts, None)


def explain(rule_group: Mapping | None, facts: Mapping) -> list[dict]:
    """One entry per rule: the rule, the actual value, the result; nested
    groups carry their own ``rules`` list. The first entry is the group's
    own verdict (``{"match": ..., "result": bool}``)."""
    details: list[dict] = []
    result = _group(rule_group or {}, facts, details) if rule_group else True
    return [{"match": (rule_group or {}).get("match", "all"), "result": result}, *details]


def evaluate_with_explanation(rule_group: Mapping | None, facts: Mapping) -> tuple[bool, list]:
    """Both at once (condition nodes store the explanation as their result)."""
    details: list[dict] = []
    result = _group(rule_group or {}, facts, details) if rule_group else True
    return result, details


def _group(group: Mapping, facts: Mapping, out: list | None) -> bool:
    rules = group.get("rules") or []
    match_any = group.get("match", "all") == "any"
    if not rules:
        return not match_any
    results = []
    for rule in rules:
        if out is None:
            ok = _rule(rule, facts, None)
            # Short-circuit only when nobody wants the explanation.
            if match_any and ok:
                return True
            if not match_any and not ok:
                return False
        else:
            ok = _rule(rule, facts, out)
        results.append(ok)
    return any(results) if match_any else all(results)


def _rule(rule: Mapping, facts: Mapping, out: list | None) -> bool:
    if "rules" in rule:
        children: list[dict] | None = [] if out is not None else None
        ok = _group(rule, facts, children)
        if out is not None:
            out.append({"match": rule.get("match", "all"), "rules": children, "result": ok})
        return ok
    if "tag" in rule:
        actual = _norm(rule["tag"]) in {_norm(name) for name in facts["tags"]}
        ok = actual if rule.get("op", "has") == "has" else not actual
        return _note(out, rule, actual, ok)
    if "list" in rule:
        try:
            wanted = int(rule["list"])
        except (TypeError, ValueError):
            wanted = None
        actual = wanted in {int(list_id) for list_id in facts["lists"]}
        ok = actual if rule.get("op", "in") == "in" else not actual
        return _note(out, rule, actual, ok)
    if "topic" in rule:
        try:
            wanted = int(rule["topic"])
        except (TypeError, ValueError):
            wanted = None
        actual = bool(facts["subscriptions"].get(wanted, False))
        ok = actual if rule.get("op", "subscribed") == "subscribed" else not actual
        return _note(out, rule, actual, ok)
    if "event" in rule:
        actual = _happened(rule, facts["events"])
        ok = actual if rule.get("op", "happened") == "happened" else not actual
        return _note(out, rule, actual, ok)
    if "audience" in rule:
        try:
            wanted = int(rule["audience"])
        except (TypeError, ValueError):
            wanted = None
        actual = wanted in {int(audience_id) for audience_id in facts["audiences"]}
        ok = actual if rule.get("op", "in") == "in" else not actual
        return _note(out, rule, actual, ok)
    actual = resolve_field(rule.get("field", ""), facts)
    ok = compare(rule.get("op", "eq"), actual, rule.get("value"))
    return _note(out, rule, None if actual is _MISSING else actual, ok)


def _note(out: list | None, rule: Mapping, actual: Any, ok: bool) -> bool:
    if out is not None:
        out.append({"rule": dict(rule), "actual": _plain(actual), "result": ok})
    return ok


def _happened(rule: Mapping, events: Iterable) -> bool:
    kind = EVENT_KINDS.get(rule.get("event"), rule.get("event"))
    node = rule.get("node")
    since = None
    if rule.get("within_days"):
        since = now() - timedelta(days=int(rule["within_days"]))
    for event in events:
        if event[0] != kind or (node is not None and event[1] != node):
            continue
        if since is None:
            return True
        at = ensure_utc(event[2]) if len(event) > 2 and event[2] is not None else None
        if at is not None and at >= since:
            return True
    return False


def resolve_field(field: str, facts: Mapping) -> Any:
    """The value a ``field`` path names, or the missing marker."""
    head, _, rest = field.partition(".")
    if not rest:
        return _MISSING
    if head == "contact":
        contact = facts["contact"] or {}
        if rest.startswith("custom."):
            return _dig(contact.get("custom_fields") or {}, rest[len("custom.") :])
        return _dig(contact, rest)
    if head == "deal":
        deal = facts["deal"]
        return _MISSING if not deal else _dig(deal, rest)
    if head == "context":
        return _dig(facts["context"] or {}, rest)
    return _MISSING


def _dig(data: Mapping, path: str) -> Any:
    # A key containing dots wins over a nested path ("utm.source" as one key).
    if path in data:
        return data[path]
    value: Any = data
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def is_set(value: Any) -> bool:
    return (
        value is not _MISSING and value is not None and value != "" and value != [] and value != {}
    )


def compare(op: str, actual: Any, expected: Any) -> bool:
    """Apply one field operator (see the module docstring for coercions)."""
    if op == "is_set":
        return is_set(actual)
    if op == "is_not_set":
        return not is_set(actual)
    missing = actual is _MISSING or actual is None
    if op == "eq":
        return not missing and _equal(actual, expected)
    if op == "neq":
        return missing or not _equal(actual, expected)
    if op in ("gt", "gte", "lt", "lte"):
        if missing:
            return False
        pair = _orderable(actual, expected)
        if pair is None:
            return False
        left, right = pair
        return {
            "gt": left > right,
            "gte": left >= right,
            "lt": left < right,
            "lte": left <= right,
        }[op]
    if op == "contains":
        return not missing and _contains(actual, expected)
    if op == "not_contains":
        return missing or not _contains(actual, expected)
    if op == "starts_with":
        return not missing and str(_plain(actual)).casefold().startswith(
            str(expected if expected is not None else "").casefold()
        )
    if op == "in":
        if missing:
            return False
        options = expected
        if isinstance(options, str):
            options = [part.strip() for part in options.split(",")]
        if not isinstance(options, list | tuple | set):
            options = [options]
        return any(_equal(actual, option) for option in options)
    raise ValueError(f"unknown operator {op!r}")


def _norm(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, date):
        return ensure_utc(datetime(value.year, value.month, value.day))
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-":
        try:
            return ensure_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return _boolish(actual) == _boolish(expected)
    left, right = _number(actual), _number(expected)
    if (
        left is not None
        and right is not None
        and not (isinstance(actual, str) and isinstance(expected, str))
    ):
        return left == right
    if isinstance(actual, datetime | date) or isinstance(expected, datetime | date):
        return _instant(actual) == _instant(expected)
    return _norm(_plain(actual)) == _norm(_plain(expected))


def _boolish(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "yes", "1"}:
            return True
        if lowered in {"false", "no", "0", ""}:
            return False
    if isinstance(value, int | float):
        return bool(value)
    return value


def _orderable(actual: Any, expected: Any) -> tuple[Any, Any] | None:
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return left, right
    left_t, right_t = _instant(actual), _instant(expected)
    if left_t is not None and right_t is not None:
        return left_t, right_t
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold(), expected.casefold()
    return None


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list | tuple | set):
        return any(_equal(item, expected) for item in actual)
    if isinstance(actual, Mapping):
        return expected in actual
    return (
        str(expected if expected is not None else "").casefold() in str(_plain(actual)).casefold()
    )


def _plain(value: Any) -> Any:
    """JSON-friendly form of a fact (for explanations and string ops)."""
    if value is _MISSING:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set):
        return sorted(value, key=str)
    return value
