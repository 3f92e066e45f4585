"""Inspector forms: node configuration <-> flat HTML form values.

A node's configuration is JSON (docs/CONTRACT.md "Configuration"); an HTML form
is flat strings plus numbered rows (``rules-0-field``). ``values_from_config``
turns a stored configuration into what the form shows, ``values_from_form``
reads a posted form back into the same shape (so a rejected form redisplays
exactly what was typed), and ``config_from_values`` builds the configuration
the registry then validates. Which fields a node has is the node type's
``form`` (app/automation/nodes/form.py); this module has one converter per
field kind. Rule rows serve condition, wait-for-condition, goal nodes and
trigger filters alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from werkzeug.datastructures import MultiDict

from app.automation.delivery import windows
from app.automation.nodes import form
from app.automation.nodes.form import FormField
from app.automation.nodes.registry import UnknownNodeType, get_node_type
from app.web.builder_rules import ROW_KINDS, rules_from_values, rules_values

ROW_FIELD = re.compile(r"^(?P<group>[a-z_]+)-(?P<index>\d+)-(?P<name>[a-z_]+)$")
UNITS = {"minutes": 1 / 60, "hours": 1.0, "days": 24.0}
ACTION_RETRY = ("max_attempts", "retry_backoff_seconds")
MAX_ROWS = 50
# Check boxes posted under one name: kept as lists of the checked values.
LIST_FIELDS = ("recipients", "send_window_days")
WINDOW_MODES = ("workflow", "none", "own")
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
    """What the inspector shows for a stored configuration: every key as
    text, then each of the type's form fields shaped for its widget."""
    config = dict(config or {})
    values: Values = {key: _plain(value) for key, value in config.items()}
    for field in _form_of(node_type):
        shown = TO_VALUES.get(field.kind)
        if shown is not None:
            shown(field, config, values)
    return values


def _form_of(node_type: str) -> tuple[FormField, ...]:
    try:
        return get_node_type(node_type).form
    except UnknownNodeType:
        return ()


def _rules_shown(field: FormField, config: dict, values: Values) -> None:
    values.update(rules_values(config))


def _duration_shown(field: form.Duration, config: dict, values: Values) -> None:
    hours = config.get(field.hours_key)
    if hours is None and config.get(field.seconds_key) is not None:
        hours = float(config[field.seconds_key]) / 3600
    values[f"{field.name}_value"], values[f"{field.name}_unit"] = split_hours(hours)


def _wait_target_shown(field: FormField, config: dict, values: Values) -> None:
    values["mode"] = "date" if config.get("until") else "field"
    until = str(config.get("until") or "")
    values["until"] = until.replace("Z", "").replace("+00:00", "")[:16]


def _variants_shown(field: FormField, config: dict, values: Values) -> None:
    values[field.name] = [
        {"name": str(v.get("name", "")), "weight": _plain(v.get("weight"))}
        for v in config.get(field.name) or []
        if isinstance(v, dict)
    ]


def _experiment_shown(field: FormField, config: dict, values: Values) -> None:
    metric = config.get("metric")
    values["metric"] = (
        f"goal:{metric.get('goal', '')}" if isinstance(metric, dict) else _plain(metric)
    )
    auto = config.get("auto_winner")
    values["auto_winner_on"] = isinstance(auto, dict)
    auto = auto if isinstance(auto, dict) else {}
    values["min_per_variant"] = _plain(auto.get("min_per_variant", 100))
    values["alpha"] = _plain(auto.get("alpha", 0.05))
    values["holdout_percent"] = _plain(config.get("holdout_percent", 0))


def _contact_fields_shown(field: FormField, config: dict, values: Values) -> None:
    values[field.name] = [
        {
            "key": key,
            "value": ""
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else str(value),
        }
        for key, value in (config.get(field.name) or {}).items()
    ]


def _headers_shown(field: FormField, config: dict, values: Values) -> None:
    values[field.name] = [
        {"key": key, "value": value} for key, value in (config.get(field.name) or {}).items()
    ]


def _json_shown(field: FormField, config: dict, values: Values) -> None:
    payload = config.get(field.name)
    values[field.name] = json.dumps(payload, indent=2) if payload else ""


def _recipients_shown(field: FormField, config: dict, values: Values) -> None:
    values[field.name] = list(config.get(field.name) or [])


def _send_window_shown(field: form.SendWindow, config: dict, values: Values) -> None:
    name = field.name
    values.pop(name, None)
    if name not in config:
        mode, window = "workflow", None
    elif config[name] is None:
        mode, window = "none", None
    else:
        mode, window = "own", config[name] if isinstance(config[name], dict) else None
    window = window or {}
    values[f"{name}_mode"] = mode
    values[f"{name}_days"] = list(window.get("days") or windows.DAYS[:5])
    values[f"{name}_start"] = str(window.get("start") or "09:00")
    values[f"{name}_end"] = str(window.get("end") or "17:00")
    values[f"{name}_timezone"] = str(window.get("timezone") or windows.CONTACT_ZONE)


def window_preview(values: Values, name: str, workflow_window: dict | None) -> str:
    """The step's window in words (``windows.describe``), as typed: the
    workflow's when the step uses it, "" while the typed one is not valid."""
    mode = values.get(f"{name}_mode") or "workflow"
    try:
        if mode == "none":
            return windows.describe(None)
        if mode == "workflow":
            return "The workflow's window: " + windows.describe(
                windows.parse_window(workflow_window)
            )
        return windows.describe(windows.parse_window(_typed_window(values, name)))
    except windows.WindowError:
        return ""


def _typed_window(values: Values, name: str) -> dict:
    days = values.get(f"{name}_days") or []
    return {
        "days": [days] if isinstance(days, str) else list(days),
        "start": str(values.get(f"{name}_start") or "").strip(),
        "end": str(values.get(f"{name}_end") or "").strip(),
        "timezone": str(values.get(f"{name}_timezone") or "").strip() or windows.CONTACT_ZONE,
    }


TO_VALUES: dict[str, Callable[[Any, dict, Values], None]] = {
    "rules": _rules_shown,
    "duration": _duration_shown,
    "wait_target": _wait_target_shown,
    "variants": _variants_shown,
    "experiment": _experiment_shown,
    "contact_fields": _contact_fields_shown,
    "headers": _headers_shown,
    "json": _json_shown,
    "recipients": _recipients_shown,
    "send_window": _send_window_shown,
}


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
    for name in LIST_FIELDS:
        values[name] = form.getlist(name)
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
                        "audience": "in",
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


def unshown_keys(node_type: str, configuration: dict | None) -> dict:
    """The configuration keys no inspector field of the type writes (a
    wait's ``wait_type``, set through the API): a save from the inspector
    keeps them as they were, rather than dropping them."""
    owned: set[str] = set()
    for field in _form_of(node_type):
        owned.update(field.keys)
        if seconds := getattr(field, "seconds_key", None):
            owned.add(seconds)
    return {key: value for key, value in (configuration or {}).items() if key not in owned}


def config_from_values(node_type: str, values: Values) -> tuple[dict, Errors]:
    """The configuration the form describes, and errors the form itself has
    (numbers that are not numbers, JSON that does not parse); the registry's
    schema then judges the configuration. Each of the type's form fields
    reads its own keys."""
    errors: Errors = {}
    config: dict[str, Any] = {}
    for field in _form_of(node_type):
        read = FROM_VALUES.get(field.kind)
        if read is not None:
            read(field, values, config, errors)
    return config, errors


def _text_read(field: Any, values: Values, config: dict, errors: Errors) -> None:
    value = _text(values, field.name)
    if value is not None:
        # Bodies keep their own spacing; only empty means "not given".
        config[field.name] = values[field.name] if getattr(field, "keep", False) else value


def _id_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    raw = _text(values, field.name)
    if raw is not None:
        config[field.name] = int(raw) if raw.isdigit() else raw


def _number_read(field: form.Number, values: Values, config: dict, errors: Errors) -> None:
    number = _number(values, field.name, errors, whole=field.whole)
    if number is None:
        number = field.default
    if number is not None:
        config[field.name] = number


def _duration_read(field: form.Duration, values: Values, config: dict, errors: Errors) -> None:
    hours = _hours(values, field.name, errors)
    if hours is not None:
        config[field.hours_key] = hours


def _rules_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    config.update(rules_from_values(values, errors))


def _contact_fields_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    fields = _rows_to_dict(values.get(field.name) or [], errors, field.name)
    config[field.name] = {
        key: (value == "true" if key == "unsubscribed" and value in ("true", "false") else value)
        for key, value in fields.items()
    }


def _headers_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    config[field.name] = _rows_to_dict(values.get(field.name) or [], errors, field.name)


def _json_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    payload = _text(values, field.name)
    if payload is not None:
        try:
            config[field.name] = json.loads(payload)
        except ValueError as exc:
            errors.setdefault(field.name, []).append(f"not valid JSON ({exc.msg})")
        except RecursionError:
            errors.setdefault(field.name, []).append("nested too deeply")


def _recipients_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    config[field.name] = [r for r in values.get(field.name) or [] if r]


def _variants_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    variants = []
    for i, row in enumerate(values.get(field.name) or []):
        weight = _number({"w": row.get("weight")}, "w", errors)
        if "w" in errors:
            errors.setdefault(f"{field.name}.{i}.weight", []).extend(errors.pop("w"))
        variants.append(
            {
                "name": (row.get("name") or "").strip(),
                "weight": weight if weight is not None else 0,
            }
        )
    config[field.name] = variants


def _experiment_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    """Errors are keyed like the schema's (``auto_winner.alpha``), so the
    form shows both kinds beside the same box."""
    metric = _text(values, "metric")
    if metric is not None:
        config["metric"] = {"goal": metric[5:]} if metric.startswith("goal:") else metric
    if values.get("auto_winner_on") in ("on", "true", "1", True):
        auto: dict[str, Any] = {}
        for key, whole in (("min_per_variant", True), ("alpha", False)):
            number = _number(values, key, errors, whole=whole)
            if key in errors:
                errors.setdefault(f"auto_winner.{key}", []).extend(errors.pop(key))
            if number is not None:
                auto[key] = number
        config["auto_winner"] = auto
    holdout = _number(values, "holdout_percent", errors)
    if holdout is not None:
        config["holdout_percent"] = holdout


def _wait_target_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    _wait_until(values, config, errors)


def _retry_read(field: FormField, values: Values, config: dict, errors: Errors) -> None:
    _retry(values, config, errors)


def _send_window_read(field: form.SendWindow, values: Values, config: dict, errors: Errors) -> None:
    """Absent: the workflow's window; ``None``: no window; else the typed
    one, whose bad part (``send_window_end``...) is a form error."""
    name = field.name
    mode = values.get(f"{name}_mode") or "workflow"
    if mode not in WINDOW_MODES:
        errors.setdefault(f"{name}_mode", []).append(
            "choose the workflow's window, none, or its own"
        )
        return
    if mode == "workflow":
        return
    if mode == "none":
        config[name] = None
        return
    try:
        window = windows.parse_window(_typed_window(values, name))
    except windows.WindowError as exc:
        errors.setdefault(f"{name}_{exc.field}", []).append(exc.message)
        return
    config[name] = window.as_dict() if window is not None else None


FROM_VALUES: dict[str, Callable[[Any, Values, dict, Errors], None]] = {
    "text": _text_read,
    "textarea": _text_read,
    "select": _text_read,
    "user_select": _text_read,
    "list_select": _id_read,
    "topic_select": _id_read,
    "id_value": _id_read,
    "number": _number_read,
    "duration": _duration_read,
    "rules": _rules_read,
    "contact_fields": _contact_fields_read,
    "headers": _headers_read,
    "json": _json_read,
    "recipients": _recipients_read,
    "variants": _variants_read,
    "experiment": _experiment_read,
    "wait_target": _wait_target_read,
    "retry": _retry_read,
    "send_window": _send_window_read,
}


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
