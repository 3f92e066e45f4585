"""Inspector forms: node configuration <-> flat HTML form values.

A node's configuration is JSON (CONTRACT.md "Configuration"); an HTML form
is flat strings plus numbered rows (``rules-0-field``). ``values_from_config``
turns a stored configuration into what the form shows, ``values_from_form``
reads a posted form back into the same shape (so a rejected form redisplays
exactly what was typed), and ``config_from_values`` builds the configuration
the registry then validates. Rule rows serve condition, wait-for-condition,
goal nodes and trigger filters alike.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from werkzeug.datastructures import MultiDict

from app.web.builder_rules import ROW_KINDS, rules_from_values, rules_values

ROW_FIELD = re.compile(r"^(?P<group>[a-z_]+)-(?P<index>\d+)-(?P<name>[a-z_]+)$")
RULE_NODE_TYPES = ("condition", "wait_condition", "goal")
UNITS = {"minutes": 1 / 60, "hours": 1.0, "days": 24.0}
ACTION_RETRY = ("max_attempts", "retry_backoff_seconds")
MAX_ROWS = 50
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")

Values = dict[str, Any]
Errors = dict[str, list[str]]


# -- stored configuration -> form values --------------------------------------


def split_hours(hours: float | None) -> tuple[str, str]:
    """48 -> ("2", "days"); 0.5 -> ("30", "minutes"): the unit people think in."""
    if hours is None:
        return "", "hours"
    for unit in ("days", "hours", "minutes"):
        amount = hours / UNITS[unit]
        if abs(amount - round(amount)) < 1e-9 and round(amount) != 0:
            return str(int(round(amount))), unit
    return f"{hours:g}", "hours"


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    return str(value) if not isinstance(value, (dict, list)) else value


def values_from_config(node_type: str, config: dict | None) -> Values:
    config = dict(config or {})
    values: Values = {key: _plain(value) for key, value in config.items()}
    if node_type in RULE_NODE_TYPES:
        values.update(rules_values(config))
    if node_type == "wait_time":
        hours = config.get("wait_duration_hours")
        if hours is None and config.get("wait_duration_seconds") is not None:
            hours = float(config["wait_duration_seconds"]) / 3600
        values["wait_value"], values["wait_unit"] = split_hours(hours)
    if node_type == "wait_condition":
        hours = config.get("timeout_hours")
        if hours is None and config.get("timeout_seconds") is not None:
            hours = float(config["timeout_seconds"]) / 3600
        values["timeout_value"], values["timeout_unit"] = split_hours(hours)
    if node_type == "wait_until":
        values["mode"] = "date" if config.get("until") else "field"
        until = str(config.get("until") or "")
        values["until"] = until.replace("Z", "").replace("+00:00", "")[:16]
    if node_type == "split":
        values["variants"] = [
            {"name": str(v.get("name", "")), "weight": _plain(v.get("weight"))}
            for v in config.get("variants") or []
            if isinstance(v, dict)
        ]
    if node_type == "update_contact":
        values["fields"] = [
            {
                "key": key,
                "value": ""
                if value is None
                else str(value).lower()
                if isinstance(value, bool)
                else str(value),
            }
            for key, value in (config.get("fields") or {}).items()
        ]
    if node_type == "webhook":
        values["headers"] = [
            {"key": key, "value": value} for key, value in (config.get("headers") or {}).items()
        ]
        payload = config.get("payload")
        values["payload"] = json.dumps(payload, indent=2) if payload else ""
    if node_type == "internal_notification":
        values["recipients"] = list(config.get("recipients") or [])
    return values


# -- posted form -> form values -------------------------------------------------


def values_from_form(form: MultiDict) -> Values:
    """Flat fields stay strings; ``group-N-name`` fields become row lists."""
    values: Values = {}
    rows: dict[str, dict[int, dict[str, str]]] = {}
    for key in form:
        match = ROW_FIELD.match(key)
        if match:
            index = int(match["index"])
            if index < MAX_ROWS:
                rows.setdefault(match["group"], {}).setdefault(index, {})[match["name"]] = form.get(
                    key, ""
                )
        elif key not in ("csrf_token", "_action"):
            values[key] = form.get(key, "")
    for group, numbered in rows.items():
        values[group] = [numbered[index] for index in sorted(numbered)]
    values["recipients"] = form.getlist("recipients")
    for group in ("rules", "variants", "fields", "headers"):
        values.setdefault(group, [])
    return values


def apply_row_action(values: Values, action: str) -> bool:
    """Add or remove a row (``add_rule:tag``, ``remove_variant:1``); True if done."""
    verb, _, arg = action.partition(":")
    groups = {
        "rule": "rules",
        "variant": "variants",
        "field": "fields",
        "header": "headers",
    }
    if verb.startswith("add_") and verb[4:] in groups:
        group = values.setdefault(groups[verb[4:]], [])
        if len(group) >= MAX_ROWS:
            return True
        if verb == "add_rule":
            kind = arg if arg in ROW_KINDS else "field"
            group.append(
                {
                    "kind": kind,
                    "op": {
                        "tag": "has",
                        "list": "in",
                        "topic": "subscribed",
                        "event": "happened",
                    }.get(kind, "eq"),
                }
            )
        else:
            group.append({})
        return True
    if verb.startswith("remove_") and verb[7:] in groups and arg.isdigit():
        group = values.setdefault(groups[verb[7:]], [])
        if int(arg) < len(group):
            del group[int(arg)]
        return True
    return False


# -- form values -> configuration -----------------------------------------------


def _text(values: Values, key: str) -> str | None:
    value = str(values.get(key) or "").strip()
    return value or None


def _number(values: Values, key: str, errors: Errors, *, whole: bool = False) -> Any:
    raw = _text(values, key)
    if raw is None:
        return None
    if not NUMBER.match(raw):
        errors.setdefault(key, []).append("must be a number")
        return None
    number = float(raw)
    if whole:
        if number != int(number):
            errors.setdefault(key, []).append("must be a whole number")
            return None
        return int(number)
    return int(number) if number == int(number) and "." not in raw else number


def _hours(values: Values, prefix: str, errors: Errors) -> float | None:
    amount = _number(values, f"{prefix}_value", errors)
    unit = values.get(f"{prefix}_unit") or "hours"
    if amount is None:
        return None
    if unit not in UNITS:
        errors.setdefault(f"{prefix}_unit", []).append("choose minutes, hours or days")
        return None
    return amount * UNITS[unit]


def _retry(values: Values, config: dict, errors: Errors) -> None:
    for key in ACTION_RETRY:
        number = _number(values, key, errors, whole=key == "max_attempts")
        if number is not None:
            config[key] = number


def _rows_to_dict(rows: list[dict], errors: Errors, field: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for row in rows:
        key = (row.get("key") or "").strip()
        if key:
            result[key] = row.get("value") or ""
        elif (row.get("value") or "").strip():
            errors.setdefault(field, []).append("every value needs a name")
    return result


def config_from_values(node_type: str, values: Values) -> tuple[dict, Errors]:
    """The configuration the form describes, and errors the form itself has
    (numbers that are not numbers, JSON that does not parse); the registry's
    schema then judges the configuration."""
    errors: Errors = {}
    config: dict[str, Any] = {}
    text_keys = {
        "send_email": ("subject", "body_html", "body_text", "from_email"),
        "send_sms": ("body",),
        "create_task": ("title", "description", "assignee_email"),
        "create_deal": ("title", "stage", "status"),
        "update_deal": ("title", "stage", "status"),
        "add_tag": ("tag",),
        "remove_tag": ("tag",),
        "webhook": ("url", "method"),
        "internal_notification": ("message",),
    }.get(node_type, ())
    for key in text_keys:
        value = _text(values, key)
        if value is not None:
            # Bodies keep their own spacing; only empty means "not given".
            config[key] = values[key] if key.startswith("body") or key == "message" else value
    if node_type == "send_email" and _text(values, "topic"):
        raw = _text(values, "topic")
        config["topic"] = int(raw) if raw.isdigit() else raw
    if node_type == "send_email" and _text(values, "template_id"):
        raw = _text(values, "template_id")
        config["template_id"] = int(raw) if raw.isdigit() else raw
    if node_type == "create_task":
        due = _number(values, "due_in_hours", errors)
        if due is not None:
            config["due_in_hours"] = due
    if node_type in ("create_deal", "update_deal"):
        raw = _text(values, "value")
        if raw is not None:
            config["value"] = raw
    if node_type in ("add_to_list", "remove_from_list"):
        raw = _text(values, "list")
        if raw is not None:
            config["list"] = int(raw) if raw.isdigit() else raw
    if node_type == "update_contact":
        fields = _rows_to_dict(values.get("fields") or [], errors, "fields")
        config["fields"] = {
            key: (
                value == "true" if key == "unsubscribed" and value in ("true", "false") else value
            )
            for key, value in fields.items()
        }
    if node_type == "webhook":
        config["headers"] = _rows_to_dict(values.get("headers") or [], errors, "headers")
        payload = _text(values, "payload")
        if payload is not None:
            try:
                config["payload"] = json.loads(payload)
            except ValueError as exc:
                errors.setdefault("payload", []).append(f"not valid JSON ({exc.msg})")
            except RecursionError:
                errors.setdefault("payload", []).append("nested too deeply")
        timeout = _number(values, "timeout_seconds", errors)
        if timeout is not None:
            config["timeout_seconds"] = timeout
    if node_type == "internal_notification":
        config["recipients"] = [r for r in values.get("recipients") or [] if r]
    if node_type in RULE_NODE_TYPES:
        config.update(rules_from_values(values, errors))
    if node_type == "wait_time":
        hours = _hours(values, "wait", errors)
        if hours is not None:
            config["wait_duration_hours"] = hours
    if node_type == "wait_condition":
        hours = _hours(values, "timeout", errors)
        if hours is not None:
            config["timeout_hours"] = hours
    if node_type == "wait_until":
        _wait_until(values, config, errors)
    if node_type == "split":
        variants = []
        for i, row in enumerate(values.get("variants") or []):
            weight = _number({"w": row.get("weight")}, "w", errors)
            if "w" in errors:
                errors.setdefault(f"variants.{i}.weight", []).extend(errors.pop("w"))
            variants.append(
                {
                    "name": (row.get("name") or "").strip(),
                    "weight": weight if weight is not None else 0,
                }
            )
        config["variants"] = variants
    if node_type == "goal":
        goal_value = _number(values, "goal_value", errors)
        config["goal_value"] = goal_value if goal_value is not None else 0
    if node_type not in RULE_NODE_TYPES and node_type not in (
        "wait_time",
        "wait_until",
        "split",
    ):
        _retry(values, config, errors)
    return config, errors


def _wait_until(values: Values, config: dict, errors: Errors) -> None:
    if values.get("mode") == "date":
        raw = _text(values, "until")
        if raw is None:
            errors.setdefault("until", []).append("required")
            return
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            errors.setdefault("until", []).append("must be a date and time")
            return
        # The form's date is UTC (the label says so); store it aware.
        config["until"] = moment.strftime("%Y-%m-%dT%H:%M:00Z")
        return
    field = _text(values, "field")
    if field is not None:
        config["field"] = field
    offset = _number(values, "offset_days", errors, whole=True)
    if offset is not None:
        config["offset_days"] = offset
    at = _text(values, "at")
    if at is not None:
        config["at"] = at


def error_summary(errors: Errors) -> list[str]:
    """Readable lines for the top of a rejected form."""
    lines = []
    for field, messages in errors.items():
        where = "" if field in ("__root__", "") else field.replace(".", " ") + ": "
        lines.extend(f"{where}{message}" for message in messages)
    return lines
