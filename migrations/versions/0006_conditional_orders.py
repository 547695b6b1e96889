"""conditional orders: trailing-stop callback and activation, close-position flag

Trailing stops (callback rate, optional activation price) and close-position stops
are kept on the orders projection, which answers for orders that left the engine's
memory (as 0005 did for trigger source and expiry).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

import app.store.tables

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('callback_rate', app.store.tables.DecimalText(),
                                      nullable=True))
        batch_op.add_column(sa.Column('activation_price', app.store.tables.DecimalText(),
                                      nullable=True))
        batch_op.add_column(sa.Column('close_position', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('close_position')
        batch_op.drop_column('activation_price')
        batch_op.drop_column('callback_rate')
