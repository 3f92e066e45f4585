"""A large CSV import of the suppression list, as a job with a progress bar.

The upload is stored like a contact import's (``import_files.store_upload``,
``kind="suppressions"``), so any worker can read it. The job keeps the
list's rule that an import is all or nothing: first every row is checked,
streamed from the stored chunks, with the progress committed as it goes
and every bad row kept as a ``ContactImportError`` (line, column, what was
wrong, the row itself); one bad row and nothing is imported, the page
names them all and a report can be downloaded. A clean file then goes in
in one transaction of set-based inserts (addresses already listed keep
their entry). A job that dies is run again from the start: checking
writes nothing to the list, and the write is one transaction.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, insert

from app.automation.crm.import_files import (
    STALLED,
    UploadRefused,
    claim_and_run,
    raw_line,
    read_rows,
    store_upload,
)
from app.automation.delivery.suppression_csv import MAX_ROWS, check_row, entry_rows
from app.automation.delivery.suppressions import insert_many
from app.clock import now
from app.extensions import db
from app.models import ContactImport, ContactImportError
from app.models.audit import record
from app.queue import enqueue

log = logging.getLogger(__name__)

KIND = "suppressions"
# Progress is committed every this many rows checked.
PROGRESS_EVERY = 2000
ERRORS_EVERY = 500


def start(stream, filename: str, user_id: int | None) -> ContactImport:
    """Store the upload and queue the job; UploadRefused for a file that
    cannot be read or has neither an ``email`` nor a ``phone`` column."""
    imp = store_upload(stream, filename or "suppressions.csv", user_id, kind=KIND)
    header = [name.strip().lower() for name in imp.header]
    if "email" not in header and "phone" not in header:
        db.session.delete(imp)
        db.session.commit()
        raise UploadRefused(
            "The first line must name the columns, with an 'email' or 'phone' column."
        )
    imp.mapping, imp.status = [], "queued"
    db.session.commit()
    enqueue(run_suppression_import, imp.id)
    return imp


def resume(imp: ContactImport) -> bool:
    """Queue a stalled import again (its worker died); False if it is not."""
    if imp.kind != KIND or not imp.stalled_at(now(), STALLED):
        return False
    enqueue(run_suppression_import, imp.id)
    return True


def run_suppression_import(import_id: int) -> None:
    """The job (its frame: :func:`import_files.claim_and_run`)."""
    claim_and_run(import_id, KIND, _run)


def _run(imp: ContactImport) -> None:
    # From the start every time: earlier errors and counts go.
    db.session.execute(delete(ContactImportError).where(ContactImportError.import_id == imp.id))
    imp.processed_rows = imp.error_count = imp.created_count = 0
    imp.error = None
    if imp.total_rows is None:
        imp.total_rows = sum(1 for _ in read_rows(imp.id))
    imp.started_at = imp.started_at or now()
    db.session.commit()
    if imp.total_rows > MAX_ROWS:
        _fail(imp, f"The file has {imp.total_rows:,} rows; at most {MAX_ROWS:,} per file.")
        return
    header = [name.strip().lower() for name in imp.header]
    entries: dict[tuple[str, str], dict] = {}
    errors: list[dict] = []
    for line, cells in read_rows(imp.id):
        row = dict(zip(header, cells, strict=False))
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            row[None] = cells[len(header) :]
        checked = check_row(row)
        if checked.problems:
            column, message = checked.problems[0]
            errors.append(
                {
                    "firm_id": imp.firm_id,
                    "import_id": imp.id,
                    "row_number": line,
                    "email": (row.get("email") or row.get("phone") or "")[:320],
                    "column": column,
                    "message": "; ".join(m for _, m in checked.problems),
                    "raw": raw_line(cells),
                    "created_at": now(),
                }
            )
        else:
            for key in checked.keys:
                entries.setdefault(key, {"reason": checked.reason, "note": checked.note})
        imp.processed_rows += 1
        if len(errors) >= ERRORS_EVERY or imp.processed_rows % PROGRESS_EVERY == 0:
            _keep_errors(imp, errors)
            db.session.commit()
    _keep_errors(imp, errors)
    db.session.commit()
    if imp.error_count:
        _fail(
            imp,
            f"{imp.error_count:,} bad rows: nothing was imported. "
            "Fix them and import the file again.",
        )
        return
    actor = imp.user.email if imp.user is not None else "system"
    imp.created_count = insert_many(
        db.session.connection(), entry_rows(entries, imp.firm_id, actor)
    )
    record(
        "suppression.imported",
        data={"rows": imp.processed_rows, "added": imp.created_count, "import": imp.id},
        actor=actor,
    )
    imp.status, imp.finished_at = "done", now()
    db.session.commit()


def _keep_errors(imp: ContactImport, errors: list[dict]) -> None:
    if errors:
        db.session.execute(insert(ContactImportError), errors)
        imp.error_count += len(errors)
        errors.clear()


def _fail(imp: ContactImport, message: str) -> None:
    imp.status, imp.finished_at, imp.error = "failed", now(), message
    db.session.commit()
