"""Task posts in channels: channel schedules, posts, the post-to-message mapping (many-to-many),
reactions on posts, partial reaction rankings and pending member notices. The one-to-one
messages.discord_* columns give way to the mapping.

Revision ID: 0003_posts
Revises: 0002
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = '0003_posts'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('task_channels',
    sa.Column('channel_id', sa.BigInteger(), nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('interval_minutes', sa.Integer(), nullable=False),
    sa.Column('kinds', sa.JSON(), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('last_posted_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_task_channels'))
    )
    with op.batch_alter_table('task_channels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_channels_guild_id'), ['guild_id'], unique=False)

    op.create_table('bot_posts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('discord_message_id', sa.BigInteger(), nullable=False),
    sa.Column('channel_id', sa.BigInteger(), nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target_message_id', sa.Integer(), nullable=True),
    sa.Column('tree_id', sa.Integer(), nullable=True),
    sa.Column('lang', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('closed_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['target_message_id'], ['messages.id'], name=op.f('fk_bot_posts_target_message_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tree_id'], ['message_trees.id'], name=op.f('fk_bot_posts_tree_id_message_trees'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bot_posts')),
    sa.UniqueConstraint('discord_message_id', name=op.f('uq_bot_posts_discord_message_id'))
    )
    with op.batch_alter_table('bot_posts', schema=None) as batch_op:
        batch_op.create_index('ix_bot_posts_channel_closed', ['channel_id', 'closed_at'], unique=False)
        batch_op.create_index('ix_bot_posts_tree', ['tree_id'], unique=False)

    op.create_table('post_messages',
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=12), nullable=False),
    sa.Column('position', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_post_messages_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['post_id'], ['bot_posts.id'], name=op.f('fk_post_messages_post_id_bot_posts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('post_id', 'message_id', name=op.f('pk_post_messages'))
    )
    with op.batch_alter_table('post_messages', schema=None) as batch_op:
        batch_op.create_index('ix_post_messages_message', ['message_id'], unique=False)

    op.create_table('post_reactions',
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('emoji', sa.String(length=32), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['post_id'], ['bot_posts.id'], name=op.f('fk_post_reactions_post_id_bot_posts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_post_reactions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('post_id', 'user_id', 'emoji', name=op.f('pk_post_reactions'))
    )
    with op.batch_alter_table('post_reactions', schema=None) as batch_op:
        batch_op.create_index('ix_post_reactions_user', ['user_id'], unique=False)

    op.create_table('post_rank_orders',
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('positions', sa.JSON(), nullable=False),
    sa.Column('updated_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['post_id'], ['bot_posts.id'], name=op.f('fk_post_rank_orders_post_id_bot_posts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_post_rank_orders_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('post_id', 'user_id', name=op.f('pk_post_rank_orders'))
    )

    op.create_table('member_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('discord_user_id', sa.BigInteger(), nullable=False),
    sa.Column('text', sa.String(length=500), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_notices'))
    )
    with op.batch_alter_table('member_notices', schema=None) as batch_op:
        batch_op.create_index('ix_member_notices_pending', ['discord_user_id', 'delivered_at'], unique=False)

    # The mapping replaces the one-to-one columns. Dropped in place: a batch rebuild of `messages`
    # would run its DROP TABLE under foreign keys and cascade into every table that refers to it.
    op.drop_index('ix_messages_discord_message_id', table_name='messages')
    op.execute('ALTER TABLE messages DROP COLUMN discord_message_id')
    op.execute('ALTER TABLE messages DROP COLUMN discord_channel_id')


def downgrade() -> None:
    op.execute('ALTER TABLE messages ADD COLUMN discord_channel_id BIGINT')
    op.execute('ALTER TABLE messages ADD COLUMN discord_message_id BIGINT')
    op.create_index('ix_messages_discord_message_id', 'messages', ['discord_message_id'], unique=False)
    op.drop_table('member_notices')
    op.drop_table('post_rank_orders')
    op.drop_table('post_reactions')
    op.drop_table('post_messages')
    op.drop_table('bot_posts')
    op.drop_table('task_channels')
