"""one active execution per contact

A contact is inside a workflow at most once at a time (test runs aside):
a partial unique index on (workflow_id, contact_id) over running and
waiting executions settles enrollments that race, whatever their size.
Before it is built, any contact found inside a workflow more than once
keeps its oldest execution; the later ones are canceled (with an audit
note in ``last_error``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 05:03:19.012494

"""

import sqlalchemy as sa
from alembic import op

import app.models.base  # noqa: F401  (column types)

# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('running', 'waiting') AND NOT test_mode"

CANCEL_SECOND_ENTRIES = f"""
UPDATE workflow_executions SET
    status = 'canceled',
    completed_at = CURRENT_TIMESTAMP,
    wake_at = NULL,
    lease_owner = NULL,
    lease_until = NULL,
    last_error = 'canceled by migration 0003: the contact was already inside this workflow'
WHERE {ACTIVE}
  AND EXISTS (
    SELECT 1 FROM workflow_executions AS older
    WHERE older.workflow_id = workflow_executions.workflow_id
      AND older.contact_id = workflow_executions.contact_id
      AND older.id < workflow_executions.id
      AND older.status IN ('running', 'waiting') AND NOT older.test_mode)
"""


def upgrade():
    op.execute(CANCEL_SECOND_ENTRIES)
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.create_index(
            "uq_executions_one_active_per_contact",
            ["workflow_id", "contact_id"],
            unique=True,
            postgresql_where=sa.text(ACTIVE),
            sqlite_where=sa.text(ACTIVE),
        )


def downgrade():
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_index("uq_executions_one_active_per_contact")
