"""labels.known_at: the moment a label became known (imported labels: the Handbook's delay after
their transaction; others: when given)

Revision ID: e8b4d2f6a1c3
Revises: d7a3c9e1f2b4
Create Date: 2026-12-01 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e8b4d2f6a1c3'
down_revision = 'd7a3c9e1f2b4'
branch_labels = None
depends_on = None

DELAY_SECONDS = 7 * 86_400  # features.TERMINAL_DELAY_DAYS, fixed here as migrations are


def upgrade():
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('known_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(sa.text(f"UPDATE labels SET known_at = {_imported_known_at()} WHERE source = 'import'"))
    op.execute(sa.text("UPDATE labels SET known_at = created_at WHERE known_at IS NULL"))
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.alter_column('known_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_index(
            'ix_labels_transaction_known', ['transaction_id', 'known_at', 'source', 'fraud'], unique=False
        )


def _imported_known_at() -> str:
    """The labelled transaction's time plus the delay, as the dialect stores a UTC datetime."""
    seconds = f"(SELECT t.tx_time FROM transactions t WHERE t.id = labels.transaction_id) + {DELAY_SECONDS}"
    if op.get_bind().dialect.name == 'postgresql':
        return f"to_timestamp({seconds})"
    return f"datetime({seconds}, 'unixepoch') || '.000000'"


def downgrade():
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index('ix_labels_transaction_known')
        batch_op.drop_column('known_at')
