"""chat_messages: a Discord message answers one chat turn (unique id); the pages a reply streams into

Revision ID: 0004_chat
Revises: 0003_posts
Create Date: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004_chat'
down_revision: str | None = '0003_posts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A gateway replay could store one Discord message twice before this index existed: keep the first.
    op.execute(
        "UPDATE chat_messages SET discord_message_id = NULL WHERE discord_message_id IS NOT NULL AND id NOT IN "
        "(SELECT MIN(id) FROM chat_messages WHERE discord_message_id IS NOT NULL GROUP BY discord_message_id)"
    )
    with op.batch_alter_table('chat_messages') as batch:
        batch.add_column(sa.Column('discord_page_ids', sa.JSON(), nullable=True))
        batch.drop_index(batch.f('ix_chat_messages_discord_message_id'))
        batch.create_index(batch.f('ix_chat_messages_discord_message_id'), ['discord_message_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('chat_messages') as batch:
        batch.drop_index(batch.f('ix_chat_messages_discord_message_id'))
        batch.create_index(batch.f('ix_chat_messages_discord_message_id'), ['discord_message_id'], unique=False)
        batch.drop_column('discord_page_ids')
