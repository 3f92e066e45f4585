"""REST hook subscriptions and their deliveries

A subscription sends one event of the firm (optionally of one workflow)
to a URL, signed with its own secret; a delivery is one fact for one
subscription, written with the fact (docs/CONTRACT.md "REST hooks").

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 15:12:34

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import app.models.base

# revision identifiers, used by Alembic.
revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "hook_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_url", sa.String(length=2000), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("ended_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.Text(), nullable=True),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_hook_subscriptions_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["firm_id"],
            ["firms.id"],
            name=op.f("fk_hook_subscriptions_firm_id_firms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_hook_subscriptions_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hook_subscriptions")),
    )
    with op.batch_alter_table("hook_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_hook_subscriptions_firm_event", ["firm_id", "event", "active"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_hook_subscriptions_firm_id"), ["firm_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_hook_subscriptions_workflow_id"), ["workflow_id"], unique=False
        )

    op.create_table(
        "hook_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("fact_key", sa.String(length=100), nullable=False),
        sa.Column(
            "execution_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("workflow_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("occurred_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["firm_id"],
            ["firms.id"],
            name=op.f("fk_hook_deliveries_firm_id_firms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["hook_subscriptions.id"],
            name=op.f("fk_hook_deliveries_subscription_id_hook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hook_deliveries")),
        sa.UniqueConstraint(
            "subscription_id", "fact_key", name=op.f("uq_hook_deliveries_subscription_id_fact_key")
        ),
    )
    with op.batch_alter_table("hook_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hook_deliveries_firm_id"), ["firm_id"], unique=False)
        batch_op.create_index(
            "ix_hook_deliveries_status_next", ["status", "next_attempt_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("hook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_hook_deliveries_status_next")
        batch_op.drop_index(batch_op.f("ix_hook_deliveries_firm_id"))

    op.drop_table("hook_deliveries")
    with op.batch_alter_table("hook_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hook_subscriptions_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_hook_subscriptions_firm_id"))
        batch_op.drop_index("ix_hook_subscriptions_firm_event")

    op.drop_table("hook_subscriptions")
