"""A firm's sending settings: frequency caps, rate limits, warm-up, automatic
pause (docs/CONTRACT.md "Sending safely"; docs/SENDING.md "Pacing").

They live in ``firm.settings["sending"]``. :func:`validated` checks a change
and names the field of the first problem; :func:`settings_of` fills in the
defaults; :func:`load` reads them for a batch of firms in one query.
"""

from __future__ import annotations

import math
import re
from copy import deepcopy
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from app.automation.delivery import warmup
from app.clock import now
from app.models import Firm, SendingDomain

DEFAULTS: dict[str, Any] = {
    "frequency_caps": [],
    "cap_action": "defer",
    "max_per_second": None,
    "domain_limits": {},
    "warmup": None,
    "pause_on_bounce_rate": None,
    "paused": False,
    "paused_reason": None,
    "paused_at": None,
}
EDITABLE = (
    "frequency_caps",
    "cap_action",
    "max_per_second",
    "domain_limits",
    "warmup",
    "pause_on_bounce_rate",
    "paused",
)
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_firms = Firm.__table__
_domains_table = SendingDomain.__table__


class SettingsError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def settings_of(firm_settings: dict | None) -> dict:
    stored = (firm_settings or {}).get("sending") or {}
    merged = deepcopy(DEFAULTS)
    merged.update({k: v for k, v in stored.items() if k in DEFAULTS})
    return merged


def load(conn: Connection, firm_ids) -> dict[int, dict]:
    """Every firm's sending settings, with defaults, in one query."""
    ids = sorted(set(firm_ids))
    if not ids:
        return {}
    stmt = select(_firms.c.id, _firms.c.settings).where(_firms.c.id.in_(ids))
    return {row.id: settings_of(row.settings) for row in conn.execute(stmt)}


def _number(value, field: str, *, minimum: float, maximum: float, whole: bool = True):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(field, "a number")
    if not math.isfinite(value) or (whole and value != int(value)):
        raise SettingsError(field, "a whole number" if whole else "a number")
    if value < minimum:
        raise SettingsError(field, f"must be at least {minimum:g} (it is {value:g})")
    if value > maximum:
        raise SettingsError(field, f"must be at most {maximum:g} (it is {value:g})")
    return int(value) if whole else float(value)


def _caps(value) -> list[dict]:
    if not isinstance(value, list):
        raise SettingsError("frequency_caps", 'a list such as [{"max": 3, "per_days": 7}]')
    if len(value) > 10:
        raise SettingsError("frequency_caps", "at most 10 caps")
    caps = []
    for index, cap in enumerate(value):
        where = f"frequency_caps[{index}]"
        if not isinstance(cap, dict) or set(cap) - {"max", "per_days"}:
            raise SettingsError(where, 'an object {"max": 3, "per_days": 7}')
        if "max" not in cap or "per_days" not in cap:
            raise SettingsError(where, "needs max and per_days")
        caps.append(
            {
                "max": _number(cap["max"], f"{where}.max", minimum=0, maximum=10_000),
                "per_days": _number(
                    cap["per_days"], f"{where}.per_days", minimum=0.01, maximum=365, whole=False
                ),
            }
        )
    return caps


def _domains(value) -> dict[str, int]:
    if not isinstance(value, dict):
        raise SettingsError("domain_limits", 'an object such as {"gmail.com": 20}')
    limits = {}
    for domain, limit in value.items():
        name = str(domain).strip().lower()
        if not _DOMAIN.match(name):
            raise SettingsError(f"domain_limits.{domain}", "not a domain name")
        limits[name] = _number(limit, f"domain_limits.{domain}", minimum=1, maximum=100_000)
    return limits


def _pause_rule(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"percent", "window"}:
        raise SettingsError("pause_on_bounce_rate", 'an object {"percent": 5, "window": 200}')
    return {
        "percent": _number(
            value.get("percent", 5),
            "pause_on_bounce_rate.percent",
            minimum=0.1,
            maximum=100,
            whole=False,
        ),
        "window": _number(
            value.get("window", 200), "pause_on_bounce_rate.window", minimum=10, maximum=100_000
        ),
    }


def _warmup(value) -> dict | None:
    """``{"start": 50, "factor": 2, "max": 10000, "started": "2026-12-01"}``:
    a daily cap of e-mails for a new sending domain, ``start`` on the first
    day, times ``factor`` each day after, until ``max``."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"start", "factor", "max", "started"}:
        raise SettingsError("warmup", 'an object {"start": 50, "factor": 2, "max": 10000}')
    started = value.get("started")
    if started is not None:
        try:
            date.fromisoformat(str(started))
        except ValueError:
            raise SettingsError("warmup.started", "a date as YYYY-MM-DD") from None
    return {
        "start": _number(value.get("start", 50), "warmup.start", minimum=1, maximum=1_000_000),
        "factor": _number(
            value.get("factor", 2), "warmup.factor", minimum=1, maximum=10, whole=False
        ),
        "max": _number(value.get("max", 10_000), "warmup.max", minimum=1, maximum=100_000_000),
        "started": started,
    }


def validated(change: Any) -> dict:
    """The change, checked and normalized; raises :class:`SettingsError`
    naming the first bad field. Unknown fields are refused."""
    if not isinstance(change, dict):
        raise SettingsError("body", "a JSON object")
    for name in change:
        if name not in EDITABLE:
            if name in ("paused_reason", "paused_at"):
                raise SettingsError(name, "set by the system; use paused or resume")
            raise SettingsError(name, "not a sending setting")
    clean: dict[str, Any] = {}
    if "frequency_caps" in change:
        clean["frequency_caps"] = _caps(change["frequency_caps"])
    if "cap_action" in change:
        if change["cap_action"] not in ("defer", "skip"):
            raise SettingsError("cap_action", "defer or skip")
        clean["cap_action"] = change["cap_action"]
    if "max_per_second" in change:
        value = change["max_per_second"]
        clean["max_per_second"] = (
            None if value is None else _number(value, "max_per_second", minimum=1, maximum=100_000)
        )
    if "domain_limits" in change:
        clean["domain_limits"] = _domains(change["domain_limits"])
    if "warmup" in change:
        clean["warmup"] = _warmup(change["warmup"])
    if "pause_on_bounce_rate" in change:
        clean["pause_on_bounce_rate"] = _pause_rule(change["pause_on_bounce_rate"])
    if "paused" in change:
        if not isinstance(change["paused"], bool):
            raise SettingsError("paused", "true or false")
        clean["paused"] = change["paused"]
    return clean


def cap_text(cap: dict) -> str:
    """ "frequency cap 3 per 7 days" (the reason a held step shows)."""
    days = cap["per_days"]
    if days == 1:
        period = "day"
    elif days < 1:
        period = f"{days * 24:g} hours"
    else:
        period = f"{days:g} days"
    return f"frequency cap {cap['max']} per {period}"


def describe(settings: dict) -> list[str]:
    """The settings in plain words, one sentence each, for the page."""
    lines = []
    caps = settings.get("frequency_caps") or []
    if caps:
        parts = [
            f"at most {c['max']} marketing e-mail{'s' if c['max'] != 1 else ''} per "
            + cap_text(c).split(" per ", 1)[1]
            for c in caps
        ]
        action = (
            "held until the cap allows it, the workflow with the highest priority first"
            if settings.get("cap_action", "defer") == "defer"
            else "skipped, with the reason on the contact's timeline"
        )
        lines.append(
            f"A contact gets {' and '.join(parts)}, from all workflows together; "
            f"transactional e-mails do not count. One more is {action}."
        )
    else:
        lines.append("No frequency cap: a contact gets every e-mail its workflows send.")
    if settings.get("max_per_second"):
        lines.append(
            f"At most {settings['max_per_second']} messages a second leave, "
            "across every worker; the rest wait their turn."
        )
    for domain, limit in sorted((settings.get("domain_limits") or {}).items()):
        lines.append(f"At most {limit} e-mails a second go to {domain} addresses.")
    warm = settings.get("warmup")
    if warm:
        since = f" from {warm['started']}" if warm.get("started") else ""
        lines.append(
            f"Warm-up{since}: {warm['start']} e-mails on the first day from each sending "
            f"domain, {warm['factor']:g} times more each day after, up to {warm['max']} a day."
        )
    rule = settings.get("pause_on_bounce_rate")
    if rule:
        lines.append(
            f"Sending pauses by itself when more than {rule['percent']:g}% of the last "
            f"{rule['window']} e-mails bounced hard or drew a complaint."
        )
    if settings.get("paused"):
        lines.append(f"Sending is paused: {settings.get('paused_reason') or 'paused by hand'}.")
    return lines


def merged(firm_settings: dict | None, change: dict) -> dict:
    """The firm's settings with a :func:`validated` change of its sending
    settings. A warm-up given without ``started`` starts today, the firm's
    calendar day (delivery/warmup.py)."""
    firm_settings = dict(firm_settings or {})
    stored = {**(firm_settings.get("sending") or {}), **change}
    warm = change.get("warmup")
    if warm and not warm.get("started"):
        previous = ((firm_settings.get("sending") or {}).get("warmup")) or {}
        today = now().astimezone(warmup.zone_of(firm_settings)).date().isoformat()
        stored["warmup"] = {**warm, "started": previous.get("started") or today}
    return {**firm_settings, "sending": stored}


def preview(conn: Connection, firm_id: int, firm_settings: dict | None) -> list[str]:
    """The settings in words (:func:`describe`) and, during a warm-up,
    today's allowance per sending domain."""
    settings = settings_of(firm_settings)
    domains = sorted(
        conn.execute(select(_domains_table.c.domain).where(_domains_table.c.firm_id == firm_id))
        .scalars()
        .all()
    )
    return describe(settings) + warmup.today(conn, firm_id, settings, firm_settings or {}, domains)


def _form_number(form, name: str, field: str):
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(field, f"{raw!r} is not a number") from None
    return int(value) if value == int(value) else value


def from_form(form) -> dict:
    """The settings page's fields as a change :func:`validated` checks."""
    caps = []
    for index in range(3):
        top = _form_number(form, f"cap_max_{index}", f"frequency_caps[{index}].max")
        days = _form_number(form, f"cap_days_{index}", f"frequency_caps[{index}].per_days")
        if top is None and days is None:
            continue
        caps.append({"max": top if top is not None else "", "per_days": days or 0})
    limits = {}
    for line in (form.get("domain_limits") or "").splitlines():
        if not line.strip():
            continue
        domain, _, limit = line.partition(":")
        try:
            limits[domain.strip()] = float(limit.strip())
        except ValueError:
            raise SettingsError(
                f"domain_limits.{domain.strip()}", "write it as domain: number"
            ) from None
    percent = _form_number(form, "pause_percent", "pause_on_bounce_rate.percent")
    window = _form_number(form, "pause_window", "pause_on_bounce_rate.window")
    rule = None
    if percent is not None or window is not None:
        rule = {"percent": percent if percent is not None else 5, "window": window or 200}
    warm = None
    start = _form_number(form, "warmup_start", "warmup.start")
    if start is not None:
        factor = _form_number(form, "warmup_factor", "warmup.factor")
        top = _form_number(form, "warmup_max", "warmup.max")
        warm = {
            "start": start,
            "factor": factor if factor is not None else 2,
            "max": top if top is not None else 10_000,
            "started": (form.get("warmup_started") or "").strip() or None,
        }
    return {
        "frequency_caps": caps,
        "cap_action": form.get("cap_action") or "defer",
        "warmup": warm,
        "max_per_second": _form_number(form, "max_per_second", "max_per_second"),
        "domain_limits": limits,
        "pause_on_bounce_rate": rule,
    }
