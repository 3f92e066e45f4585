"""Send windows: the days and hours a message may go out, in the contact's
own time zone or a named one (docs/SENDING.md, "Send windows").

A window is ``{"days": ["mon", ...], "start": "09:00", "end": "17:00",
"timezone": "contact" | "<IANA name>"}``. A message due outside it is held
until :func:`next_opening`, computed on the local calendar of the zone, so a
window opens at 09:00 local on the day after a DST change as on any other
(zoneinfo gives each local day its own UTC offset; half-hour zones such as
Asia/Kolkata are just offsets). An opening that falls in a spring-forward
gap (02:30 on the night clocks jump from 02:00 to 03:00) opens at the
first real moment after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CONTACT_ZONE = "contact"


class WindowError(ValueError):
    """A bad window; ``field`` names the part ("end", "timezone", "days")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Window:
    days: tuple[int, ...]  # 0 = Monday
    start: time
    end: time
    timezone: str  # "contact" or an IANA name

    def as_dict(self) -> dict:
        return {
            "days": [DAYS[d] for d in self.days],
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "timezone": self.timezone,
        }


def _clock(value, field: str) -> time:
    if not isinstance(value, str):
        raise WindowError(field, "a time as HH:MM, e.g. 09:00")
    try:
        hours, minutes = value.strip().split(":")
        if len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise WindowError(field, f"{value!r} is not a time as HH:MM (00:00 to 23:59)") from None


def valid_zone(name: str) -> bool:
    if not isinstance(name, str) or not name or name != name.strip():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return name in _zones()


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
        _ZONES.add("UTC")
    return _ZONES


def parse_window(value) -> Window | None:
    """A window from its JSON form; None stays None. Raises
    :class:`WindowError` naming the bad part."""
    if value is None:
        return None
    if isinstance(value, Window):
        return value
    if not isinstance(value, dict):
        raise WindowError("send_window", "an object with days, start, end and timezone")
    unknown = sorted(set(value) - {"days", "start", "end", "timezone"})
    if unknown:
        raise WindowError(unknown[0], "not a part of a send window")
    days = value.get("days", list(DAYS[:5]))
    if not isinstance(days, list) or not days:
        raise WindowError("days", "a list of at least one day: mon, tue, wed, thu, fri, sat, sun")
    numbers = []
    for day in days:
        word = day.strip().lower() if isinstance(day, str) else ""
        key = word[:3]
        if key not in DAYS or word not in (key, _full(key)):
            raise WindowError("days", f"{day!r} is not a day (mon, tue, wed, thu, fri, sat, sun)")
        numbers.append(DAYS.index(key))
    start = _clock(value.get("start", "09:00"), "start")
    end = _clock(value.get("end", "17:00"), "end")
    if end <= start:
        raise WindowError("end", f"the window ends ({end:%H:%M}) before it starts ({start:%H:%M})")
    zone = value.get("timezone", CONTACT_ZONE)
    if zone != CONTACT_ZONE and not valid_zone(zone):
        raise WindowError("timezone", f"{zone!r} is not 'contact' or an IANA time zone name")
    return Window(tuple(sorted(set(numbers))), start, end, zone)


def _full(key: str) -> str:
    return {
        "mon": "monday",
        "tue": "tuesday",
        "wed": "wednesday",
        "thu": "thursday",
        "fri": "friday",
        "sat": "saturday",
        "sun": "sunday",
    }[key]


def zone_for(window: Window, contact_zone: str | None, firm_zone: str | None) -> ZoneInfo:
    """The zone a window is read in: its own, or the contact's (falling back
    to the firm's, then UTC, when the contact has none or an unknown one)."""
    if window.timezone != CONTACT_ZONE:
        return ZoneInfo(window.timezone)
    for name in (contact_zone, firm_zone):
        if name and valid_zone(name):
            return ZoneInfo(name)
    return ZoneInfo("UTC")


def local_moment(day, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC moment of a local wall-clock time. One that does not exist
    that day (a spring-forward gap) is the first real moment after the gap;
    one that happens twice (fall back) is the first of the two."""
    wanted = datetime.combine(day, clock)
    utc = wanted.replace(tzinfo=zone).astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wanted:
        return utc
    # In a gap, fold=0 reads the time with the offset before the change,
    # which lands after the gap: step back to the change itself.
    step = timedelta(minutes=1)
    while (utc - step).astimezone(zone).replace(tzinfo=None) > wanted:
        utc -= step
    return utc


def next_opening(window: Window, moment: datetime, zone: ZoneInfo) -> datetime | None:
    """None when ``moment`` is inside the window; else the UTC moment it
    next opens."""
    moment = moment.astimezone(UTC)
    today = moment.astimezone(zone).date()
    for offset in range(-1, 9):
        day = today + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        opens = local_moment(day, window.start, zone)
        closes = local_moment(day, window.end, zone)
        if closes <= moment:
            continue
        if opens <= moment:
            return None
        return opens
    return None  # not reached: a window has at least one day a week


def describe(window: Window | None, example_zone: str | None = None) -> str:
    """The window in words: "a contact in Tokyo gets this between 09:00 and
    17:00 Tokyo time, Mon-Fri"."""
    if window is None:
        return "Sent as soon as it is due, any day, any time."
    days = _days_text(window.days)
    hours = f"between {window.start:%H:%M} and {window.end:%H:%M}"
    if window.timezone == CONTACT_ZONE:
        zone = example_zone or "Asia/Tokyo"
        city = _city(zone)
        return (
            f"A contact in {city} gets this {hours} {city} time, {days}; "
            "a contact without a time zone, in the firm's."
        )
    return f"Every contact gets this {hours} {_city(window.timezone)} time, {days}."


def _city(zone: str) -> str:
    return zone.rsplit("/", 1)[-1].replace("_", " ")


def _days_text(days: tuple[int, ...]) -> str:
    if days == tuple(range(7)):
        return "every day"
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[d] for d in run)
    return ", ".join(parts)


def window_from_form(form) -> dict | None:
    """A window from a settings form (``window_on``, ``window_days`` checked
    boxes, ``window_start``, ``window_end``, ``window_timezone``); None when
    it is off. Raises :class:`WindowError`."""
    if form.get("window_on") not in ("on", "true", "1"):
        return None
    days = form.getlist("window_days") if hasattr(form, "getlist") else form.get("window_days")
    window = parse_window(
        {
            "days": list(days or []),
            "start": (form.get("window_start") or "").strip(),
            "end": (form.get("window_end") or "").strip(),
            "timezone": (form.get("window_timezone") or CONTACT_ZONE).strip() or CONTACT_ZONE,
        }
    )
    return window.as_dict() if window else None
