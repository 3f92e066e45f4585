"""workflow edit history

The builder's undo and redo: each canvas edit keeps the steps and
connections it touched, before and after (``app/models/edit_history.py``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:30:00.000000

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.base  # noqa: F401  (column types)

# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "workflow_edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column(
            "patch",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("undone", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["firm_id"],
            ["firms.id"],
            name=op.f("fk_workflow_edits_firm_id_firms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_workflow_edits_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_edits_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_edits")),
    )
    with op.batch_alter_table("workflow_edits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workflow_edits_firm_id"), ["firm_id"], unique=False)
        batch_op.create_index(
            "ix_workflow_edits_workflow_id_id", ["workflow_id", "id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("workflow_edits", schema=None) as batch_op:
        batch_op.drop_index("ix_workflow_edits_workflow_id_id")
        batch_op.drop_index(batch_op.f("ix_workflow_edits_firm_id"))
    op.drop_table("workflow_edits")
