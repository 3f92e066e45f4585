"""A contact's date field as a moment: one rule for the date triggers
(``date_field_reached``, ``anniversary``) and the ``wait_until`` step.

The moment of a date field is a day and a time of day in the contact's
timezone (``Contact.timezone``, UTC when unset or unknown):

- the day is the field's date: a date as it is (``"2026-03-14"``), a
  date-time (``"2026-03-14T18:30:00Z"``, or ``created_at``) as the date it
  is in the contact's timezone (a naive one counts as UTC); plus
  ``offset_days``;
- the time of day is ``at`` (``"HH:MM"``), by default :data:`DEFAULT_AT`,
  09:00: a reminder "7 days before the renewal" goes out in the morning,
  whether a trigger or a wait step asks.

A field that is empty or not a date gives no moment (the trigger skips the
contact, the wait step is skipped). ``field`` is ``created_at``, a contact
column (``birthday``, optionally written ``contact.birthday``) or a custom
field (``custom.renewal_date``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_AT = "09:00"


def zone_of(name: str | None) -> ZoneInfo:
    """The contact's timezone; UTC when unset or unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def time_of_day(value: str | None) -> time:
    """``"HH:MM"`` as a time; :data:`DEFAULT_AT` when missing or unreadable."""
    for text in (value, DEFAULT_AT):
        try:
            hours, minutes = str(text).split(":")
            return time(int(hours), int(minutes))
        except (TypeError, ValueError):
            continue
    raise AssertionError("DEFAULT_AT is a time of day")


def field_value(field: str, columns: Mapping[str, Any], custom: Mapping[str, Any] | None) -> Any:
    """The raw value of ``field`` from a contact's columns and custom fields."""
    name = (field or "").removeprefix("contact.")
    if name.startswith("custom."):
        return (custom or {}).get(name[len("custom.") :])
    return columns.get(name)


def field_date(value: Any, zone: ZoneInfo) -> date | None:
    """The day a field's value falls on in ``zone`` (see the module's rule)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(zone).date()
    if isinstance(value, date):
        return value
    return None


def at_local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``day`` at ``at`` in ``zone``, in UTC. zoneinfo picks that day's
    offset (DST included); a time skipped by a spring-forward maps to the
    real instant just after it."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def field_moment(
    value: Any, zone: ZoneInfo, offset_days: int = 0, at: str | None = None
) -> tuple[date, datetime] | None:
    """(local day, UTC moment) of a field's value plus ``offset_days`` at
    ``at``; None when the value is not a date."""
    day = field_date(value, zone)
    if day is None:
        return None
    day = day + timedelta(days=int(offset_days or 0))
    return day, at_local(day, time_of_day(at), zone)
