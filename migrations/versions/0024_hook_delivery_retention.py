"""REST hook deliveries indexed by age, for retention

Deliveries older than EVENT_RETENTION_DAYS are deleted in batches by the
retention job, oldest first (app/automation/operations/retention.py).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02 16:20:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("hook_deliveries") as batch_op:
        batch_op.create_index("ix_hook_deliveries_created", ["created_at"])


def downgrade():
    with op.batch_alter_table("hook_deliveries") as batch_op:
        batch_op.drop_index("ix_hook_deliveries_created")
