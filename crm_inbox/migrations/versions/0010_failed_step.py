"""inbound messages: the step a failed message failed in

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 22:53:26.477860

Messages that failed before keep an empty step: their error text still says what went wrong.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_step', sa.String(length=60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_column('failed_step')
