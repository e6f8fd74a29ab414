"""merge the label known_at and shadow heads

Revision ID: a243f4695a88
Revises: e5a1c7b3d9f2, e8b4d2f6a1c3
Create Date: 2026-12-01 13:12:15.073551

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a243f4695a88'
down_revision = ('e5a1c7b3d9f2', 'e8b4d2f6a1c3')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
