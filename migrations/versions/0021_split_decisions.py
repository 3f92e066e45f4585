"""split decisions: an experiment's winner, recorded once

One row per split whose ``auto_winner`` decided (docs/EXPERIMENTS.md):
winner, always-valid p-value, alpha, test, metric, the per-variant numbers
and the moment. Unique on (workflow, node_id): two workers deciding at the
same moment insert one row.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 15:30:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from app.models.base import UTCDateTime

# revision identifiers, used by Alembic.
revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "split_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("winner", sa.String(length=50), nullable=False),
        sa.Column("p_value", sa.Double(), nullable=False),
        sa.Column("alpha", sa.Double(), nullable=False),
        sa.Column("test", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=120), nullable=False),
        sa.Column(
            "numbers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["firm_id"],
            ["firms.id"],
            name=op.f("fk_split_decisions_firm_id_firms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_split_decisions_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_split_decisions")),
        sa.UniqueConstraint(
            "workflow_id", "node_id", name=op.f("uq_split_decisions_workflow_id_node_id")
        ),
    )
    with op.batch_alter_table("split_decisions") as batch_op:
        batch_op.create_index(batch_op.f("ix_split_decisions_firm_id"), ["firm_id"])
        batch_op.create_index(batch_op.f("ix_split_decisions_workflow_id"), ["workflow_id"])


def downgrade():
    with op.batch_alter_table("split_decisions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_split_decisions_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_split_decisions_firm_id"))
    op.drop_table("split_decisions")
