"""condition wait index

Executions waiting for a condition are woken when their contact changes
(``condition_wakes.py``); a partial index on ``contact_id`` over just
those rows keeps that lookup cheap, and empty when no workflow waits for
a condition.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 05:25:00.000000

"""

import sqlalchemy as sa
from alembic import op

import app.models.base  # noqa: F401  (column types)

# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CONDITION_WAIT = "status = 'waiting' AND wait_reason = 'condition'"


def upgrade():
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_executions_condition_waits",
            ["contact_id"],
            unique=False,
            postgresql_where=sa.text(CONDITION_WAIT),
            sqlite_where=sa.text(CONDITION_WAIT),
        )


def downgrade():
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_condition_waits")
