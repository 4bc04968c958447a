"""api tokens: expiry; rep tokens' subjects become rep ids

A rep token's subject is the rep's id. Tokens issued before this check may name the rep by its WeCom userid: those
are rewritten to the id of the rep with that userid (a subject naming no rep is left as it is and reads nothing).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")

REP_IDS = """
UPDATE api_tokens SET subject = (SELECT CAST(reps.id AS VARCHAR(128)) FROM reps WHERE reps.userid = api_tokens.subject)
WHERE role = 'rep' AND EXISTS (SELECT 1 FROM reps WHERE reps.userid = api_tokens.subject)
  AND NOT EXISTS (SELECT 1 FROM reps WHERE CAST(reps.id AS VARCHAR(128)) = api_tokens.subject)
"""


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
    op.execute(REP_IDS)


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
