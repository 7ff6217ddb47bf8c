"""enrolments by resource link: an index for the questions asked per room (how many people a
room's pages are, its roster and attendance), which read enrolments by their resource link

Revision ID: b9d5f1a30c46
Revises: f7b3d9e18a24
Create Date: 2026-12-04 23:40:00
"""
from alembic import op


revision = 'b9d5f1a30c46'
down_revision = 'f7b3d9e18a24'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_enrolments_resource_link_id', 'enrolments', ['resource_link_id'])


def downgrade():
    op.drop_index('ix_enrolments_resource_link_id', table_name='enrolments')
