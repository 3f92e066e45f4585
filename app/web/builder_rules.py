"""Rule rows: the rule builder's form <-> a rule group (docs/CONTRACT.md).

One row per rule (``rules-N-kind`` plus the kind's fields); conditions,
waits for a condition, goals and trigger filters share it. A nested group
is edited as JSON in its row, so configurations made through the API are
shown and kept, never flattened.
"""

from __future__ import annotations

import json
import re
from typing import Any

RULE_KINDS = ("field", "tag", "list", "event", "topic", "audience", "group")
# The kinds a row can be added as (a nested group comes only from the API).
ROW_KINDS = RULE_KINDS[:-1]
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")

Values = dict[str, Any]
Errors = dict[str, list[str]]


def rule_row(rule: dict) -> dict[str, str]:
    if "rules" in rule:
        return {"kind": "group", "json": json.dumps(rule, indent=1)}
    for kind in ("tag", "list", "topic", "event", "audience"):
        if kind in rule:
            row = {"kind": kind, kind: str(rule.get(kind) or ""), "op": rule.get("op", "")}
            if kind == "event":
                row["node"] = rule.get("node") or ""
                row["within_days"] = str(rule.get("within_days") or "")
            return row
    value = rule.get("value")
    if isinstance(value, list):
        shown = ", ".join(str(item) for item in value)
    elif value is None:
        shown = ""
    elif isinstance(value, bool):
        shown = "true" if value else "false"
    else:
        shown = str(value)
    return {
        "kind": "field",
        "field": rule.get("field", ""),
        "op": rule.get("op", "eq"),
        "value": shown,
    }


def rules_values(config: dict) -> Values:
    return {
        "match": config.get("match", "all"),
        "rules": [rule_row(rule) for rule in config.get("rules") or [] if isinstance(rule, dict)],
    }


def _scalar(raw: str, op: str) -> Any:
    """What a rule value typed into a text box means."""
    if op == "in":
        return [_scalar(part.strip(), "eq") for part in raw.split(",") if part.strip()]
    if raw in ("true", "false"):
        return raw == "true"
    if NUMBER.match(raw):
        return int(raw) if "." not in raw else float(raw)
    return raw


def rules_from_values(values: Values, errors: Errors) -> dict:
    rules = []
    for i, row in enumerate(values.get("rules") or []):
        kind = row.get("kind", "field")
        op = (row.get("op") or "").strip()
        if kind == "group":
            try:
                rule = json.loads(row.get("json") or "")
            except (ValueError, RecursionError):
                errors.setdefault(f"rules.{i}", []).append("must be a JSON rule group")
                continue
        elif kind == "tag":
            rule = {"tag": (row.get("tag") or "").strip(), "op": op or "has"}
        elif kind == "list":
            raw = (row.get("list") or "").strip()
            if not raw.isdigit():
                errors.setdefault(f"rules.{i}.list", []).append("choose a list")
                continue
            rule = {"list": int(raw), "op": op or "in"}
        elif kind == "topic":
            # {"topic": 3, "op": "subscribed"} (docs/CONTRACT.md, "Sending safely")
            raw = (row.get("topic") or "").strip()
            if not raw.isdigit():
                errors.setdefault(f"rules.{i}.topic", []).append("choose a topic")
                continue
            if op not in ("subscribed", "not_subscribed"):
                op = "subscribed"
            rule = {"topic": int(raw), "op": op}
        elif kind == "audience":
            # {"audience": 3, "op": "in"} (docs/CONTRACT.md "Rules")
            raw = (row.get("audience") or "").strip()
            if not raw.isdigit():
                errors.setdefault(f"rules.{i}.audience", []).append("choose an audience")
                continue
            rule = {"audience": int(raw), "op": op if op in ("in", "not_in") else "in"}
        elif kind == "event":
            rule = {"event": row.get("event") or "email_opened", "op": op or "happened"}
            if (row.get("node") or "").strip():
                rule["node"] = row["node"].strip()
            days = (row.get("within_days") or "").strip()
            if days:
                if not days.isdigit() or not 1 <= int(days) <= 3650:
                    errors.setdefault(f"rules.{i}.within_days", []).append(
                        "a number of days from 1 to 3650"
                    )
                    continue
                rule["within_days"] = int(days)
        else:
            rule = {"field": (row.get("field") or "").strip(), "op": op or "eq"}
            if rule["op"] not in ("is_set", "is_not_set"):
                rule["value"] = _scalar((row.get("value") or "").strip(), rule["op"])
        rules.append(rule)
    return {"match": values.get("match") or "all", "rules": rules}
