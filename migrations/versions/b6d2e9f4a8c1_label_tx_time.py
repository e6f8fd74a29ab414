"""labels.tx_time: the labelled transaction's time, copied onto its labels, with a partial index on
the labels given (imports aside) by that time: the labels of a period's transactions are read from
the index alone

Revision ID: b6d2e9f4a8c1
Revises: f3c8a1d5e7b2
Create Date: 2026-12-01 20:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b6d2e9f4a8c1'
down_revision = 'f3c8a1d5e7b2'
branch_labels = None
depends_on = None

GIVEN = "source != 'import'"


def upgrade():
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tx_time', sa.BigInteger(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE labels SET tx_time = "
            "(SELECT t.tx_time FROM transactions t WHERE t.id = labels.transaction_id)"
        )
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.alter_column('tx_time', existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_index(
            'ix_labels_given_by_tx_time',
            ['tx_time', 'known_at', 'transaction_id', 'fraud', 'source'],
            unique=False,
            sqlite_where=sa.text(GIVEN),
            postgresql_where=sa.text(GIVEN),
        )


def downgrade():
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index('ix_labels_given_by_tx_time')
        batch_op.drop_column('tx_time')
