"""A CSV upload: stored in the database in chunks, read back as a stream.

The file never sits whole in memory, in the request or in the job: the
upload is copied chunk by chunk from werkzeug's spooled file into
``contact_import_chunks`` (any worker on any host can read it), and
:func:`read_rows` parses it one chunk at a time. The header row names the
columns; :func:`guess_mapping` proposes a contact field for each.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import IO

from sqlalchemy import and_, insert, or_, select, update

from app.clock import now
from app.extensions import db
from app.models import ContactImport, ContactImportChunk
from app.tenancy import firm_context

# An import whose job has not reported for this long is taken to be dead:
# another copy of the job may claim it, and its page offers "resume".
STALLED = timedelta(minutes=2)

CHUNK_BYTES = 1024 * 1024
MAX_BYTES = 64 * 1024 * 1024
MAX_COLUMNS = 200
# Contact columns a CSV column may fill, with what a person calls them.
CONTACT_FIELDS = {
    "email": "E-mail",
    "first_name": "First name",
    "last_name": "Last name",
    "phone": "Phone",
    "score": "Score",
    "timezone": "Time zone",
    "unsubscribed": "Unsubscribed (yes/no)",
    "tags": "Tags (comma-separated)",
}
CUSTOM_KEY = re.compile(r"^custom\.[A-Za-z0-9_]{1,60}$")
_ALIASES = {
    "email": ("email", "e_mail", "email_address", "mail"),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name"),
    "phone": ("phone", "phone_number", "mobile", "telephone", "tel"),
    "score": ("score", "lead_score"),
    "timezone": ("timezone", "time_zone", "tz"),
    "unsubscribed": ("unsubscribed", "opted_out"),
    "tags": ("tags", "tag", "labels"),
}
csv.field_size_limit(1024 * 1024)


class UploadRefused(ValueError):
    """The file cannot be imported (empty, not UTF-8 text, too large...)."""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")[:60]


def guess_mapping(header: list[str]) -> list[str | None]:
    """A target per column: a contact field its name matches, else
    ``custom.<slug>``; each target at most once."""
    taken: set[str] = set()
    mapping: list[str | None] = []
    for name in header:
        key = slug(name)
        target = next((field for field, names in _ALIASES.items() if key in names), None)
        if target is None and key:
            target = f"custom.{key}"
        if target in taken:
            target = None
        if target:
            taken.add(target)
        mapping.append(target)
    return mapping


def _header_of(first: bytes) -> list[str]:
    # The head may end inside a character; the header row is well before.
    text = first.decode("utf-8-sig", errors="ignore")
    row = next(csv.reader(io.StringIO(text)), None) if text else None
    if not row or not any(cell.strip() for cell in row):
        raise UploadRefused("The file has no header row: its first line must name the columns.")
    if len(row) > MAX_COLUMNS:
        raise UploadRefused(f"The file has {len(row)} columns; at most {MAX_COLUMNS} are read.")
    return [cell.strip() for cell in row]


def store_upload(
    stream: IO[bytes], filename: str, user_id: int | None, kind: str = "contacts"
) -> ContactImport:
    """Copy an uploaded file into the database; commits and returns the
    import, status "uploaded", with its header and a guessed mapping."""
    imp = ContactImport(filename=(filename or "contacts.csv")[:300], user_id=user_id, kind=kind)
    db.session.add(imp)
    db.session.flush()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size, seq, head = 0, 0, b""
    while True:
        data = stream.read(CHUNK_BYTES)
        if not data:
            break
        size += len(data)
        if size > MAX_BYTES:
            db.session.rollback()
            raise UploadRefused(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MiB.")
        try:
            decoder.decode(data)
        except UnicodeDecodeError:
            db.session.rollback()
            raise UploadRefused("The file is not UTF-8 text; save it as CSV (UTF-8).") from None
        if len(head) < 64 * 1024:
            head += data[: 64 * 1024]
        # A Core insert: the chunk is not kept in the session afterwards.
        db.session.execute(
            insert(ContactImportChunk),
            [{"firm_id": imp.firm_id, "import_id": imp.id, "seq": seq, "data": data}],
        )
        seq += 1
    if not size:
        db.session.rollback()
        raise UploadRefused("The file is empty.")
    try:
        imp.header = _header_of(head)
    except UploadRefused:
        db.session.rollback()
        raise
    imp.mapping = guess_mapping(imp.header)
    imp.size_bytes = size
    db.session.commit()
    return imp


class _ChunkStream(io.RawIOBase):
    """The stored chunks of one import as one readable byte stream, fetched
    one chunk at a time."""

    def __init__(self, import_id: int):
        self.import_id = import_id
        self.seq = 0
        self.buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self.buffer:
            data = db.session.scalar(
                select(ContactImportChunk.data).where(
                    ContactImportChunk.import_id == self.import_id,
                    ContactImportChunk.seq == self.seq,
                )
            )
            if data is None:
                return 0
            self.seq += 1
            self.buffer = bytes(data)
        n = min(len(target), len(self.buffer))
        target[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n


def read_rows(import_id: int) -> Iterator[tuple[int, list[str]]]:
    """(line number in the file, cells) of every data row, header skipped;
    blank lines are left out. Line numbers count from 1 at the header, as
    a spreadsheet shows them."""
    text = io.TextIOWrapper(
        io.BufferedReader(_ChunkStream(import_id), CHUNK_BYTES), encoding="utf-8-sig", newline=""
    )
    reader = csv.reader(text)
    next(reader, None)
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield reader.line_num, cells


def preview_rows(imp: ContactImport, limit: int = 5) -> list[tuple[int, list[str]]]:
    rows = []
    for line, cells in read_rows(imp.id):
        rows.append((line, cells))
        if len(rows) >= limit:
            break
    return rows


def raw_line(cells: list[str]) -> str:
    """A row as it stood in the file, for the error report."""
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue().rstrip("\r\n")[:4000]


def claim_and_run(import_id: int, kind: str, work: Callable[[ContactImport], None]) -> None:
    """An import job's frame: claim the import of ``kind`` (a second copy of
    the job, or one started while another still makes progress, does
    nothing), run ``work`` inside the import's firm, and mark the import
    failed, keeping the error, if ``work`` raises."""
    moment = now()
    claimed = db.session.execute(
        update(ContactImport)
        .where(
            ContactImport.id == import_id,
            ContactImport.kind == kind,
            or_(
                ContactImport.status == "queued",
                and_(
                    ContactImport.status == "running", ContactImport.updated_at < moment - STALLED
                ),
            ),
        )
        .values(status="running", updated_at=moment)
        .execution_options(all_firms=True)
    ).rowcount
    db.session.commit()
    if claimed != 1:
        return
    imp = db.session.scalars(
        select(ContactImport).where(ContactImport.id == import_id).execution_options(all_firms=True)
    ).one()
    with firm_context(imp.firm_id):
        try:
            work(imp)
        except Exception as exc:
            db.session.rollback()
            imp = db.session.get(ContactImport, import_id)
            imp.status, imp.finished_at = "failed", now()
            imp.error = f"{type(exc).__name__}: {exc}"[:500]
            db.session.commit()
            raise
