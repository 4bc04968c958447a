"""Helpers for tests/test_applier.py: a playbook whose effects show order and caps, events recorded through the
request's own half (scrm.accept), fresh databases to compare against, and the follower state that "applied exactly
once, in order" is read from.

Every comparison is by openid and interaction dedup key, never by row ids that differ between databases; score
models have no half-life, so totals are exact numbers whatever the clock says when they are read.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from foundation.db import Database
from scrm import score_totals
from scrm.accept import Accepted, accept
from scrm.applier import backlog
from scrm.ingest import Event
from scrm.models import Activity, Follower, FollowerTag, Interaction, Outbox, Rep, Tag
from scrm.playbook import store
from scrm.playbook.models import ScoreEvent
from tests.helpers import recreate_pg_database
from welead.migrate import upgrade

T0 = 1_767_600_000  # 2026-01-05, the CreateTime of the first event; event n is T0 + n

# Order-sensitive on purpose: `switch-on`/`switch-off` add and remove a tag (the last event wins), `pricing` is
# capped in total, `welcome` once, `demo` crosses the `hot` threshold and moves the stage (whose rule queues a
# journey), rep codes assign an owner once. Every effect kind the applier writes appears: follower flags, tags, score
# events and totals, stages, owner, timeline entries and outbox rows (profile.fetch, template.send, rep.notify,
# journey.start).
BOOK = """
name: applier
models:
  engagement: {}
stages:
  order: [{name: new, at: 0}, {name: engaged, at: 10}, {name: mql, at: 40}, customer]
rules:
  - name: welcome
    when: subscribe
    do: [{tag: fan}, {score: 5, cap: once}]
  - name: rep-code
    when: {scene: "rep:{rep}"}
    do: [{assign: "rep-{rep}"}]
  - name: pricing
    when: {click: PRICING}
    do: [{tag: "interest:pricing"}, {score: 10, cap: {total: 30}}]
  - name: switch-on
    when: {click: "ON"}
    do: [{tag: switch}]
  - name: switch-off
    when: {click: "OFF"}
    do: [{untag: switch}]
  - name: demo
    when: {text: {regex: "^demo (?P<product>\\\\w+)$"}}
    do:
      - tag: "wants:{product}"
      - score: 20
      - send_template: {template: demo_booked, data: {product: "{product}"}}
  - name: hot
    when: {score_crossed: 40}
    do: [{tag: hot}, {notify_owner: "score {score}"}]
  - name: mql
    when: {stage_changed: mql}
    do: [{start_journey: nurture}]
  - name: chat
    when: {text: {regex: "^msg "}}
    do: [{score: 1, model: engagement}]
"""
JOURNEYS = """
journeys:
  nurture:
    steps: [{wait: 1d}, {do: [{send_template: case_study}]}]
"""


def book(extra_rules: str = "", name: str = "applier") -> str:
    """BOOK with more rules (YAML list items indented like BOOK's) appended, under another name if given."""
    return BOOK.replace("name: applier", f"name: {name}", 1) + extra_rules + JOURNEYS


# A rule that tags whatever follows "take": with refuse_tags(db, POISON_TAG) its tag is refused, so the text
# is a poison interaction.
POISON_BOOK = book("""
  - name: take
    when: {text: {regex: "^take (?P<what>\\\\w+)$"}}
    do: [{tag: "wants:{what}"}]
""")
POISON_TEXT = "take poison"
POISON_TAG = "wants:poison"


def load(db: Database, text: str | None = None) -> int:
    """Store `text` as the new active playbook version, as `flask playbook load` does; returns the version."""
    with db.transaction() as session:
        return store.load(session, text or book()).version


# --- events, recorded as the callback request records them ------------------------------------------------------


@dataclass
class Script:
    """Inbound events in the order WeChat created them; `n` gives each a distinct CreateTime and dedup key."""

    events: list[Event] = field(default_factory=list)
    _n: Iterator[int] = field(default_factory=lambda: count(1))

    def add(self, kind: str, openid: str, **fields: Any) -> Event:
        """Any kind, even one WeChat never sends (the applier looks its effect up in scrm.effects by kind)."""
        n = next(self._n)
        event = Event(channel="oa", kind=kind, openid=openid, dedup_key=f"{openid}:{n}", created=T0 + n, **fields)
        self.events.append(event)
        return event

    def subscribe(self, openid: str, scene: str | None = None) -> Event:
        return self.add("subscribe", openid, scene=scene)

    def unsubscribe(self, openid: str) -> Event:
        return self.add("unsubscribe", openid)

    def scan(self, openid: str, scene: str) -> Event:
        return self.add("scan", openid, scene=scene)

    def click(self, openid: str, key: str) -> Event:
        return self.add("click", openid, event_key=key)

    def text(self, openid: str, content: str) -> Event:
        return self.add("text", openid, content=content, msg_id=str(T0 + len(self.events)))


def record(db: Database, events: Iterable[Event]) -> list[Accepted]:
    """Each event through the request's half (decide the reply, one insert), nothing applied."""
    return [accept(db, ev) for ev in events]


def pending(db: Database) -> int:
    with db.sessions() as session:
        return backlog(session)[0]


REFUSED = "refused by the test trigger"
_PG_REFUSE = f"""
CREATE OR REPLACE FUNCTION refuse_tag() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.name LIKE :pattern THEN RAISE EXCEPTION '{REFUSED}'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_tag BEFORE INSERT ON tags FOR EACH ROW EXECUTE FUNCTION refuse_tag();
"""
_SQLITE_REFUSE = f"""
CREATE TRIGGER refuse_tag BEFORE INSERT ON tags WHEN NEW.name LIKE :pattern
BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END
"""


_UNDO = {"sqlite": "DROP TRIGGER IF EXISTS refuse_tag", "postgresql": "DROP TRIGGER IF EXISTS refuse_tag ON tags"}


def allow_tags(db: Database) -> None:
    """Undo `refuse_tags` (test databases are emptied between tests, not recreated: a trigger would outlive it)."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql(_UNDO[db.dialect])


def refuse_tags(db: Database, pattern: str) -> None:
    """A fault below the product: the database refuses new tags named like `pattern` (SQL LIKE), as a constraint
    added by hand would. Every input the product takes is bounded, so a poison interaction needs one."""
    ddl = _SQLITE_REFUSE if db.dialect == "sqlite" else _PG_REFUSE
    quoted = "'" + pattern.replace("'", "''") + "'"
    with db.engine.begin() as conn:
        conn.exec_driver_sql(ddl.replace(":pattern", quoted))


def wait_until(what: Callable[[], bool], timeout: float, message: str, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        time.sleep(every)


# --- the state "exactly once" is judged by -----------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def state(db: Database) -> dict[str, Any]:
    """Everything the applier writes, keyed by openid and interaction dedup key: followers (flags, stage, owner by
    userid, tags, score totals), score events, timeline entries, outbox rows, and which interactions are applied.
    Rep ids in timeline data and outbox args are replaced by the rep's userid, and follower ids in notice keys by the
    openid: on PostgreSQL a rolled-back insert still consumes its sequence number, so ids may differ where userids
    and openids do not."""
    with db.sessions() as s:
        reps = {r.id: r.userid for r in s.execute(select(Rep.id, Rep.userid))}
        keys = {r.id: r.dedup_key for r in s.execute(select(Interaction.id, Interaction.dedup_key))}
        followers = {f.id: f for f in s.scalars(select(Follower))}
        totals = score_totals.totals(s, list(followers))
        out: dict[str, Any] = {
            f.openid: {
                "subscribed": f.subscribed, "stage": f.stage, "source": f.source, "owner": reps.get(f.owner_id),
                "subscribed_at": f.subscribed_at, "unsubscribed_at": f.unsubscribed_at,
                "last_active_at": f.last_active_at, "tags": [], "scores": totals.get(fid, {}),
                "score_events": [], "activities": [],
            }
            for fid, f in followers.items()
        }  # fmt: skip
        openid = {fid: f.openid for fid, f in followers.items()}
        tagged = select(FollowerTag.follower_id, Tag.name).join(Tag).order_by(Tag.name)
        for fid, name in s.execute(tagged):
            out[openid[fid]]["tags"].append(name)
        scored = select(ScoreEvent.follower_id, ScoreEvent.interaction_id, ScoreEvent.rule, ScoreEvent.model,
                        ScoreEvent.points).order_by(ScoreEvent.interaction_id, ScoreEvent.id)  # fmt: skip
        for fid, iid, rule, model, points in s.execute(scored):
            out[openid[fid]]["score_events"].append((keys.get(iid), rule, model, points))
        noted = select(Activity.follower_id, Activity.interaction_id, Activity.kind, Activity.data)
        for fid, iid, kind, data in s.execute(noted.order_by(Activity.interaction_id, Activity.id)):
            for name in ("rep", "from", "to"):  # owner_assigned names reps by id
                if name in data:
                    data = {**data, name: reps.get(data[name])}
            out[openid[fid]]["activities"].append((keys.get(iid), kind, _json(data)))
        outbox = []
        for key, task, args in s.execute(select(Outbox.key, Outbox.task, Outbox.args)):
            if "rep_id" in args:
                args = {**args, "rep_id": reps.get(args["rep_id"])}
            if key.startswith("rep.notify:"):  # rep.notify:<kind>:<follower id>:<crossing>
                kind, fid, crossing = key.split(":", 3)[1:]
                key = args["key"] = f"rep.notify:{kind}:{openid.get(int(fid), fid)}:{crossing}"
            outbox.append((key, task, _json(args)))
        outbox.sort()
        applied = select(Interaction.dedup_key, Interaction.applied_at.is_not(None), Interaction.apply_error)
        return {
            "followers": out,
            "outbox": outbox,
            "interactions": [tuple(r) for r in s.execute(applied.order_by(Interaction.id))],
        }


def timeline_order(db: Database) -> dict[str, list[int]]:
    """Per openid, the interaction ids of their timeline entries in the order the entries were written."""
    with db.sessions() as s:
        rows = s.execute(select(Follower.openid, Activity.interaction_id).join(Follower).order_by(Activity.id))
        out: dict[str, list[int]] = {}
        for openid, iid in rows:
            out.setdefault(openid, []).append(iid)
        return out


# --- fresh databases ---------------------------------------------------------------------------------------------


class Databases:
    """Migrated, empty databases on demand, each behind a new `Database` (a new engine: nothing cached in memory
    from an earlier one). SQLite: a copy of the session's migrated template file. PostgreSQL: one database per
    `role`, created and migrated once per session, truncated on each use."""

    def __init__(self, template: str, tmp_path: Path) -> None:
        self.template, self.tmp_path, self.opened = template, tmp_path, []
        self._n = count()

    def fresh(self, role: str, name: str = "welead") -> Database:
        if self.template.startswith("postgresql"):
            url = pg_database(self.template, role)
            truncate(url)
        else:
            path = self.tmp_path / f"{role}-{next(self._n)}.db"
            shutil.copy(self.template, path)
            url = f"sqlite:///{path}"
        db = Database(url, name=name)
        self.opened.append(db)
        return db

    def close(self) -> None:
        for db in self.opened:
            with suppress(Exception):
                db.dispose()


_PG_ROLES: dict[tuple[str, str], str] = {}


def pg_database(template: str, role: str) -> str:
    """A PostgreSQL database of this session beside `template` (the worker's test database), migrated once."""
    if role == "subject":
        return template
    found = _PG_ROLES.get((template, role))
    if found is None:
        url = sa.engine.make_url(template)
        found = _PG_ROLES[(template, role)] = recreate_pg_database(url, f"{url.database}_{role}")
        upgrade(found)
    return found


def truncate(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))]
        tables = [t for t in tables if t != "alembic_version"]
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
