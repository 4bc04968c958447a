"""reports: first entry per follower and stage, and first follow-up per assignment, kept by triggers

The funnel and the rep leaderboard derived these from the timeline at read time (JSON fields of the activities
table, a group-by over every cohort follower's history): 1-2 s at 1M followers. scrm/report_marks.py says what the
tables hold and why triggers keep them; the trigger SQL lives there (scrm/report_triggers.py) so the bench and the
tests install exactly what this revision installs. The backfill rebuilds both tables from the timeline already
there, in three set-based statements.

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

from scrm import report_marks

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stage_entries",
        sa.Column("follower_id", BIG_ID, sa.ForeignKey("followers.id"), primary_key=True),
        sa.Column("stage", sa.String(length=32), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("born", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_stage_entries_born", "stage_entries", ["born", "follower_id", "stage", "at"])
    op.create_table(
        "lead_assignments",
        sa.Column("activity_id", BIG_ID, sa.ForeignKey("activities.id"), primary_key=True, autoincrement=False),
        sa.Column("follower_id", BIG_ID, sa.ForeignKey("followers.id"), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("followed_up_at", sa.DateTime(), nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=True),
    )
    op.create_index(
        "ix_lead_assignments_at", "lead_assignments", ["at", "rep_id", "follower_id", "followed_up_at", "stage"]
    )
    op.create_index("ix_lead_assignments_lead", "lead_assignments", ["follower_id", "rep_id", "at"])
    conn = op.get_bind()
    report_marks.backfill(conn)
    report_marks.install(conn)


def downgrade() -> None:
    report_marks.uninstall(op.get_bind())
    op.drop_index("ix_lead_assignments_lead", table_name="lead_assignments")
    op.drop_index("ix_lead_assignments_at", table_name="lead_assignments")
    op.drop_table("lead_assignments")
    op.drop_index("ix_stage_entries_born", table_name="stage_entries")
    op.drop_table("stage_entries")
