"""deliveries: no foreign keys on follower_id and broadcast_id (a fan-out's million rows paid a lookup each)

Measured on PostgreSQL 15 (1M rows, one INSERT ... SELECT from followers): 15.5 s with the two foreign keys, 7.5 s
without. Each row's check is a trigger that looks the follower up and locks it (FOR KEY SHARE, which also writes the
follower's tuple). Nothing is lost in practice: a broadcast's rows come from a SELECT of the followers table itself,
every other delivery is created for a follower just read (scrm.deliveries.new_message), and WeLead never deletes
followers or broadcasts (a merge keeps both rows). The columns stay indexed where they are read.

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

REFERENCES = {"follower_id": "followers", "broadcast_id": "broadcasts"}
# SQLite's constraints have no names; batch mode finds them by this convention.
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
PARTIAL = {"ix_deliveries_msgid": (["msgid"], "msgid IS NOT NULL"),
           "ix_deliveries_follower_sent": (["follower_id", "sent_at"], "sent_at IS NOT NULL")}  # fmt: skip


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _partial_again() -> None:
    """SQLite's table copy re-creates indexes from reflection: make sure the partial ones are still partial."""
    for name, (columns, where) in PARTIAL.items():
        op.drop_index(name, table_name="deliveries", if_exists=True)
        op.create_index(name, "deliveries", columns, sqlite_where=sa.text(where))


def upgrade() -> None:
    if not _sqlite():
        for column in REFERENCES:
            op.drop_constraint(f"deliveries_{column}_fkey", "deliveries", type_="foreignkey")
        return
    with op.batch_alter_table("deliveries", recreate="always", naming_convention=NAMING) as batch:
        for column, table in REFERENCES.items():
            batch.drop_constraint(f"fk_deliveries_{column}_{table}", type_="foreignkey")
    _partial_again()


def downgrade() -> None:
    if not _sqlite():
        for column, table in REFERENCES.items():
            op.create_foreign_key(f"deliveries_{column}_fkey", "deliveries", table, [column], ["id"])
        return
    with op.batch_alter_table("deliveries", recreate="always") as batch:
        for column, table in REFERENCES.items():
            batch.create_foreign_key(f"fk_deliveries_{column}_{table}", table, [column], ["id"])
    _partial_again()
