"""The index on erased messages' Message-ID hashes holds only tombstones (a partial index).

Every other row has no hash: a full index held one NULL key for all of them, and after ANALYZE SQLite
preferred scanning the whole table to find a tombstone, once for each message processed.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 'ix_inbound_messages_message_id_sha256'
_TOMBSTONES = sa.text('message_id_sha256 IS NOT NULL')


def upgrade() -> None:
    op.drop_index(_NAME, table_name='inbound_messages')
    op.create_index(_NAME, 'inbound_messages', ['message_id_sha256'],
                    sqlite_where=_TOMBSTONES, postgresql_where=_TOMBSTONES)


def downgrade() -> None:
    op.drop_index(_NAME, table_name='inbound_messages')
    op.create_index(_NAME, 'inbound_messages', ['message_id_sha256'])
