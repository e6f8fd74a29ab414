"""predictions remember their API token; API tokens have a feedback scope

Revision ID: 5d2e8a91b7c4
Revises: c4e1a7d2f9b3
Create Date: 2026-12-01 04:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5d2e8a91b7c4'
down_revision = 'c4e1a7d2f9b3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('scope', sa.String(length=8), server_default='own', nullable=False)
        )

    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_token_id', sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f('ix_predictions_api_token_id'), ['api_token_id'], unique=False
        )
        batch_op.create_foreign_key(
            'fk_predictions_api_token_id_api_tokens',
            'api_tokens',
            ['api_token_id'],
            ['id'],
            ondelete='SET NULL',
        )


def downgrade():
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_predictions_api_token_id_api_tokens', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_predictions_api_token_id'))
        batch_op.drop_column('api_token_id')

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('scope')
