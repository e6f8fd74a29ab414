"""transactions.customer_id and terminal_id become opaque text of up to 64 characters (card
tokens, merchant ids); existing whole numbers become their decimal text

Revision ID: f3c8a1d5e7b2
Revises: a243f4695a88
Create Date: 2026-12-01 16:40:00.000000

On SQLite the table is rebuilt (batch mode) with foreign keys off: dropping the old table with
them on would delete every label and prediction by cascade. The composite indexes are rebuilt on
the new columns. The downgrade turns the ids back into whole numbers, and refuses (changing
nothing) while an id is not one.
"""
from contextlib import contextmanager

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f3c8a1d5e7b2'
down_revision = 'a243f4695a88'
branch_labels = None
depends_on = None

COLUMNS = ('customer_id', 'terminal_id')
INDEXES = {
    'ix_transactions_customer_time': ['customer_id', 'tx_time', 'amount'],
    'ix_transactions_terminal_time': ['terminal_id', 'tx_time', 'fraud'],
    'ix_transactions_time': ['tx_time', 'fraud', 'customer_id'],
}
WHOLE_NUMBER = r'^(0|-?[1-9][0-9]{0,17})$'  # the plain text of what a BIGINT holds


def upgrade():
    _change_type(sa.BigInteger(), sa.String(64), "{column}::text")


def downgrade():
    _refuse_non_numbers()
    _change_type(sa.String(64), sa.BigInteger(), "{column}::bigint")


def _change_type(old, new, postgresql_using: str) -> None:
    with _foreign_keys_off(), op.batch_alter_table('transactions', schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
        for column in COLUMNS:
            batch_op.alter_column(
                column,
                existing_type=old,
                type_=new,
                existing_nullable=False,
                postgresql_using=postgresql_using.format(column=column),
            )
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


@contextmanager
def _foreign_keys_off():
    """SQLite: foreign keys off around the table's rebuild (a pragma that only works outside a
    transaction), checked and on again after it."""
    if op.get_bind().dialect.name != 'sqlite':
        yield
        return
    with op.get_context().autocommit_block():
        op.execute('PRAGMA foreign_keys=OFF')
    try:
        yield
        with op.get_context().autocommit_block():
            problems = op.get_bind().execute(sa.text('PRAGMA foreign_key_check')).all()
            if problems:
                raise RuntimeError(f'foreign keys broken by the rebuild: {problems[:5]}')
    finally:
        with op.get_context().autocommit_block():
            op.execute('PRAGMA foreign_keys=ON')


def _refuse_non_numbers() -> None:
    """The ids go back to BIGINT only if every one is a whole number."""
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        test = "{column} !~ '" + WHOLE_NUMBER + "'"
    else:  # SQLite: no regular expressions; a whole number survives a round trip through INTEGER
        test = "CAST(CAST({column} AS INTEGER) AS TEXT) != {column} OR length({column}) > 19"
    for column in COLUMNS:
        count = bind.scalar(
            sa.text(f"SELECT count(*) FROM transactions WHERE {test.replace('{column}', column)}")
        )
        if count:
            raise RuntimeError(
                f'cannot downgrade: {count} transactions have a {column} that is not a whole '
                'number; delete or renumber them first'
            )
