"""node_status: last success and last error of each process's background thread

Revision ID: c3f1e2d4a5b6
Revises: ab10dafea6c4
Create Date: 2026-12-01 05:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3f1e2d4a5b6'
down_revision = 'ab10dafea6c4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('node_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('node_status', schema=None) as batch_op:
        batch_op.drop_column('last_error_at')
        batch_op.drop_column('last_error')
        batch_op.drop_column('last_success_at')
