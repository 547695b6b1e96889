"""arbitrage: the funding-rate arbitrage's trades and leg-outs (seed 001)

Projections of ArbTradeUpdated (each trade as it last stood) and LegOutDetected, so
the trade history is read a page at a time however long it is; the engine keeps only
the latest closed trades in memory.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

import app.store.tables

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'arb_trades',
        sa.Column('trade_id', sa.String(length=40), nullable=False),
        sa.Column('strategy_id', sa.String(length=64), nullable=False),
        sa.Column('client', sa.String(length=64), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=False),
        sa.Column('long_venue', sa.String(length=64), nullable=False),
        sa.Column('short_venue', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', app.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_at', app.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column('exit_reason', sa.String(length=40), nullable=True),
        sa.Column('projected_profit', app.store.tables.DecimalText(length=64), nullable=False),
        sa.Column('actual_profit', app.store.tables.DecimalText(length=64), nullable=True),
        sa.Column('record', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('trade_id'),
    )
    with op.batch_alter_table('arb_trades', schema=None) as batch_op:
        batch_op.create_index('ix_arb_trades_client', ['client'], unique=False)
        batch_op.create_index('ix_arb_trades_strategy_created', ['strategy_id', 'created_at'],
                              unique=False)
    op.create_table(
        'arb_leg_outs',
        sa.Column('trade_id', sa.String(length=40), nullable=False),
        sa.Column('phase', sa.String(length=8), nullable=False),
        sa.Column('strategy_id', sa.String(length=64), nullable=False),
        sa.Column('client', sa.String(length=64), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=False),
        sa.Column('at', app.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column('loss', app.store.tables.DecimalText(length=64), nullable=False),
        sa.Column('record', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('trade_id', 'phase'),
    )
    with op.batch_alter_table('arb_leg_outs', schema=None) as batch_op:
        batch_op.create_index('ix_arb_leg_outs_client', ['client'], unique=False)


def downgrade() -> None:
    op.drop_table('arb_leg_outs')
    op.drop_table('arb_trades')
