"""workflow forecasts: a draft replayed over recorded events, its figures

One row per forecast job (docs/FORECAST.md): its status and progress while
it runs, its result (enrollments, messages per day, per-step counts and
holds, where contacts already inside would go) once done, so any process
can answer ``GET .../forecast/{job}/``.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 12:40:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from app.models.base import UTCDateTime

# revision identifiers, used by Alembic.
revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "workflow_forecasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_events", sa.Integer(), nullable=True),
        sa.Column("processed_events", sa.Integer(), nullable=False),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["firm_id"],
            ["firms.id"],
            name=op.f("fk_workflow_forecasts_firm_id_firms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_workflow_forecasts_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_forecasts_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_forecasts")),
    )
    with op.batch_alter_table("workflow_forecasts") as batch_op:
        batch_op.create_index(batch_op.f("ix_workflow_forecasts_firm_id"), ["firm_id"])
        batch_op.create_index(batch_op.f("ix_workflow_forecasts_workflow_id"), ["workflow_id"])


def downgrade():
    with op.batch_alter_table("workflow_forecasts") as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_forecasts_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_workflow_forecasts_firm_id"))
    op.drop_table("workflow_forecasts")
