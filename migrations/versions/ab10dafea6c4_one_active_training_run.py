"""one active training run: a unique index on a constant over queued and running runs

Revision ID: ab10dafea6c4
Revises: 5d2e8a91b7c4
Create Date: 2026-12-01 05:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ab10dafea6c4'
down_revision = '5d2e8a91b7c4'
branch_labels = None
depends_on = None

ACTIVE = "status IN ('queued', 'running')"


def upgrade():
    # Runs queued or running side by side before this index (simultaneous requests) are all but
    # the oldest marked failed, so the index can be built.
    op.execute(
        "UPDATE training_runs SET status = 'failed', progress = 'failed', "
        "error = 'queued twice by simultaneous requests; the oldest run was kept' "
        f"WHERE {ACTIVE} AND id > (SELECT MIN(id) FROM training_runs WHERE {ACTIVE})"
    )
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.create_index(
            'uq_training_runs_one_active',
            [sa.text('(1)')],
            unique=True,
            sqlite_where=sa.text(ACTIVE),
            postgresql_where=sa.text(ACTIVE),
        )


def downgrade():
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_index('uq_training_runs_one_active')
