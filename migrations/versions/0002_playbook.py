"""playbook, scoring, stages, segments

Revision ID: 0002
Revises: 0001

Tables: playbooks (versions), score_events (every point), follower_scores (decayed running totals),
score_arms (threshold hysteresis), rule_firings (periodic triggers), segments (saved filters); plus indexes the
segment filters use (models in scrm/playbook/models.py).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "playbooks",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("spec", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "score_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("follower_id", BigId, nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("interaction_id", BigId, nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("dedup", sa.String(length=191), nullable=True),
        sa.ForeignKeyConstraint(["follower_id"], ["followers.id"]),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup"),
    )
    with op.batch_alter_table("score_events", schema=None) as batch_op:
        batch_op.create_index("ix_score_events_follower_model_at", ["follower_id", "model", "at"], unique=False)
        batch_op.create_index("ix_score_events_follower_rule", ["follower_id", "rule", "model", "at"], unique=False)

    op.create_table(
        "follower_scores",
        sa.Column("follower_id", BigId, nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("as_of", sa.Float(), nullable=False),
        sa.Column("half_life", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["follower_id"], ["followers.id"]),
        sa.PrimaryKeyConstraint("follower_id", "model"),
    )
    with op.batch_alter_table("follower_scores", schema=None) as batch_op:
        batch_op.create_index("ix_follower_scores_model_value", ["model", "value"], unique=False)

    op.create_table(
        "score_arms",
        sa.Column("follower_id", BigId, nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("fired_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["follower_id"], ["followers.id"]),
        sa.PrimaryKeyConstraint("follower_id", "model", "threshold"),
    )
    op.create_table(
        "rule_firings",
        sa.Column("follower_id", BigId, nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["follower_id"], ["followers.id"]),
        sa.PrimaryKeyConstraint("follower_id", "rule", "since"),
    )
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("filter", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("follower_tags", schema=None) as batch_op:
        batch_op.create_index("ix_follower_tags_tag_follower", ["tag_id", "follower_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_followers_source_pattern", "followers", ["source"], postgresql_ops={"source": "text_pattern_ops"}
        )
        op.create_index("ix_tags_name_pattern", "tags", ["name"], postgresql_ops={"name": "text_pattern_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tags_name_pattern", table_name="tags")
        op.drop_index("ix_followers_source_pattern", table_name="followers")
    with op.batch_alter_table("follower_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_follower_tags_tag_follower")
    op.drop_table("segments")
    op.drop_table("rule_firings")
    op.drop_table("score_arms")
    with op.batch_alter_table("follower_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_follower_scores_model_value")
    op.drop_table("follower_scores")
    with op.batch_alter_table("score_events", schema=None) as batch_op:
        batch_op.drop_index("ix_score_events_follower_rule")
        batch_op.drop_index("ix_score_events_follower_model_at")
    op.drop_table("score_events")
    op.drop_table("playbooks")
