"""orders.type holds the longest order type name ("take_profit_limit", 17 characters)

0006 added take-profit and trailing-stop orders, whose names outgrew the column's
12 characters: PostgreSQL refused such an order's projection row (SQLite does not
enforce lengths).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('type', existing_type=sa.String(length=12),
                              type_=sa.String(length=20), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('type', existing_type=sa.String(length=20),
                              type_=sa.String(length=12), existing_nullable=False)
