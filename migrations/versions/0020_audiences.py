"""audiences: saved dynamic segments, their members, enrollment jobs

An audience is a rule group over contacts (docs/CONTRACT.md "Experiments,
audiences, forecasts, integrations"); ``audience_members`` holds who
matches now (inserting or deleting a row is what fires segment_entered /
segment_left, once); ``audience_enrollments`` is the progress of an
"enroll this audience now" job.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 15:30:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from app.models.base import UTCDateTime

# revision identifiers, used by Alembic.
revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audiences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("match", sa.String(length=3), nullable=False),
        sa.Column(
            "rules",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("timed", sa.Boolean(), nullable=False),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["firm_id"], ["firms.id"], name=op.f("fk_audiences_firm_id_firms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audiences")),
        sa.UniqueConstraint("firm_id", "name", name=op.f("uq_audiences_firm_id_name")),
    )
    with op.batch_alter_table("audiences") as batch_op:
        batch_op.create_index(batch_op.f("ix_audiences_firm_id"), ["firm_id"])
    op.create_table(
        "audience_members",
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("entered_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["audiences.id"],
            name=op.f("fk_audience_members_audience_id_audiences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_audience_members_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("audience_id", "contact_id", name=op.f("pk_audience_members")),
    )
    with op.batch_alter_table("audience_members") as batch_op:
        batch_op.create_index("ix_audience_members_contact", ["contact_id"])
    op.create_table(
        "audience_enrollments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.Column("last_contact_id", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["firm_id"],
            ["firms.id"],
            name=op.f("fk_audience_enrollments_firm_id_firms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["audiences.id"],
            name=op.f("fk_audience_enrollments_audience_id_audiences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_audience_enrollments_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_audience_enrollments_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_enrollments")),
    )
    with op.batch_alter_table("audience_enrollments") as batch_op:
        batch_op.create_index(batch_op.f("ix_audience_enrollments_firm_id"), ["firm_id"])
        batch_op.create_index(batch_op.f("ix_audience_enrollments_audience_id"), ["audience_id"])


def downgrade():
    with op.batch_alter_table("audience_enrollments") as batch_op:
        batch_op.drop_index(batch_op.f("ix_audience_enrollments_audience_id"))
        batch_op.drop_index(batch_op.f("ix_audience_enrollments_firm_id"))
    op.drop_table("audience_enrollments")
    with op.batch_alter_table("audience_members") as batch_op:
        batch_op.drop_index("ix_audience_members_contact")
    op.drop_table("audience_members")
    with op.batch_alter_table("audiences") as batch_op:
        batch_op.drop_index(batch_op.f("ix_audiences_firm_id"))
    op.drop_table("audiences")
