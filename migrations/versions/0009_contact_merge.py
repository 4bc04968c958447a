"""one person, one contact: merges by unionid

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE = sa.text("state = 'merged'")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # ADD COLUMN keeps the table: a batch copy would drop `followers`, which every other table references.
        op.execute("ALTER TABLE followers ADD COLUMN merged_into INTEGER REFERENCES followers (id)")
    else:
        op.add_column("followers", sa.Column("merged_into", BIG, nullable=True))
        op.create_foreign_key("fk_followers_merged_into", "followers", "followers", ["merged_into"], ["id"])
    op.create_index("ix_followers_merged_into", "followers", ["merged_into"])
    op.create_table(
        "contact_merges",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("primary_id", BIG, sa.ForeignKey("followers.id"), nullable=False),
        sa.Column("secondary_id", BIG, sa.ForeignKey("followers.id"), nullable=False),
        sa.Column("unionid", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("before", JSON, nullable=False),
        sa.Column("moved", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("undone_at", sa.DateTime(), nullable=True),
        sa.Column("undone_by", sa.String(length=128), nullable=True),
    )
    op.create_index("ix_contact_merges_primary_id", "contact_merges", ["primary_id"])
    op.create_index("ix_contact_merges_secondary_id", "contact_merges", ["secondary_id"])
    op.create_index("ix_contact_merges_unionid", "contact_merges", ["unionid"])
    op.create_index(
        "uq_contact_merges_live",
        "contact_merges",
        ["secondary_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_table(
        "contact_merge_moves",
        sa.Column("merge_id", BIG, sa.ForeignKey("contact_merges.id"), primary_key=True),
        sa.Column("kind", sa.String(length=16), primary_key=True),
        sa.Column("row_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    )


def downgrade() -> None:
    op.drop_table("contact_merge_moves")
    op.drop_table("contact_merges")
    op.drop_index("ix_followers_merged_into", table_name="followers")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE followers DROP COLUMN merged_into")  # no batch copy, as in upgrade (SQLite 3.35+)
    else:
        op.drop_constraint("fk_followers_merged_into", "followers", type_="foreignkey")
        op.drop_column("followers", "merged_into")
