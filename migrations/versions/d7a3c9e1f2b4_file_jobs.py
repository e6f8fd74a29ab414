"""file_jobs: files uploaded on "Score a file" and their scoring jobs

Revision ID: d7a3c9e1f2b4
Revises: c3f1e2d4a5b6
Create Date: 2026-12-01 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd7a3c9e1f2b4'
down_revision = 'c3f1e2d4a5b6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'file_jobs',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('key', sa.String(length=32), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('file_name', sa.String(length=255), nullable=False),
        sa.Column('store', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('node', sa.String(length=120), nullable=False),
        sa.Column('worker', sa.String(length=120), nullable=True),
        sa.Column('rows_done', sa.BigInteger(), nullable=False),
        sa.Column('rows_total', sa.BigInteger(), nullable=True),
        sa.Column('summary', sa.JSON(), nullable=True),
        sa.Column('error', sa.String(length=2000), nullable=True),
        sa.Column('upload_path', sa.String(length=1000), nullable=True),
        sa.Column('result_path', sa.String(length=1000), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    with op.batch_alter_table('file_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_file_jobs_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_file_jobs_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_file_jobs_status'), ['status'], unique=False)


def downgrade():
    with op.batch_alter_table('file_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_file_jobs_status'))
        batch_op.drop_index(batch_op.f('ix_file_jobs_owner_id'))
        batch_op.drop_index(batch_op.f('ix_file_jobs_created_at'))
    op.drop_table('file_jobs')
