"""CSV imports, of contacts or of the suppression list: the upload (kept
in the database, in chunks, so any worker on any host can read it), its
progress and its per-row errors."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, Timestamps, UTCDateTime
from app.tenancy import FirmScoped

# uploaded: waiting for its column mapping; queued: the job is on its way;
# running; done; failed (a fatal problem, in ``error``).
IMPORT_STATUSES = ("uploaded", "queued", "running", "done", "failed")
# What the rows are: contacts (app/automation/crm/import_rows.py) or
# suppression list entries (app/automation/delivery/suppression_import.py).
IMPORT_KINDS = ("contacts", "suppressions")


class ContactImport(FirmScoped, Timestamps, db.Model):
    __tablename__ = "contact_imports"
    __table_args__ = (Index("ix_contact_imports_firm_created", "firm_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20), default="contacts", server_default="contacts")
    filename: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20), default="uploaded")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # The header row's cells, and the target of each column (None: skip).
    header: Mapped[list] = mapped_column(JSONType, default=list)
    mapping: Mapped[list] = mapped_column(JSONType, default=list)
    # "skip" (report the row) or "update" (fill the existing contact).
    on_existing: Mapped[str] = mapped_column(String(10), default="skip")
    total_rows: Mapped[int | None] = mapped_column()
    processed_rows: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    updated_count: Mapped[int] = mapped_column(default=0)
    error_count: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user = relationship("User")

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        if not self.total_rows:
            return 0
        return min(99, int(100 * self.processed_rows / self.total_rows))

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def stalled_at(self, moment: datetime, after) -> bool:
        """Queued or running, and unchanged for ``after``: its job was lost."""
        return self.status in ("queued", "running") and self.updated_at < moment - after


class ContactImportChunk(FirmScoped, db.Model):
    """A slice of the uploaded file, in upload order."""

    __tablename__ = "contact_import_chunks"
    __table_args__ = (UniqueConstraint("import_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("contact_imports.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column()
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ContactImportError(FirmScoped, db.Model):
    """One bad row: its line in the file and what was wrong."""

    __tablename__ = "contact_import_errors"
    __table_args__ = (Index("ix_contact_import_errors_import_row", "import_id", "row_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("contact_imports.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column()
    email: Mapped[str] = mapped_column(String(320), default="")
    column: Mapped[str] = mapped_column(String(100), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    # The row as it was in the file (CSV), to fix and import again.
    raw: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
