"""A firm's suppression list: who gets nothing, and why.

Entries come from a hard bounce at hand-over (the dispatcher), a provider's
hard bounce or complaint, ``SOFT_BOUNCE_LIMIT`` soft bounces in a row, or a
person (page, API, CSV import). The gate that reads the list is
``delivery/gates/suppression.py``. Adding is idempotent: an address already
listed keeps its first entry (the earliest reason is the one to show).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from app.automation.delivery.bounces import Bounce
from app.automation.delivery.gates import normalize_address
from app.automation.delivery.gates.suppression import describe
from app.clock import now
from app.extensions import db
from app.models import OutboxMessage, Suppression, TrackingEvent
from app.models.audit import record
from app.models.sending import SUPPRESSION_CHANNELS, SUPPRESSION_REASONS
from app.tenancy import current_actor

# A phone number as people write it: "+1 (555) 010-2000", "020 7946 0018".
PHONE = re.compile(r"^\+?[0-9][0-9 ().-]*$")
_table = Suppression.__table__
_outbox = OutboxMessage.__table__
_events = TrackingEvent.__table__
# Reasons a person may give (the others are the system's own findings).
MANUAL_REASONS = ("hard_bounce", "complaint", "manual", "unsubscribe")


class SuppressionError(ValueError):
    """Bad input for the list; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def valid_address(channel: str, address: str) -> str:
    """The address as the list keeps it, or SuppressionError."""
    from email_validator import EmailNotValidError, validate_email

    if channel not in SUPPRESSION_CHANNELS:
        raise SuppressionError("channel", f"must be one of: {', '.join(SUPPRESSION_CHANNELS)}")
    address = (address or "").strip()
    if channel == "email":
        try:
            # test_environment: the RFC 6761 ".test" names are taken (staging lists use them).
            validate_email(address, check_deliverability=False, test_environment=True)
        except EmailNotValidError:
            raise SuppressionError("email", "not a valid e-mail address") from None
    elif not PHONE.match(address) or not 6 <= len(normalize_address(channel, address)) <= 16:
        raise SuppressionError("phone", "not a valid phone number (digits, an optional +)")
    return normalize_address(channel, address)


def _insert(conn: Connection, values: dict) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when a row was added."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(_table).values(**values).on_conflict_do_nothing()
    return conn.execute(stmt).rowcount == 1


def insert_many(conn: Connection, rows: list[dict], chunk: int = 1000) -> int:
    """Set-based inserts that keep entries already there; returns how many
    rows were added."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    added = 0
    for start in range(0, len(rows), chunk):
        stmt = (
            dialect.insert(_table)
            .values(rows[start : start + chunk])
            .on_conflict_do_nothing()
            .returning(_table.c.id)
        )
        # The rows that went in (rowcount is -1 for this on psycopg).
        added += len(conn.execute(stmt).all())
    return added


def add(
    firm_id: int | None,
    address: str,
    reason: str,
    *,
    channel: str = "email",
    note: str = "",
    source: str = "api",
    detail: dict | None = None,
    outbox_id: int | None = None,
    actor: str | None = None,
) -> tuple[Suppression, bool]:
    """Add (or find) an entry in the session, under the current firm (new
    rows get it from the tenancy hook; ``firm_id`` is only for callers that
    name it); the caller commits. Returns the entry and whether it is new."""
    key = valid_address(channel, address)
    if reason not in SUPPRESSION_REASONS:
        raise SuppressionError("reason", f"must be one of: {', '.join(MANUAL_REASONS)}")
    existing = db.session.scalars(
        select(Suppression).where(Suppression.channel == channel, Suppression.address == key)
    ).first()
    if existing is not None:
        return existing, False
    entry = Suppression(
        channel=channel,
        address=key,
        reason=reason,
        note=(note or "")[:2000],
        source=source,
        detail=detail or {},
        outbox_id=outbox_id,
        created_by=actor or _actor(),
    )
    if firm_id is not None:
        entry.firm_id = firm_id
    db.session.add(entry)
    db.session.flush()
    record("suppression.added", entry, data={"address": key, "reason": reason, "note": note})
    return entry, True


def _actor() -> str:
    return current_actor()[1]


def remove(entry: Suppression) -> None:
    """Take an address off the list, with an audit entry; caller commits."""
    record(
        "suppression.removed",
        entry,
        data={"address": entry.address, "reason": entry.reason, "note": entry.note},
    )
    db.session.delete(entry)


def add_from_delivery(
    conn: Connection, firm_id: int, address: str, reason: str, bounce: Bounce | None, **extra
) -> bool:
    """The dispatcher's and provider callbacks' way in: one statement on
    the given connection (no ORM session, no firm context)."""
    values: dict[str, Any] = {
        "firm_id": firm_id,
        "channel": "email",
        "address": normalize_address("email", address),
        "reason": reason,
        "note": extra.get("note", ""),
        "detail": bounce.detail() if bounce else {},
        "source": extra.get("source", "smtp"),
        "outbox_id": extra.get("outbox_id"),
        "created_by": "system",
        "created_at": extra.get("moment") or now(),
    }
    if not values["address"]:
        return False
    return _insert(conn, values)


def _row_soft_bounced(status: str, response: dict | None, event_details: list[dict]) -> bool:
    bounce = (response or {}).get("bounce") or {}
    if status == "failed" and bounce.get("kind") == "soft":
        return True
    return any(detail.get("kind") == "soft" for detail in event_details)


def note_soft_bounce(
    conn: Connection, firm_id: int, contact_id: int | None, address: str, outbox_id: int
) -> bool:
    """After a soft bounce: suppress when the last ``SOFT_BOUNCE_LIMIT``
    e-mails to this address all soft-bounced (a message handed over since,
    and not bounced, breaks the row). Runs only when a soft bounce
    happens, so sending pays nothing for it. True when suppressed."""
    limit = int(current_app.config.get("SOFT_BOUNCE_LIMIT") or 3)
    where = [
        _outbox.c.firm_id == firm_id,
        _outbox.c.channel == "email",
        _outbox.c.to_address == address,
        _outbox.c.status.in_(("sent", "failed")),
    ]
    if contact_id is not None:
        where.append(_outbox.c.contact_id == contact_id)
    rows = conn.execute(
        select(_outbox.c.id, _outbox.c.status, _outbox.c.response)
        .where(*where)
        .order_by(_outbox.c.id.desc())
        .limit(limit)
    ).all()
    if len(rows) < limit:
        return False
    details: dict[int, list[dict]] = {row.id: [] for row in rows}
    stmt = select(_events.c.outbox_id, _events.c.detail).where(
        _events.c.outbox_id.in_(list(details)), _events.c.kind == "bounce"
    )
    for event_outbox, detail in conn.execute(stmt):
        details[event_outbox].append(detail or {})
    if not all(_row_soft_bounced(r.status, r.response, details[r.id]) for r in rows):
        return False
    return add_from_delivery(
        conn,
        firm_id,
        address,
        "soft_bounce",
        None,
        note=f"{limit} soft bounces in a row",
        source="soft_bounces",
        outbox_id=outbox_id,
    )


def search(
    email: str | None = None,
    part: str | None = None,
    reason: str | None = None,
    *,
    phone: str | None = None,
    channel: str | None = None,
):
    """The current firm's entries: by exact address or number, part of
    one, reason or channel."""
    stmt = select(Suppression)
    if email:
        stmt = stmt.where(
            Suppression.channel == "email",
            Suppression.address == normalize_address("email", email),
        )
    if phone:
        stmt = stmt.where(
            Suppression.channel == "sms", Suppression.address == normalize_address("sms", phone)
        )
    if channel:
        stmt = stmt.where(Suppression.channel == channel)
    if part:
        pattern = part.strip().lower().replace("\\", "").replace("%", "").replace("_", "\\_")
        stmt = stmt.where(Suppression.address.like(f"%{pattern}%", escape="\\"))
    if reason:
        stmt = stmt.where(Suppression.reason == reason)
    return stmt


def entry_dict(entry: Suppression) -> dict:
    return {
        "id": entry.id,
        "email": entry.address if entry.channel == "email" else None,
        "phone": entry.address if entry.channel == "sms" else None,
        "channel": entry.channel,
        "reason": entry.reason,
        "note": entry.note,
        "source": entry.source,
        "detail": entry.detail or {},
        "message": entry.outbox_id,
        "created_by": entry.created_by,
        "created_at": _iso(entry.created_at),
        "description": describe(entry.reason, entry.created_at, entry.detail, entry.note),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
