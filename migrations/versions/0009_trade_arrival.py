"""trade arrival prices: the closed trades' entry and exit arrival prices

The quantity-weighted arrival price (mid at submission, or trigger price) of each
trade's entry and exit fills, so its slippage against arrival is read with the trade.
Null for trades closed before the engine recorded arrivals.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

import app.store.tables

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('closed_trades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entry_arrival', app.store.tables.DecimalText(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column('exit_arrival', app.store.tables.DecimalText(length=64),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('closed_trades', schema=None) as batch_op:
        batch_op.drop_column('exit_arrival')
        batch_op.drop_column('entry_arrival')
