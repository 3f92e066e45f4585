"""How pages show times, durations and settings to a person.

Times are stored in UTC; a page shows them in the signed-in user's zone
(their own setting, else the firm's ``settings.timezone``, else UTC), to the
minute (or second where steps follow each other quickly), never with
microseconds. Durations read "2 days" or "1 minute", not 48.0 or
0.016666666666666666; settings named ``*_hours`` / ``*_seconds`` are
durations wherever they are shown (diffs, test runs, timelines).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import Flask, g
from markupsafe import Markup, escape
from sqlalchemy import select

from app.clock import ensure_utc
from app.extensions import db
from app.models import WorkflowNode

DEFAULT_FORMAT = "%Y-%m-%d %H:%M"
UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def zone_named(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def firm_zone_name(firm) -> str:
    settings = (getattr(firm, "settings", None) or {}) if firm is not None else {}
    name = settings.get("timezone")
    return name if zone_named(name) else "UTC"


def user_zone(user=None) -> ZoneInfo:
    """The zone a user reads times in: theirs, else their firm's, else UTC."""
    user = user if user is not None else g.get("user")
    if user is None:
        return ZoneInfo("UTC")
    return zone_named(getattr(user, "timezone", None)) or ZoneInfo(firm_zone_name(user.firm))


def zone_choices() -> list[str]:
    return sorted(name for name in available_timezones() if "/" in name or name == "UTC")


def localtime(moment: datetime | None, fmt: str = DEFAULT_FORMAT) -> str:
    """``moment`` in the user's zone, e.g. "2026-03-10 10:00 CET"."""
    if moment is None:
        return "—"
    local = ensure_utc(moment).astimezone(user_zone())
    return f"{local.strftime(fmt)} {local.tzname()}"


def human_duration(seconds: float | int | None) -> str:
    """ "2 days", "1 hour 30 minutes", "45 seconds"; two units at most."""
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 1:
        return "0 seconds" if seconds <= 0 else f"{seconds:.2g} seconds"
    parts, rest = [], round(seconds)
    for name, size in UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
        if len(parts) == 2 or (parts and not rest):
            break
    return " ".join(parts)


def _as_moment(text: str) -> datetime | None:
    if len(text) < 16 or text[4:5] != "-" or "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def setting_value(name: str, value: Any) -> str:
    """A configuration value as a marketer reads it: durations in words,
    ISO times in the user's zone, other values as JSON."""
    key = str(name).rsplit(".", 1)[-1]
    if isinstance(value, int | float) and not isinstance(value, bool):
        if key.endswith("_hours"):
            return human_duration(value * 3600)
        if key.endswith("_seconds"):
            return human_duration(value)
        if key.endswith("_days") and key != "offset_days":
            return human_duration(value * 86400)
    if isinstance(value, str):
        moment = _as_moment(value)
        if moment is not None:
            return localtime(moment, "%Y-%m-%d %H:%M:%S" if moment.second else DEFAULT_FORMAT)
        return value
    if value is None:
        return "—"
    return json.dumps(value, ensure_ascii=False)


def diff_value(value: Any, name: str) -> str:
    """:func:`setting_value` with the arguments in filter order."""
    return setting_value(name, value)


def time_tag(moment: datetime | str | None, fmt: str = DEFAULT_FORMAT) -> Markup:
    """A <time> in the user's zone; also for the ISO strings JSON results
    keep (a held step's ``held_until``)."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return Markup(escape(moment))
    if moment is None:
        return Markup('<span class="muted">—</span>')
    iso = ensure_utc(moment).isoformat(timespec="seconds")
    return Markup(f'<time datetime="{escape(iso)}">{escape(localtime(moment, fmt))}</time>')


def step_name(workflow_id: int | None, node_id: str | None) -> str:
    """What the marketer named a step (its node_id when unnamed or gone);
    one query per workflow per request."""
    if not node_id:
        return ""

    cache = g.setdefault("_step_names", {})
    if workflow_id not in cache:
        rows = db.session.execute(
            select(WorkflowNode.node_id, WorkflowNode.label).where(
                WorkflowNode.workflow_id == workflow_id
            )
        )
        cache[workflow_id] = {key: label for key, label in rows if label}
    return cache[workflow_id].get(node_id) or node_id


def init_app(app: Flask) -> None:
    app.add_template_global(step_name, "step_name")
    app.add_template_filter(localtime, "localtime")
    app.add_template_filter(human_duration, "human_duration")
    app.add_template_filter(setting_value, "setting_value")
    app.add_template_filter(time_tag, "time_tag")
    app.add_template_filter(diff_value, "diff_value")
