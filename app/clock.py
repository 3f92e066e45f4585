"""The one clock. Everything asks :func:`now`; tests move it (time-machine)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current moment as an aware UTC datetime."""
    return datetime.now(UTC)


def ensure_utc(value: datetime | None) -> datetime | None:
    """Treat naive datetimes (SQLite gives these back) as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
