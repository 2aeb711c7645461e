"""privacy: raw bytes deleted (retention, erasure) and the erased Message-ID hash

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw_deleted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('message_id_sha256', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_inbound_messages_message_id_sha256'), ['message_id_sha256'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_message_id_sha256'))
        batch_op.drop_column('message_id_sha256')
        batch_op.drop_column('raw_deleted_at')
