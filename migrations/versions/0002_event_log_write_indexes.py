"""event log: drop the type and order_id indexes

Nothing reads the log by event type or by order (reads go by sequence, and by
client for scoped keys), while every appended event paid for both indexes:
they were half the cost of inserting an event.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('event_log', schema=None) as batch_op:
        batch_op.drop_index('ix_event_log_type')
        batch_op.drop_index('ix_event_log_order_id')


def downgrade() -> None:
    with op.batch_alter_table('event_log', schema=None) as batch_op:
        batch_op.create_index('ix_event_log_order_id', ['order_id'], unique=False)
        batch_op.create_index('ix_event_log_type', ['type'], unique=False)
