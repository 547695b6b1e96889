"""order details: trigger source, expiry and strategy on the orders projection

The engine keeps only recent finished orders in memory; older ones are read from
this table, which must therefore hold everything an order's answer shows (its
trigger source and GTD expiry) and its strategy (for reports per strategy).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

import app.store.tables

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trigger_source', sa.String(length=8), nullable=False,
                                      server_default='last'))
        batch_op.add_column(sa.Column('expire_at', app.store.tables.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('strategy', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_orders_strategy', ['strategy'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_strategy')
        batch_op.drop_column('strategy')
        batch_op.drop_column('expire_at')
        batch_op.drop_column('trigger_source')
