"""CSV import and export of a firm's suppression list.

An import is all or nothing: every row is checked first, and one bad row
(a malformed address, an unknown reason) refuses the whole file with the
row numbers named, so nothing is half-imported. Good files go in with
set-based inserts (addresses already listed are kept as they are). Small
files are imported here, in the request; large ones by the job in
``suppression_import.py``, with the same row check.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.automation.delivery.suppressions import (
    MANUAL_REASONS,
    SuppressionError,
    insert_many,
    valid_address,
)
from app.clock import now
from app.extensions import db
from app.models.audit import record
from app.tenancy import current_firm_id

# An e-mail row fills ``email``, an SMS number ``phone`` (SUPPRESSION_CHANNELS).
COLUMNS = ("email", "phone", "reason", "note", "source", "created_at")
MAX_ROWS = 500_000
SHOWN_ERRORS = 20


@dataclass
class ImportResult:
    rows: int = 0
    added: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def _rows(text: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if "email" not in header and "phone" not in header:
        raise SuppressionError(
            "file", "the first line must name the columns, with an 'email' or 'phone' column"
        )
    reader.fieldnames = header
    yield from enumerate(reader, start=2)


@dataclass
class Row:
    """One checked row: its entries ``(channel, address)``, or its problems
    ``(column, message)``."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    reason: str = "manual"
    note: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)


def check_row(row: dict) -> Row:
    """An e-mail address, a phone number (SMS) or both, and a known reason."""
    checked = Row(reason=(row.get("reason") or "manual").strip().lower())
    checked.note = (row.get("note") or "")[:2000]
    if None in row:
        checked.problems.append(("file", "more values than columns"))
        return checked
    cells = {"email": (row.get("email") or "").strip(), "sms": (row.get("phone") or "").strip()}
    if not any(cells.values()):
        checked.problems.append(("email", "no e-mail address or phone number"))
        return checked
    for channel, cell in cells.items():
        if not cell:
            continue
        try:
            checked.keys.append((channel, valid_address(channel, cell)))
        except SuppressionError as exc:
            checked.problems.append((exc.field, exc.message))
    if checked.problems:
        return checked
    if checked.reason not in MANUAL_REASONS:
        checked.problems.append(("reason", f"must be one of: {', '.join(MANUAL_REASONS)}"))
    return checked


def entry_rows(entries: dict[tuple[str, str], dict], firm_id: int, actor: str) -> list[dict]:
    """The table rows of checked entries, for :func:`insert_many`."""
    moment = now()
    return [
        {
            "firm_id": firm_id,
            "channel": channel,
            "address": address,
            "reason": entry["reason"],
            "note": entry["note"],
            "detail": {},
            "source": "import",
            "outbox_id": None,
            "created_by": actor,
            "created_at": moment,
        }
        for (channel, address), entry in entries.items()
    ]


def import_csv(data: bytes, actor: str) -> ImportResult:
    """Check every row of ``data``, then add them all, or none (a small
    file, in the request; larger ones are a job: suppression_import.py)."""
    result = ImportResult()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SuppressionError("file", "the file is not UTF-8 text") from None
    entries: dict[tuple[str, str], dict] = {}
    for number, row in _rows(text):
        result.rows += 1
        if result.rows > MAX_ROWS:
            raise SuppressionError("file", f"at most {MAX_ROWS:,} rows per file")
        checked = check_row(row)
        for column, message in checked.problems:
            _error(result, number, column, message)
        if checked.problems:
            continue
        for key in checked.keys:
            entries.setdefault(key, {"reason": checked.reason, "note": checked.note})
    if result.errors:
        return result
    values = entry_rows(entries, current_firm_id(), actor)
    result.added = insert_many(db.session.connection(), values)
    record("suppression.imported", data={"rows": result.rows, "added": result.added})
    db.session.commit()
    return result


def _error(result: ImportResult, number: int, column: str, message: str) -> None:
    result.error_count += 1
    if len(result.errors) < SHOWN_ERRORS:
        result.errors.append(f"row {number}: {column}: {message}")


def export_csv(entries) -> Iterator[str]:
    """The list as CSV lines (a generator, for a streamed download)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    yield out.getvalue()
    for entry in entries:
        out.seek(0)
        out.truncate()
        email, phone = (entry.address, "") if entry.channel == "email" else ("", entry.address)
        writer.writerow(
            [email, phone, entry.reason, entry.note, entry.source, entry.created_at.isoformat()]
        )
        yield out.getvalue()
