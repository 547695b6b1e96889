"""client page indexes: orders, fills and closed trades by (client, newest first)

A client's page of fills or trades reads its own rows in order from the index,
however many other clients' rows there are; the single-column client indexes
are covered by these and dropped.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_client')
        batch_op.create_index('ix_orders_client_order_id', ['client', 'order_id'], unique=False)
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_index('ix_fills_client')
        batch_op.create_index('ix_fills_client_fill_id', ['client', 'fill_id'], unique=False)
    with op.batch_alter_table('closed_trades', schema=None) as batch_op:
        batch_op.drop_index('ix_closed_trades_client')
        batch_op.create_index('ix_closed_trades_client_closed_at', ['client', 'closed_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('closed_trades', schema=None) as batch_op:
        batch_op.drop_index('ix_closed_trades_client_closed_at')
        batch_op.create_index('ix_closed_trades_client', ['client'], unique=False)
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_index('ix_fills_client_fill_id')
        batch_op.create_index('ix_fills_client', ['client'], unique=False)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_client_order_id')
        batch_op.create_index('ix_orders_client', ['client'], unique=False)
