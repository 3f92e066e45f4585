"""Date and time triggers, driven by the periodic sweeper.

Each active date trigger keeps a cursor, ``scheduled_through``: every run
looks at the moments that fell due in ``(scheduled_through, now]`` and
enrolls the contacts whose moment it is, then moves the cursor. A run that
did not happen (downtime) is simply a longer window next time; windows are
capped at :data:`MAX_CATCH_UP`, and a trigger's first window starts when
its workflow went live, so activating a workflow does not replay the past.

- ``date_reached``: the fixed moment ``at``; every contact the rules select.
- ``date_field_reached``: a contact date field (``custom.<key>`` or
  ``created_at``) + ``offset_days``, at ``at`` o'clock (default 09:00) in
  the contact's time zone (zoneinfo: right across DST, UTC+13 or UTC-10
  alike); the rule is ``crm/dates.py``'s, which the wait_until step
  shares.
- ``anniversary``: every year on the field's month and day (Feb 29 is
  celebrated on Feb 28 in other years), at ``at`` local time (default
  09:00).
- ``time_delay``: ``delay_hours`` after the contact was created.

Never twice for the same contact and date: the enrollment key hashes
workflow, contact, trigger and ``event_id = date:<trigger>:<YYYY-MM-DD>``
(the occurrence's date), so an overlapping or repeated window, or two
workers running at once, start nothing new.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, cast, func, select, update

from app.automation.crm.dates import (
    at_local,
    field_date,
    field_moment,
    field_value,
    time_of_day,
    zone_of,
)
from app.automation.engine.enrollment import NotEnrollable, enroll
from app.automation.triggers.audience import BATCH, matching_contact_ids, passing
from app.automation.triggers.bus import audit_many
from app.automation.triggers.filters import rule_group_of
from app.clock import ensure_utc, now
from app.extensions import db
from app.models import Contact, Workflow, WorkflowExecution, WorkflowTrigger
from app.tenancy import firm_context

log = logging.getLogger(__name__)

DATE_TYPES = ("date_reached", "date_field_reached", "anniversary", "time_delay")
MAX_CATCH_UP = timedelta(days=7)
# Date moments are minute-grained: a trigger's window grows at least this
# much between runs, which keeps the sweeper's frequent calls cheap.
MIN_STEP = timedelta(seconds=30)
# A local date and the UTC date differ by at most this much (UTC-12..UTC+14).
_TZ_SLACK = timedelta(days=2)


def run_due_date_triggers() -> int:
    """Enroll every contact whose date moment has come; returns executions
    started. Safe to run often and from several workers at once."""
    stmt = (
        select(WorkflowTrigger.id, WorkflowTrigger.firm_id)
        .join(Workflow, Workflow.id == WorkflowTrigger.workflow_id)
        .where(
            WorkflowTrigger.trigger_type.in_(DATE_TYPES),
            WorkflowTrigger.is_active.is_(True),
            Workflow.status == "active",
        )
        .order_by(WorkflowTrigger.id)
        .execution_options(all_firms=True)
    )
    started = 0
    for trigger_id, firm_id in db.session.execute(stmt).all():
        with firm_context(firm_id):
            try:
                started += run_trigger(trigger_id)
            except Exception:  # one broken trigger must not stop the others
                db.session.rollback()
                log.exception("date trigger %s failed", trigger_id)
    return started


def run_trigger(trigger_id: int, until: datetime | None = None) -> int:
    """Process one trigger's window (current firm); returns executions started."""
    trigger = db.session.get(WorkflowTrigger, trigger_id)
    if trigger is None:
        return 0
    workflow = trigger.workflow
    until = ensure_utc(until) or now()
    since = _window_start(trigger, workflow, until)
    if until - since < MIN_STEP:
        return 0  # ran moments ago (the sweeper calls every few seconds)
    if trigger.trigger_type == "date_reached":
        moment = _parse_instant(trigger.configuration.get("at"))
        if moment is None or moment <= since:
            return 0  # done for good: no need to move the cursor ever again
    runner = _RUNNERS[trigger.trigger_type]
    started = 0
    for occurrence, contact_ids in runner(trigger, since, until):
        started += _enroll(workflow, trigger, occurrence, contact_ids)
    _advance(trigger.id, trigger.scheduled_through, until)
    return started


def _window_start(trigger: WorkflowTrigger, workflow: Workflow, until: datetime) -> datetime:
    start = ensure_utc(trigger.scheduled_through) or ensure_utc(
        workflow.activated_at or trigger.created_at or until
    )
    return max(start, until - MAX_CATCH_UP)


def _advance(trigger_id: int, previous: datetime | None, until: datetime) -> None:
    # Only forward, and without touching updated_at (that is the user's edit).
    cursor = WorkflowTrigger.scheduled_through
    db.session.execute(
        update(WorkflowTrigger)
        .where(
            WorkflowTrigger.id == trigger_id,
            (cursor.is_(None)) | (cursor < until),
        )
        .values(scheduled_through=until, updated_at=WorkflowTrigger.updated_at)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _enroll(workflow: Workflow, trigger: WorkflowTrigger, occurrence: str, ids: list[int]) -> int:
    """``occurrence`` names the moment: its local date, or "delay"."""
    if not ids:
        return 0
    event_id = f"date:{trigger.id}:{occurrence}"
    context = {
        "trigger_type": trigger.trigger_type,
        "event_id": event_id,
        "source": "scheduler",
        "date": occurrence,
    }
    try:
        started = enroll(workflow, ids, trigger=trigger, event_id=event_id, context=context)
    except NotEnrollable as exc:
        log.warning("date trigger %s cannot start workflow %s: %s", trigger.id, workflow.id, exc)
        return 0
    if started:
        contact_ids = db.session.scalars(
            select(WorkflowExecution.contact_id).where(WorkflowExecution.id.in_(started))
        )
        audit_many(workflow, trigger, list(contact_ids), event_id, "scheduler")
        db.session.commit()
    return len(started)


# --- date_reached -----------------------------------------------------------


def _date_reached(trigger: WorkflowTrigger, since: datetime, until: datetime):
    moment = _parse_instant(trigger.configuration.get("at"))
    if moment is None or not (since < moment <= until):
        return
    group = rule_group_of(trigger.configuration)
    for ids in matching_contact_ids(group, workflow_id=trigger.workflow_id):
        yield moment.date().isoformat(), ids


# --- time_delay -------------------------------------------------------------


def _time_delay(trigger: WorkflowTrigger, since: datetime, until: datetime):
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


def _date_field(trigger: WorkflowTrigger, since: datetime, until: datetime):
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


def _anniversary(trigger: WorkflowTrigger, since: datetime, until: datetime):
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


def _parse_instant(value) -> datetime | None:
    if isinstance(value, datetime):
        return ensure_utc(value)
    try:
        return ensure_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


_RUNNERS = {
    "date_reached": _date_reached,
    "date_field_reached": _date_field,
    "anniversary": _anniversary,
    "time_delay": _time_delay,
}

__all__ = ["DATE_TYPES", "MAX_CATCH_UP", "run_due_date_triggers", "run_trigger"]
