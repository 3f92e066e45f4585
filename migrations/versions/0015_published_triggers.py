"""published triggers: the bus reads what was published, not the draft

``workflow_triggers`` was both what the builder and the API edit and what
the event bus, the scheduler and the direct starts read, so an edit of an
active workflow's trigger went live at once, approval or not. The table
becomes ``published_triggers`` (renamed: the executions' foreign key, the
date triggers' cursors and every id stay as they are) and a new
``workflow_triggers`` holds the draft, copied from it with the same ids.
Only publishing writes ``published_triggers`` from then on
(app/automation/lifecycle/publishing.py). Workflows never published keep
no published triggers.

Downgrade keeps the published triggers as the workflows' triggers; draft
trigger edits not published are lost.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 06:30:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.models.base import UTCDateTime

# revision identifiers, used by Alembic.
revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

OLD_INDEXES = {
    "ix_workflow_triggers_firm_id": ["firm_id"],
    "ix_workflow_triggers_firm_type": ["firm_id", "trigger_type", "is_active"],
    "ix_workflow_triggers_workflow_id": ["workflow_id"],
}
COLUMNS = "id, firm_id, workflow_id, trigger_type, configuration, is_active, created_at, updated_at"


def _indexes(table: str) -> dict[str, list[str]]:
    return {name.replace("workflow_triggers", table): cols for name, cols in OLD_INDEXES.items()}


def _rename_constraints(old: str, new: str) -> None:
    """PostgreSQL: names follow the table (a PK's index name must be free
    for the new table's). SQLite keeps the names in the table's text."""
    for table, before, after in (
        (new, f"pk_{old}", f"pk_{new}"),
        (new, f"fk_{old}_firm_id_firms", f"fk_{new}_firm_id_firms"),
        (new, f"fk_{old}_workflow_id_workflows", f"fk_{new}_workflow_id_workflows"),
        (
            "workflow_executions",
            f"fk_workflow_executions_trigger_id_{old}",
            f"fk_workflow_executions_trigger_id_{new}",
        ),
    ):
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {before} TO {after}")
    op.execute(f"ALTER SEQUENCE {old}_id_seq RENAME TO {new}_id_seq")


def _draft_table() -> None:
    op.create_table(
        "workflow_triggers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("trigger_type", sa.String(length=50), nullable=False),
        sa.Column(
            "configuration",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["firm_id"],
            ["firms.id"],
            name="fk_workflow_triggers_firm_id_firms",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name="fk_workflow_triggers_workflow_id_workflows",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_triggers"),
    )
    for name, cols in OLD_INDEXES.items():
        op.create_index(name, "workflow_triggers", cols)


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in OLD_INDEXES:
        op.drop_index(name, table_name="workflow_triggers")
    # SQLite (>= 3.26) and PostgreSQL both repoint the executions' foreign
    # key: no table is rebuilt, no row moves.
    op.rename_table("workflow_triggers", "published_triggers")
    if postgres:
        _rename_constraints("workflow_triggers", "published_triggers")
    op.add_column("published_triggers", sa.Column("draft_id", sa.Integer(), nullable=True))
    op.execute("UPDATE published_triggers SET draft_id = id")
    for name, cols in _indexes("published_triggers").items():
        op.create_index(name, "published_triggers", cols)

    _draft_table()
    op.execute(
        f"INSERT INTO workflow_triggers ({COLUMNS}) SELECT {COLUMNS} FROM published_triggers"
    )
    if postgres:
        op.execute(
            "SELECT setval(pg_get_serial_sequence('workflow_triggers', 'id'), "
            "COALESCE((SELECT MAX(id) FROM workflow_triggers), 0) + 1, false)"
        )
    # A draft never published has nothing live.
    op.execute(
        "DELETE FROM published_triggers WHERE workflow_id IN "
        "(SELECT id FROM workflows WHERE status = 'draft' AND version = 0)"
    )


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in OLD_INDEXES:
        op.drop_index(name, table_name="workflow_triggers")
    op.drop_table("workflow_triggers")
    for name in _indexes("published_triggers"):
        op.drop_index(name, table_name="published_triggers")
    op.execute("ALTER TABLE published_triggers DROP COLUMN draft_id")
    op.rename_table("published_triggers", "workflow_triggers")
    if postgres:
        _rename_constraints("published_triggers", "workflow_triggers")
    for name, cols in OLD_INDEXES.items():
        op.create_index(name, "workflow_triggers", cols)
