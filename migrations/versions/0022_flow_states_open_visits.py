"""flow states: a partial index of the open visits by execution

A batch that resumes executions reads their open visits (waiting, held by
a send gate, failed awaiting a retry) by execution id. Through the unique
key the planner went for a scan of the whole month's partition whenever
its statistics predated a bulk hold; this index holds the open visits only
(app/models/execution.py). On PostgreSQL it is made on the partitioned
table, so every partition, and every month made later, has it.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 15:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

OPEN_VISIT_WHERE = "action_status IN ('waiting', 'deferred', 'failed')"


def upgrade():
    op.create_index(
        "ix_flow_states_open_visits",
        "contact_flow_states",
        ["execution_id"],
        postgresql_where=sa.text(OPEN_VISIT_WHERE),
        sqlite_where=sa.text(OPEN_VISIT_WHERE),
    )


def downgrade():
    op.drop_index("ix_flow_states_open_visits", table_name="contact_flow_states")
