"""events: events, booths, check-ins, event staff, duty shifts, leads; old `checkin:<event>:<booth>` tags → check-ins

Revision ID: 0015
Revises: 0014
"""

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,23}")
WHOLE_EVENT = "main"  # the booth a tag `checkin:<event>` (no booth part) becomes


def upgrade() -> None:
    _events_and_booths()
    _checkins()
    _staff()
    _leads()
    _convert_tags(op.get_bind())


def _events_and_booths() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(length=24), nullable=False, unique=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("code_kind", sa.String(length=12), nullable=False),
        sa.Column("form", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "booths",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.Integer(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("slug", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("reply", JSON, nullable=True),
        sa.Column("booth_ticket", sa.String(length=255), nullable=True),
        sa.Column("booth_url", sa.String(length=255), nullable=True),
        sa.Column("staff_ticket", sa.String(length=255), nullable=True),
        sa.Column("staff_url", sa.String(length=255), nullable=True),
        sa.Column("codes_expire_at", sa.DateTime(), nullable=True),
        sa.Column("codes_error", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("event_id", "slug", name="uq_booths_event_slug"),
    )


def _checkins() -> None:
    op.create_table(
        "checkins",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("follower_id", BIG_ID, sa.ForeignKey("followers.id"), nullable=False),
        sa.Column("event_id", sa.Integer(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("booth_id", sa.Integer(), sa.ForeignKey("booths.id"), nullable=False),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.Column("scans", sa.Integer(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("late_scans", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("interaction_id", BIG_ID, sa.ForeignKey("interactions.id"), nullable=True),
        sa.UniqueConstraint("follower_id", "booth_id", name="uq_checkins_follower_booth"),
    )
    op.create_index("ix_checkins_event_first", "checkins", ["event_id", "first_at"])


def _staff() -> None:
    op.create_table(
        "event_staff",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.Integer(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("rep_id", sa.Integer(), sa.ForeignKey("reps.id"), nullable=True),
        sa.Column("openid", sa.String(length=64), nullable=True),
        sa.Column("userid", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("event_id", "openid", name="uq_event_staff_openid"),
        sa.UniqueConstraint("event_id", "userid", name="uq_event_staff_userid"),
    )
    op.create_index("ix_event_staff_openid", "event_staff", ["openid"])
    op.create_table(
        "staff_duty",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("event_staff.id"), nullable=False),
        sa.Column("event_id", sa.Integer(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("booth_id", sa.Integer(), sa.ForeignKey("booths.id"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("on_at", sa.DateTime(), nullable=False),
        sa.Column("off_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_staff_duty_booth_day", "staff_duty", ["booth_id", "day"])


def _leads() -> None:
    op.create_table(
        "event_leads",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("event_id", sa.Integer(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("booth_id", sa.Integer(), sa.ForeignKey("booths.id"), nullable=True),
        sa.Column("follower_id", BIG_ID, sa.ForeignKey("followers.id"), nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("company", sa.String(length=128), nullable=True),
        sa.Column("mobile", sa.String(length=16), nullable=True),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("event_staff.id"), nullable=True),
        sa.Column("rep_id", sa.Integer(), sa.ForeignKey("reps.id"), nullable=True),
        sa.Column("interaction_id", BIG_ID, sa.ForeignKey("interactions.id"), nullable=True, unique=True),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_event_leads_event_at", "event_leads", ["event_id", "at"])


def _convert_tags(conn: sa.Connection) -> None:
    """Each tagged follower becomes a check-in (first = last = when the tag was added, one scan); an event or booth
    the tags name but nobody created is created, spanning the tags' dates. The tags stay (rules may read them)."""
    rows = conn.execute(
        sa.text(
            "SELECT t.name, ft.follower_id, ft.added_at FROM tags t JOIN follower_tags ft ON ft.tag_id = t.id "
            "WHERE t.name LIKE 'checkin:%'"
        )
    ).all()
    seen: dict[tuple[str, str], list[tuple[int, datetime]]] = {}
    for name, follower_id, added_at in rows:
        key = _tag_parts(name)
        if key is not None:
            seen.setdefault(key, []).append((follower_id, _as_datetime(added_at)))
    for (event, booth), taggings in seen.items():
        event_id = _event_id(conn, event, [at for _, at in taggings])
        booth_id = _booth_id(conn, event_id, booth)
        for follower_id, at in taggings:
            _insert_checkin(conn, follower_id, event_id, booth_id, at)


def _tag_parts(name: str) -> tuple[str, str] | None:
    parts = name.split(":")[1:]
    if len(parts) == 1:
        parts.append(WHOLE_EVENT)
    if len(parts) != 2 or not all(SLUG.fullmatch(p) for p in parts):
        return None
    return parts[0], parts[1]


def _as_datetime(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _event_id(conn: sa.Connection, slug: str, dates: list[datetime]) -> int:
    found = conn.execute(sa.text("SELECT id FROM events WHERE slug = :s"), {"s": slug}).scalar()
    if found is not None:
        return found
    now = datetime.now(UTC).replace(tzinfo=None)
    conn.execute(
        sa.text(
            "INSERT INTO events (slug, name, starts_at, ends_at, code_kind, created_at, updated_at) "
            "VALUES (:s, :s, :a, :b, 'temporary', :n, :n)"
        ),
        {"s": slug, "a": min(dates), "b": max(dates), "n": now},
    )
    return conn.execute(sa.text("SELECT id FROM events WHERE slug = :s"), {"s": slug}).scalar_one()


def _booth_id(conn: sa.Connection, event_id: int, slug: str) -> int:
    query = sa.text("SELECT id FROM booths WHERE event_id = :e AND slug = :s")
    found = conn.execute(query, {"e": event_id, "s": slug}).scalar()
    if found is not None:
        return found
    now = datetime.now(UTC).replace(tzinfo=None)
    conn.execute(
        sa.text("INSERT INTO booths (event_id, slug, name, created_at, updated_at) VALUES (:e, :s, :s, :n, :n)"),
        {"e": event_id, "s": slug, "n": now},
    )
    return conn.execute(query, {"e": event_id, "s": slug}).scalar_one()


def _insert_checkin(conn: sa.Connection, follower_id: int, event_id: int, booth_id: int, at: datetime) -> None:
    exists = conn.execute(
        sa.text("SELECT 1 FROM checkins WHERE follower_id = :f AND booth_id = :b"), {"f": follower_id, "b": booth_id}
    ).first()
    if exists is None:
        conn.execute(
            sa.text(
                "INSERT INTO checkins (follower_id, event_id, booth_id, first_at, last_at, scans, late, late_scans) "
                "VALUES (:f, :e, :b, :a, :a, 1, :no, 0)"
            ),
            {"f": follower_id, "e": event_id, "b": booth_id, "a": at, "no": False},
        )


def downgrade() -> None:
    op.drop_table("event_leads")
    op.drop_table("staff_duty")
    op.drop_table("event_staff")
    op.drop_table("checkins")
    op.drop_table("booths")
    op.drop_table("events")
