"""arena: side-by-side picks between two model versions (arena_picks)

Revision ID: 0300_arena
Revises: 0200_registry
Create Date: 2026-12-01 23:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0300_arena'
down_revision = '0200_registry'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('arena_picks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('turn_id', sa.Integer(), nullable=False),
    sa.Column('a_message_id', sa.Integer(), nullable=False),
    sa.Column('b_message_id', sa.Integer(), nullable=False),
    sa.Column('a_version', sa.String(length=128), nullable=False),
    sa.Column('b_version', sa.String(length=128), nullable=False),
    sa.Column('choice', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['a_message_id'], ['messages.id'], name=op.f('fk_arena_picks_a_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['b_message_id'], ['messages.id'], name=op.f('fk_arena_picks_b_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_arena_picks_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['turn_id'], ['messages.id'], name=op.f('fk_arena_picks_turn_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_arena_picks_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_picks')),
    sa.UniqueConstraint('turn_id', name=op.f('uq_arena_picks_turn_id'))
    )
    with op.batch_alter_table('arena_picks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arena_picks_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_arena_picks_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('arena_picks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arena_picks_user_id'))
        batch_op.drop_index(batch_op.f('ix_arena_picks_conversation_id'))
    op.drop_table('arena_picks')
