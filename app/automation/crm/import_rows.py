"""A contact import's job: check every row, create or update contacts in
batches, and keep the progress and the bad rows on the database.

The job reads the stored file as a stream (:func:`import_files.read_rows`)
and commits each batch with its progress (``processed_rows``), so a job
that dies is resumed where its last batch ended: the rows before are
skipped, their e-mails re-read only to spot later duplicates. Each bad row
gets a ``ContactImportError`` (its line, e-mail, column and what was
wrong, and the row itself) for the downloadable report. Contacts are
given "contact created" and "tag added" trigger events like any other
contact (emitted after each batch commits).
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import insert, select
from sqlalchemy.orm import selectinload

from app.automation.crm.import_files import (
    CONTACT_FIELDS,
    CUSTOM_KEY,
    STALLED,
    claim_and_run,
    raw_line,
    read_rows,
)
from app.automation.triggers.bus import emit_many
from app.automation.triggers.crm_events import crm_event
from app.clock import now
from app.extensions import db
from app.models import Contact, ContactImport, ContactImportError, Tag, contact_tags
from app.queue import enqueue
from app.tenancy import firm_context

log = logging.getLogger(__name__)

BATCH = 500
# Column values of a new contact that the file does not set.
NEW_CONTACT = {
    "first_name": "",
    "last_name": "",
    "phone": "",
    "score": 0,
    "timezone": "UTC",
    "unsubscribed": False,
}
# A running import whose row has not changed for this long lost its worker.
LIMITS = {"first_name": 100, "last_name": 100, "phone": 40, "timezone": 64}
TRUE = {"1", "true", "yes", "y", "x"}
FALSE = {"", "0", "false", "no", "n"}


class MappingInvalid(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def clean_mapping(imp: ContactImport, raw: list[str]) -> list[str | None]:
    """The posted target of each column, checked: e-mail exactly once, no
    target twice, custom fields named ``custom.<letters, digits, _>``."""
    errors: dict[str, str] = {}
    mapping: list[str | None] = []
    seen: dict[str, int] = {}
    for index, name in enumerate(imp.header):
        target = (raw[index] if index < len(raw) else "").strip() or None
        if target and target not in CONTACT_FIELDS and not CUSTOM_KEY.match(target):
            errors[f"column-{index}"] = f"“{name}”: not a contact field or custom.<key>."
        elif target and target in seen:
            errors[f"column-{index}"] = (
                f"“{name}”: {target} is already filled from column {seen[target] + 1}."
            )
        elif target:
            seen[target] = index
        mapping.append(target)
    if "email" not in seen:
        errors["email"] = "Choose the column that holds the e-mail address."
    if errors:
        raise MappingInvalid(errors)
    return mapping


def start_import(imp: ContactImport, raw_mapping: list[str], on_existing: str) -> None:
    """Save the mapping and queue the job (RQ, or the in-process runner)."""
    if imp.status != "uploaded":
        raise MappingInvalid({"status": "This import has already started."})
    imp.mapping = clean_mapping(imp, raw_mapping)
    imp.on_existing = "update" if on_existing == "update" else "skip"
    imp.status = "queued"
    db.session.commit()
    enqueue(run_import, imp.id)


@dataclass
class RowResult:
    line: int
    email: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    problem: tuple[str, str] | None = None  # (column, message)


def check_row(line: int, cells: list[str], mapping: list[str | None]) -> RowResult:
    result = RowResult(line)
    if "email" in mapping and mapping.index("email") < len(cells):
        result.email = cells[mapping.index("email")].strip()[:320]
    if len(cells) > len(mapping) and any(c.strip() for c in cells[len(mapping) :]):
        result.problem = (
            f"column {len(mapping) + 1}",
            f"unknown column: the row has {len(cells)} values, the header names {len(mapping)}",
        )
        return result
    for target, cell in zip(mapping, cells, strict=False):
        value = cell.strip()
        if target is None:
            continue
        if target == "email":
            try:
                result.email = validate_email(value, check_deliverability=False).normalized.lower()
            except EmailNotValidError as exc:
                result.email = value[:320]
                result.problem = (
                    "email",
                    f"bad e-mail address: {exc}" if value else "no e-mail address",
                )
                return result
        elif target.startswith("custom."):
            if value:
                result.custom[target[len("custom.") :]] = value
        elif target == "tags":
            result.tags = [t.strip()[:100] for t in value.split(",") if t.strip()]
        elif target == "score":
            try:
                result.values["score"] = int(value or 0)
            except ValueError:
                result.problem = ("score", f"score must be a whole number, not “{value[:40]}”")
                return result
        elif target == "unsubscribed":
            if value.lower() not in TRUE | FALSE:
                result.problem = (
                    "unsubscribed",
                    f"unsubscribed must be yes or no, not “{value[:40]}”",
                )
                return result
            result.values["unsubscribed"] = value.lower() in TRUE
        elif target == "timezone" and value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                result.problem = ("timezone", f"unknown time zone “{value[:64]}”")
                return result
            result.values["timezone"] = value
        elif value:
            if len(value) > LIMITS.get(target, 200):
                result.problem = (target, f"{target} is longer than {LIMITS[target]} characters")
                return result
            result.values[target] = value
    return result


def run_import(import_id: int) -> None:
    """The job (its frame: :func:`import_files.claim_and_run`)."""
    claim_and_run(import_id, "contacts", _run)


def resume_import(imp: ContactImport) -> bool:
    """Queue a stalled import again (its worker died); False if it is not."""
    if not imp.stalled_at(now(), STALLED):
        return False
    enqueue(run_import, imp.id)
    return True


def _emit(events: list[dict]) -> None:
    """Hand a committed batch's events to the bus; the contacts stand if a
    trigger fails (logged), as for any CRM change."""
    if not events:
        return
    try:
        emit_many(events)
    except Exception:
        log.exception("import: could not dispatch %d CRM trigger events", len(events))
        db.session.rollback()


def _batches(rows: Iterable, size: int) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run(imp: ContactImport) -> None:
    if imp.total_rows is None:
        imp.total_rows = sum(1 for _ in read_rows(imp.id))
    imp.started_at = imp.started_at or now()
    db.session.commit()
    first_line: dict[str, int] = {}
    rows = read_rows(imp.id)
    # Resumed: the rows already written only tell which e-mails came first.
    for line, cells in itertools.islice(rows, imp.processed_rows):
        checked = check_row(line, cells, imp.mapping)
        if checked.email and not checked.problem:
            first_line.setdefault(checked.email, line)
    for batch in _batches(rows, BATCH):
        events = _write_batch(imp, batch, first_line)
        imp.processed_rows += len(batch)
        db.session.commit()
        _emit(events)
    imp.status, imp.finished_at = "done", now()
    db.session.commit()


def _write_batch(imp: ContactImport, batch: list, first_line: dict[str, int]) -> list[dict]:
    """Check, then write one batch; returns the trigger events to emit once
    it is committed. New contacts and their tags go in as multi-row
    inserts (an ORM object per contact costs ten times as much); existing
    contacts are updated through the ORM, whose hooks emit their events."""
    checked = [(check_row(line, cells, imp.mapping), cells) for line, cells in batch]
    emails = [r.email for r, _ in checked if not r.problem]
    existing = {
        c.email: c
        for c in db.session.scalars(
            select(Contact).where(Contact.email.in_(emails)).options(selectinload(Contact.tags))
        )
    }
    tags = _tags([t for r, _ in checked if not r.problem for t in r.tags])
    errors, new_rows, new_tags = [], [], []
    moment = now()
    for result, cells in checked:
        if result.problem is None and first_line.get(result.email, result.line) != result.line:
            line = first_line[result.email]
            result.problem = ("email", f"duplicate: {result.email} is already on line {line}")
        elif result.problem is None and result.email in existing and imp.on_existing == "skip":
            result.problem = ("email", "already a contact (skipped; choose “update” to fill it)")
        if result.problem:
            column, message = result.problem
            errors.append(
                {
                    "firm_id": imp.firm_id,
                    "import_id": imp.id,
                    "row_number": result.line,
                    "email": result.email[:320],
                    "column": column[:100],
                    "message": message,
                    "raw": raw_line(cells),
                    "created_at": moment,
                }
            )
            continue
        first_line[result.email] = result.line
        contact = existing.get(result.email)
        if contact is None:
            new_rows.append({**NEW_CONTACT, **result.values, "email": result.email})
            new_rows[-1].update(
                firm_id=imp.firm_id,
                custom_fields=result.custom,
                created_at=moment,
                updated_at=moment,
            )
            new_tags.append(result.tags)
            continue
        for name, value in result.values.items():
            setattr(contact, name, value)
        if result.custom:
            contact.custom_fields = {**(contact.custom_fields or {}), **result.custom}
        for name in result.tags:
            if tags[name] not in contact.tags:
                contact.tags.append(tags[name])
        imp.updated_count += 1
    events: list[dict] = []
    if new_rows:
        db.session.flush()  # the new tags' ids
        created = db.session.execute(
            insert(Contact).returning(Contact.id, Contact.email, sort_by_parameter_order=True),
            new_rows,
        ).all()
        links = []
        for (contact_id, email), names in zip(created, new_tags, strict=True):
            events.append(
                crm_event(imp.firm_id, "contact_created", contact_id, {"email": email}, "import")
            )
            for name in dict.fromkeys(names):
                links.append(
                    {"contact_id": contact_id, "tag_id": tags[name].id, "created_at": moment}
                )
                data = {"tag": name, "tag_id": tags[name].id}
                events.append(
                    crm_event(imp.firm_id, "contact_tag_added", contact_id, data, "import")
                )
        if links:
            db.session.execute(insert(contact_tags), links)
        imp.created_count += len(created)
    if errors:
        db.session.execute(insert(ContactImportError), errors)
        imp.error_count += len(errors)
    return events


def _tags(names: list[str]) -> dict[str, Tag]:
    wanted = set(names)
    if not wanted:
        return {}
    found = {t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(wanted)))}
    for name in wanted - set(found):
        found[name] = Tag(name=name)
        db.session.add(found[name])
    return found


def error_report(imp: ContactImport) -> Iterator[str]:
    """The bad rows as CSV lines (line, e-mail, column, problem, the row),
    read from the database in pages. The generator runs after the view has
    returned, so it names the firm itself."""
    import_id, firm_id = imp.id, imp.firm_id
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["line", "email", "column", "problem", "row"])
    yield out.getvalue()
    after = 0
    E = ContactImportError
    while True:
        with firm_context(firm_id):
            page = db.session.execute(
                select(E.id, E.row_number, E.email, E.column, E.message, E.raw)
                .where(E.import_id == import_id, E.id > after)
                .order_by(E.id)
                .limit(1000)
            ).all()
        if not page:
            return
        out.seek(0)
        out.truncate()
        for row in page:
            writer.writerow(row[1:])
        after = page[-1].id
        yield out.getvalue()
