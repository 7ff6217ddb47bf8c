"""return URL per enrolment: each person goes back to their own LMS page, never the room's first launcher's

Revision ID: c3f1a7d2e901
Revises: b666d022ca87
Create Date: 2026-12-04 17:00:00

The room kept the first launcher's launch_presentation.return_url (in Moodle it carries that
person's sesskey) and handed it to everyone; it is dropped, not moved: nobody else's URL may be
used for anyone.
"""
from alembic import op
import sqlalchemy as sa


revision = 'c3f1a7d2e901'
down_revision = 'b666d022ca87'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('return_url', sa.String(length=1024), nullable=True))
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_column('return_url')


def downgrade():
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('return_url', sa.String(length=1024), nullable=True))
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.drop_column('return_url')
