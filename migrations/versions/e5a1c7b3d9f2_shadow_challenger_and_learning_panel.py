"""shadow challenger: predictions.challenger_version/score; learning_rows

Revision ID: e5a1c7b3d9f2
Revises: d7a3c9e1f2b4
Create Date: 2026-12-01 13:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e5a1c7b3d9f2'
down_revision = 'd7a3c9e1f2b4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('challenger_version', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('challenger_score', sa.Double(), nullable=True))
    op.create_table(
        'learning_rows',
        sa.Column('version', sa.String(length=16), nullable=False),
        sa.Column('replaced', sa.String(length=16), nullable=True),
        sa.Column('promoted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('figures', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('version'),
    )


def downgrade():
    op.drop_table('learning_rows')
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_column('challenger_score')
        batch_op.drop_column('challenger_version')
