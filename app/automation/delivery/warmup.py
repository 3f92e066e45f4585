"""The warm-up schedule of a new sending domain (docs/SENDING.md "Warm-up").

A firm's ``warmup`` setting ``{"start": 50, "factor": 2, "max": 10000,
"started": "2026-12-01"}`` allows, on day N of the warm-up (day 0 is
``started``), ``min(max, start * factor ** N)`` e-mails a day from each
From domain the firm sends from. Days are the firm's calendar days (its
``settings.timezone``, else UTC), from local midnight to local midnight:
the day a marketer means when they read "400 today".

E-mails count on the day they passed the gate: outbox rows written that
day from the domain (``pending``, ``sent``, ``recorded`` or ``failed``; a
skipped or test row never left). The gate (``gates/warmup.py``) holds one
more until the next day's start; :func:`today` gives the page its words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Connection, and_, func, or_, select

from app.automation.delivery.senders import domain_of
from app.automation.delivery.windows import local_moment, valid_zone
from app.clock import now
from app.models import OutboxMessage

GATE = "warmup"
COUNTED = ("pending", "sent", "recorded", "failed")

_outbox = OutboxMessage.__table__


@dataclass(frozen=True)
class Day:
    """One day of a firm's warm-up: its number (0 is the first), how many
    e-mails each From domain may send in it, and when it starts and ends
    (UTC)."""

    number: int
    allowance: int
    starts: datetime
    ends: datetime
    done: bool  # the schedule has reached ``max``: nothing is held any more


def zone_of(firm_settings: dict | None) -> ZoneInfo:
    name = (firm_settings or {}).get("timezone")
    return ZoneInfo(name) if name and valid_zone(name) else ZoneInfo("UTC")


def allowance(warm: dict, number: int) -> int:
    """``min(max, start * factor ** number)`` e-mails, in whole e-mails."""
    top = int(warm["max"])
    factor = float(warm["factor"])
    start = int(warm["start"])
    if start >= top:
        return top
    if factor <= 1:
        return start
    # Past the day the schedule reaches max the power would only overflow.
    if number >= math.log(top / start, factor):
        return top
    return min(top, int(start * factor**number))


def started_on(warm: dict, fallback: date) -> date:
    value = warm.get("started")
    return date.fromisoformat(str(value)) if value else fallback


def day_of(warm: dict, moment: datetime, zone: ZoneInfo) -> Day:
    """The warm-up day ``moment`` falls in. Before ``started`` it is day 0."""
    local = moment.astimezone(zone).date()
    number = max(0, (local - started_on(warm, local)).days)
    allowed = allowance(warm, number)
    return Day(
        number=number,
        allowance=allowed,
        starts=local_moment(local, time(0), zone).astimezone(UTC),
        ends=local_moment(local + timedelta(days=1), time(0), zone).astimezone(UTC),
        done=allowed >= int(warm["max"]),
    )


def sender_domain(from_email: str | None) -> str:
    """The From domain a message of a step goes out with."""
    return domain_of(from_email or current_app.config["MAIL_FROM"])


def sent_today(conn: Connection, firm_days: dict[int, Day]) -> dict[tuple[int, str], int]:
    """(firm, From domain) -> e-mails counted in the firm's current day,
    for every firm given; one query (grouped by From address)."""
    if not firm_days:
        return {}
    stmt = (
        select(_outbox.c.firm_id, _outbox.c.from_address, func.count())
        .where(
            or_(
                *(
                    and_(_outbox.c.firm_id == firm_id, _outbox.c.created_at >= day.starts)
                    for firm_id, day in sorted(firm_days.items())
                )
            ),
            _outbox.c.channel == "email",
            _outbox.c.status.in_(COUNTED),
        )
        .group_by(_outbox.c.firm_id, _outbox.c.from_address)
    )
    counts: dict[tuple[int, str], int] = {}
    for firm_id, sender, number in conn.execute(stmt):
        key = (firm_id, domain_of(sender or ""))
        counts[key] = counts.get(key, 0) + int(number)
    return counts


def reason(domain: str, day: Day) -> str:
    """The words on a held step: "warm-up of example.com, day 3: up to 400
    e-mails a day"."""
    return (
        f"warm-up of {domain}, day {day.number + 1}: "
        f"up to {day.allowance} e-mail{'s' if day.allowance != 1 else ''} a day"
    )


def today(
    conn: Connection, firm_id: int, settings: dict, firm_settings: dict, domains: list[str]
) -> list[str]:
    """The warm-up in words for the settings page, for today and each of
    ``domains`` (the firm's sending domains, else MAIL_FROM's)."""
    warm = settings.get("warmup")
    if not warm:
        return []
    day = day_of(warm, now(), zone_of(firm_settings))
    if day.done:
        return [f"Warm-up done: up to {day.allowance} e-mails a day from each domain."]
    counts = sent_today(conn, {firm_id: day})
    lines = []
    for domain in domains or [sender_domain(None)]:
        sent = counts.get((firm_id, domain), 0)
        lines.append(
            f"Day {day.number + 1} of warm-up: up to {day.allowance} e-mails today from "
            f"{domain} ({sent} so far); more wait for tomorrow, none is dropped."
        )
    return lines
