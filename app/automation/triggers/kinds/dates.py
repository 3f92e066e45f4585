"""Date and time trigger types: what the scheduler finds due.

The scheduler (app/automation/triggers/scheduler.py) keeps each trigger's
cursor and enrolls; a type's ``runner`` says which contacts' moments fell in
``(since, until]``, grouped by occurrence (the local date, or "delay").

- ``date_reached``: the fixed moment ``at``; every contact the rules select.
- ``date_field_reached``: a contact date field (``custom.<key>`` or
  ``created_at``) + ``offset_days``, at ``at`` o'clock in the contact's
  time zone (zoneinfo: right across DST, UTC+13 or UTC-10 alike); the rule
  is ``crm/dates.py``'s (default 09:00), which the wait_until step shares.
- ``anniversary``: every year on the field's month and day (Feb 29 is
  celebrated on Feb 28 in other years), at ``at`` local time.
- ``time_delay``: ``delay_hours`` after the contact was created.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from sqlalchemy import String, cast, func, select

from app.automation.crm.dates import (
    DEFAULT_AT,
    at_local,
    field_date,
    field_moment,
    field_value,
    time_of_day,
    zone_of,
)
from app.automation.triggers.audience import BATCH, matching_contact_ids, passing
from app.automation.triggers.base import TriggerConfig, TriggerType, register
from app.automation.triggers.filters import rule_group_of
from app.clock import ensure_utc
from app.extensions import db
from app.models import Contact, PublishedTrigger

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
# A local date and the UTC date differ by at most this much (UTC-12..UTC+14).
_TZ_SLACK = timedelta(days=2)


class DateReachedConfig(TriggerConfig):
    at: datetime

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must include a timezone, e.g. 2026-12-24T09:00:00Z")
        return value


def _field_name(value: str) -> str:
    if not (value.startswith("custom.") and len(value) > 7) and value not in ("created_at",):
        raise ValueError("must be custom.<key> or created_at")
    return value


def _time(value: str) -> str:
    if not _TIME_OF_DAY.match(value):
        raise ValueError("must be a time of day like 09:00")
    return value


class DateFieldConfig(TriggerConfig):
    field: str
    offset_days: int = Field(default=0, ge=-3660, le=3660)
    at: str = DEFAULT_AT  # the date rule's default (crm/dates.py)

    _f = field_validator("field")(classmethod(lambda cls, v: _field_name(v)))
    _t = field_validator("at")(classmethod(lambda cls, v: _time(v)))


class AnniversaryConfig(TriggerConfig):
    field: str
    at: str = DEFAULT_AT  # the date rule's default (crm/dates.py)

    _f = field_validator("field")(classmethod(lambda cls, v: _field_name(v)))
    _t = field_validator("at")(classmethod(lambda cls, v: _time(v)))


class TimeDelayConfig(TriggerConfig):
    delay_hours: float = Field(gt=0, le=24 * 366 * 5)


# --- date_reached -----------------------------------------------------------


def _date_reached(trigger: PublishedTrigger, since: datetime, until: datetime):
    moment = parse_instant(trigger.configuration.get("at"))
    if moment is None or not (since < moment <= until):
        return
    group = rule_group_of(trigger.configuration)
    for ids in matching_contact_ids(group, workflow_id=trigger.workflow_id):
        yield moment.date().isoformat(), ids


def _date_reached_done(trigger: PublishedTrigger, since: datetime) -> bool:
    moment = parse_instant(trigger.configuration.get("at"))
    return moment is None or moment <= since


# --- time_delay -------------------------------------------------------------


def _time_delay(trigger: PublishedTrigger, since: datetime, until: datetime):
    try:
        delay = timedelta(hours=float(trigger.configuration.get("delay_hours")))
    except (TypeError, ValueError):
        return
    where = (Contact.created_at > since - delay, Contact.created_at <= until - delay)
    group = rule_group_of(trigger.configuration)
    # One occurrence per contact ever (the contact is part of the key).
    for ids in matching_contact_ids(group, workflow_id=trigger.workflow_id, where=where):
        yield "delay", ids


# --- date_field_reached and anniversary ------------------------------------


def _date_field(trigger: PublishedTrigger, since: datetime, until: datetime):
    config = trigger.configuration
    offset = timedelta(days=int(config.get("offset_days") or 0))
    at = config.get("at")
    field = config.get("field") or ""
    # Field dates whose moment can fall in the window, with slack for zones.
    low = (since - offset - _TZ_SLACK).date()
    high = (until - offset + _TZ_SLACK).date()
    expression = _field_text(field)
    where = (expression >= low.isoformat(), expression < (high + timedelta(days=1)).isoformat())

    def moment_of(contact: Contact, zone: ZoneInfo) -> tuple[date, datetime] | None:
        return field_moment(_field_value(contact, field), zone, offset.days, at)

    yield from _by_occurrence(trigger, since, until, where, moment_of)


def _anniversary(trigger: PublishedTrigger, since: datetime, until: datetime):
    config = trigger.configuration
    at = time_of_day(config.get("at"))
    field = config.get("field") or ""
    days = _days_between((since - _TZ_SLACK).date(), (until + _TZ_SLACK).date())
    month_days = {d.strftime("%m-%d") for d in days}
    if "02-28" in month_days:
        month_days.add("02-29")  # celebrated on Feb 28 in common years
    where = (func.substr(_field_text(field), 6, 5).in_(sorted(month_days)),)

    def moment_of(contact: Contact, zone: ZoneInfo) -> tuple[date, datetime] | None:
        value = field_date(_field_value(contact, field), zone)
        if value is None:
            return None
        local_until = until.astimezone(zone).date()
        for year in (local_until.year - 1, local_until.year):
            if year <= value.year:
                continue
            day = _same_day_in(value, year)
            moment = at_local(day, at, zone)
            if since < moment <= until:
                return day, moment
        return None

    yield from _by_occurrence(trigger, since, until, where, moment_of)


def _by_occurrence(trigger, since, until, where, moment_of):
    """Candidates from SQL (a superset), exact moments in Python, grouped by
    the occurrence's local date so each group is one set-based enrollment."""
    group = rule_group_of(trigger.configuration)
    last_id = 0
    while True:
        stmt = select(Contact).where(Contact.id > last_id, *where).order_by(Contact.id).limit(BATCH)
        contacts = list(db.session.scalars(stmt))
        if not contacts:
            return
        last_id = contacts[-1].id
        due: dict[date, list[Contact]] = defaultdict(list)
        for contact in contacts:
            found = moment_of(contact, zone_of(contact.timezone))
            if found is not None and since < found[1] <= until:
                due[found[0]].append(contact)
        for day, members in sorted(due.items()):
            ids = passing(group, members, trigger.workflow_id)
            if ids:
                yield day.isoformat(), ids


def _field_text(field: str):
    """The field as ISO text in SQL (JSON custom value or the created_at column)."""
    if field == "created_at":
        if db.session.get_bind().dialect.name == "postgresql":
            return func.to_char(func.timezone("UTC", Contact.created_at), 'YYYY-MM-DD"T"HH24:MI:SS')
        return cast(Contact.created_at, String)
    key = field[len("custom.") :]
    return Contact.custom_fields[key].as_string()


def _field_value(contact: Contact, field: str):
    """The raw value the date rule reads (app/automation/crm/dates.py)."""
    if field == "created_at":
        return ensure_utc(contact.created_at)
    return field_value(field, {}, contact.custom_fields)


def _same_day_in(value: date, year: int) -> date:
    if value.month == 2 and value.day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return value.replace(year=year)


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def parse_instant(value) -> datetime | None:
    if isinstance(value, datetime):
        return ensure_utc(value)
    try:
        return ensure_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


register(
    TriggerType(
        "date_reached",
        "Date reached",
        "Date",
        DateReachedConfig,
        "At a fixed moment, for the contacts the rules select.",
        driven_by="schedule",
        runner=_date_reached,
        done=_date_reached_done,
    )
)

register(
    TriggerType(
        "date_field_reached",
        "Date field reached",
        "Date",
        DateFieldConfig,
        "A contact date field plus an offset.",
        driven_by="schedule",
        runner=_date_field,
    )
)

register(
    TriggerType(
        "time_delay",
        "Time after creation",
        "Date",
        TimeDelayConfig,
        "A delay after the contact was created.",
        driven_by="schedule",
        runner=_time_delay,
    )
)

register(
    TriggerType(
        "anniversary",
        "Anniversary",
        "Date",
        AnniversaryConfig,
        "Every year on a contact date field.",
        driven_by="schedule",
        runner=_anniversary,
    )
)
