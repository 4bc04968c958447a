"""Mirror WeLead tags to WeChat user tags (the playbook's `wechat_tags`), as a periodic job.

WeChat's limits shape it: at most 100 tags per account (only tags matching `include` are mirrored, and creation
stops at 45056), names of at most 30 characters (longer ones are skipped), 50 openids per batchtagging call, at most
20 tags per follower (45059: such a follower is skipped, logged, and not retried). Tagging is idempotent, so a run
cut short by a transport error or a busy answer is simply redone by the next run.

Removals are mirrored too: `scrm.tags.remove` queues a `TagRemoval` row when the removed tag had been synced for the
follower, and each run first untags those followers (batchuntagging, 50 openids a call, grouped by the WeChat tag id
recorded at removal) and deletes the rows it handled, so a removal is untagged once and a re-run does nothing more.
Untagging comes before tagging: a tag removed and added again before the run ends up tagged. A WeChat tag deleted in
the console (45159) has no members left, so its removals are done; a follower WeChat refuses is logged, not retried
(docs/playbook.md, "WeChat tags").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import delete, exists, select, update

from foundation.clock import utcnow
from foundation.db import Database
from foundation.services import services
from scrm.models import Follower, FollowerTag, Tag
from scrm.playbook import store
from scrm.scenes import compile_pattern
from scrm.tags import TagRemoval
from wechat.api import OAClient
from wechat.errors import NotSent, Unknown, WeChatAPIError

log = logging.getLogger(__name__)

NAME_MAX = 30
BATCH = 50
TOO_MANY_TAGS, NAME_TOO_LONG, TOO_MANY_FOR_USER, NO_SUCH_TAG = 45056, 45158, 45059, 45159


@dataclass
class Report:
    created: int = 0
    tagged: int = 0
    untagged: int = 0
    skipped: int = 0
    stopped: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "created": self.created,
            "tagged": self.tagged,
            "untagged": self.untagged,
            "skipped": self.skipped,
            "stopped": self.stopped,
        }


class Stop(Exception):
    """WeChat is busy or unreachable: end this run, the next one picks up where it stopped."""


def sync(limit: int = 5000) -> dict[str, object]:
    """Untag removed (follower, tag) pairs, create missing WeChat tags, tag unsynced pairs (each up to `limit`)."""
    svc = services()
    with svc.db.sessions() as session:
        book = store.active_book(session)
    if book is None or not book.wechat_tags.sync:
        return {"disabled": True}
    include = [compile_pattern(p) for p in book.wechat_tags.include]
    report, client = Report(), OAClient(svc.settings, svc.redis_slow)  # a client per run: settings may change
    try:
        _untag_removed(svc.db, client, limit, report)
        _create_tags(svc.db, client, lambda name: any(p.match(name) is not None for p in include), report)
        _tag_members(svc.db, client, limit, report)
    except Stop as exc:
        report.stopped = str(exc)
        log.warning("tag sync stopped early: %s", exc)
    finally:
        client.close()
    return report.as_dict()


def _call(fn, *args):
    try:
        return fn(*args)
    except (NotSent, Unknown) as exc:
        raise Stop(f"WeChat unreachable: {exc}") from exc
    except WeChatAPIError as exc:
        if exc.retryable or exc.token_problem:
            raise Stop(str(exc)) from exc
        raise


def _create_tags(db: Database, client: OAClient, wanted, report: Report) -> None:
    used = exists().where(FollowerTag.tag_id == Tag.id)
    with db.sessions() as session:
        rows = session.execute(select(Tag.id, Tag.name).where(Tag.wechat_tag_id.is_(None), used).order_by(Tag.id))
        todo = [(r.id, r.name) for r in rows if wanted(r.name)]
    for tag_id, name in todo:
        if len(name) > NAME_MAX:
            report.skipped += 1
            log.info("tag %r not mirrored: WeChat tag names have at most %d characters", name, NAME_MAX)
            continue
        try:
            wechat_id = _call(client.create_tag, name)
        except WeChatAPIError as exc:
            if exc.errcode == TOO_MANY_TAGS:
                log.warning("WeChat holds 100 tags already: %r and later tags are not mirrored", name)
                return
            report.skipped += 1
            log.warning("tag %r not mirrored: %s", name, exc)
            continue
        with db.transaction() as session:
            session.execute(update(Tag).where(Tag.id == tag_id).values(wechat_tag_id=wechat_id))
        report.created += 1


def _pending(db: Database, limit: int) -> Iterator[tuple[int, int, list[tuple[int, str]]]]:
    """(tag id, WeChat tag id, [(follower id, openid)...]) in batches of at most 50 subscribed OA followers."""
    query = (
        select(FollowerTag.tag_id, Tag.wechat_tag_id, FollowerTag.follower_id, Follower.openid)
        .join(Tag, Tag.id == FollowerTag.tag_id)
        .join(Follower, Follower.id == FollowerTag.follower_id)
        .where(FollowerTag.synced_at.is_(None), Tag.wechat_tag_id.is_not(None))
        .where(Follower.channel == "oa", Follower.subscribed.is_(True))
        .order_by(FollowerTag.tag_id, FollowerTag.follower_id)
        .limit(limit)
    )
    with db.sessions() as session:
        rows = session.execute(query).all()
    for (tag_id, wechat_id), group in groupby(rows, key=lambda r: (r.tag_id, r.wechat_tag_id)):
        members = [(r.follower_id, r.openid) for r in group]
        for start in range(0, len(members), BATCH):
            yield tag_id, wechat_id, members[start : start + BATCH]


def _tag_members(db: Database, client: OAClient, limit: int, report: Report) -> None:
    gone: set[int] = set()
    for tag_id, wechat_id, members in _pending(db, limit):
        if tag_id in gone:
            continue
        try:
            _call(client.tag_users, wechat_id, [openid for _, openid in members])
            done = [fid for fid, _ in members]
        except WeChatAPIError as exc:
            if exc.errcode == NO_SUCH_TAG:  # deleted in WeChat's console: create it again next run
                gone.add(tag_id)
                _forget(db, tag_id)
                continue
            done = _one_by_one(client, wechat_id, members, report)
        _mark(db, tag_id, done)
        report.tagged += len(done)


def _one_by_one(client: OAClient, wechat_id: int, members: list[tuple[int, str]], report: Report) -> list[int]:
    """A batch refused as a whole: tag each follower alone; a follower WeChat refuses is marked and not retried."""
    done = []
    for fid, openid in members:
        try:
            _call(client.tag_users, wechat_id, [openid])
        except WeChatAPIError as exc:
            reason = "over WeChat's 20 tags per follower" if exc.errcode == TOO_MANY_FOR_USER else str(exc)
            log.warning("follower %s not tagged %s in WeChat: %s", openid, wechat_id, reason)
            report.skipped += 1
        done.append(fid)
    return done


def _mark(db: Database, tag_id: int, follower_ids: list[int]) -> None:
    with db.transaction() as session:
        session.execute(
            update(FollowerTag)
            .where(FollowerTag.tag_id == tag_id, FollowerTag.follower_id.in_(follower_ids))
            .values(synced_at=utcnow())
        )


def _forget(db: Database, tag_id: int) -> None:
    with db.transaction() as session:
        session.execute(update(Tag).where(Tag.id == tag_id).values(wechat_tag_id=None))


def _removals(db: Database, limit: int) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """(WeChat tag id, [(removal id, openid)...]) in batches of at most 50, oldest removals first."""
    query = (
        select(TagRemoval.id, TagRemoval.wechat_tag_id, Follower.openid)
        .join(Follower, Follower.id == TagRemoval.follower_id)
        .order_by(TagRemoval.wechat_tag_id, TagRemoval.id)
        .limit(limit)
    )
    with db.sessions() as session:
        rows = session.execute(query).all()
    for wechat_id, group in groupby(rows, key=lambda r: r.wechat_tag_id):
        members = [(r.id, r.openid) for r in group]
        for start in range(0, len(members), BATCH):
            yield wechat_id, members[start : start + BATCH]


def _untag_removed(db: Database, client: OAClient, limit: int, report: Report) -> None:
    for wechat_id, members in _removals(db, limit):
        try:
            _call(client.untag_users, wechat_id, [openid for _, openid in members])
        except WeChatAPIError as exc:
            if exc.errcode != NO_SUCH_TAG:  # 45159: deleted in WeChat's console, nobody has it any more
                _untag_one_by_one(client, wechat_id, members, report)
        _drop(db, [rid for rid, _ in members])
        report.untagged += len(members)


def _untag_one_by_one(client: OAClient, wechat_id: int, members: list[tuple[int, str]], report: Report) -> None:
    """A batch refused as a whole: untag each follower alone; a follower WeChat refuses is logged and not retried."""
    for _, openid in members:
        try:
            _call(client.untag_users, wechat_id, [openid])
        except WeChatAPIError as exc:
            log.warning("follower %s not untagged %s in WeChat: %s", openid, wechat_id, exc)
            report.skipped += 1


def _drop(db: Database, removal_ids: list[int]) -> None:
    with db.transaction() as session:
        session.execute(delete(TagRemoval).where(TagRemoval.id.in_(removal_ids)))
