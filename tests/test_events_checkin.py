"""Booth scans end to end through the simulator: the reply decided in the request (the booth's own content, the
defaults under templates/events/), the check-in applied once per follower and booth, repeats counted, `checked_in`
raised once, unknown codes and late scans recorded without a crash, old tag check-ins migrated."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from scrm.models import Interaction
from tests.events_kit import checkins, iso, make_event, scan
from tests.helpers import drain, post
from tests.test_perf_invariants import REQUEST_BUDGET, counting
from welead.migrate import upgrade

BOOK = """
name: booths
rules:
  - name: visited
    when: {checked_in: "{event}"}
    do:
      - tag: "visited:{event}:{booth}"
      - score: 5
  - name: any-booth-scan
    when: {scene: "booth:*"}
    do: [{score: 1}]
"""


def _load(client, headers, text: str = BOOK) -> None:
    r = client.put("/api/v1/playbook", data=text, headers={**headers, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.json


def _follower(client, headers, openid: str) -> dict:
    return client.get(f"/api/v1/followers/{openid}", headers=headers).json


def _timeline(client, headers, openid: str) -> list[str]:
    return [e["kind"] for e in client.get(f"/api/v1/followers/{openid}/timeline", headers=headers).json]


def test_new_visitor_checks_in_once_and_repeats_count(client, app, auth_headers):
    _load(client, auth_headers)
    make_event(client, auth_headers)
    reply = scan(client, "o-new", "booth:expo:A1", kind="subscribe")
    assert "感谢光临 华东展会 Expo · 展位 A1" in reply
    for _ in range(2):
        assert "展位 A1" in scan(client, "o-new", "booth:expo:A1")
    (row,) = checkins(app)
    assert row.scans == 3 and row.first_at < row.last_at and not row.late and row.interaction_id is not None
    f = _follower(client, auth_headers, "o-new")
    assert f["tags"] == ["visited:expo:A1"] and f["source"] == "booth:expo:A1"
    assert f["scores"]["engagement"] == 5 + 3  # checked_in once, the scene rule on every scan
    kinds = _timeline(client, auth_headers, "o-new")
    assert kinds.count("checked_in") == 1 and kinds.count("booth_rescan") == 2


def test_returning_visitor_and_two_booths(client, app, auth_headers):
    _load(client, auth_headers)
    make_event(client, auth_headers)
    post(client, "subscribe", openid="o-old")  # a follower from before the event
    scan(client, "o-old", "booth:expo:A1")
    scan(client, "o-old", "booth:expo:B2")
    rows = checkins(app)
    assert [(r.booth_id, r.scans) for r in rows] == [(1, 1), (2, 1)]
    assert _follower(client, auth_headers, "o-old")["tags"] == ["visited:expo:A1", "visited:expo:B2"]


def test_scans_in_one_batch_and_retries_count_once(client, app, auth_headers):
    _load(client, auth_headers)
    make_event(client, auth_headers)
    at = int(datetime.now(UTC).timestamp()) - 60
    for i in range(3):
        scan(client, "o-batch", "booth:expo:A1", at=at + i, apply=False)
    scan(client, "o-batch", "booth:expo:A1", at=at + 2, apply=False)  # WeChat's retry of the third
    assert drain(app).applied == 3
    (row,) = checkins(app)
    assert row.scans == 3
    assert _follower(client, auth_headers, "o-batch")["scores"]["engagement"] == 5 + 3


def test_booth_content_text_and_news_and_edits_answer_at_once(client, auth_headers):
    make_event(client, auth_headers)
    news = {"articles": [{"title": "产品手册 Catalogue", "description": "<b>&", "url": "https://example.com/c"}]}
    client.patch("/api/v1/events/expo/booths/A1", json={"reply": news}, headers=auth_headers)
    client.patch("/api/v1/events/expo/booths/B2", json={"reply": {"text": "B2 ]]> 见"}}, headers=auth_headers)
    a1 = scan(client, "o-c", "booth:expo:A1")
    assert "<MsgType><![CDATA[news]]></MsgType>" in a1 and "产品手册 Catalogue" in a1
    b2 = scan(client, "o-c", "booth:expo:B2")
    assert "B2 ]]]]><![CDATA[> 见" in b2  # the CDATA terminator split, never raw
    client.patch("/api/v1/events/expo/booths/B2", json={"reply": {"text": "changed"}}, headers=auth_headers)
    assert "changed" in scan(client, "o-c", "booth:expo:B2")


def test_a_playbook_reply_stands_for_a_booth_without_content(client, auth_headers):
    hello = '  - {name: hi, when: {scene: "booth:{event}:{booth}"}, do: [{reply: "Hi {booth}"}]}\n'
    _load(client, auth_headers, BOOK + hello)
    make_event(client, auth_headers)
    assert "Hi A1" in scan(client, "o-p", "booth:expo:A1")


def test_unknown_event_booth_and_odd_scenes_are_recorded_with_a_friendly_reply(client, app, auth_headers):
    _load(client, auth_headers)
    make_event(client, auth_headers)
    scenes = ["booth:nope:A1", "booth:expo:ZZ", "booth:expo", "booth:expo:A1:x", "booth:展会<&>]]>:A1",
              "booth:" + "e" * 40 + ":" + "b" * 17, "booth::"]  # fmt: skip
    for i, scene in enumerate(scenes):
        reply = scan(client, f"o-u{i}", scene)
        assert "This booth code is not active" in reply, scene
    assert checkins(app) == []
    assert "visited" not in str(_follower(client, auth_headers, "o-u0")["tags"])
    with app.extensions["welead"].db.sessions() as session:
        stored = session.scalars(select(Interaction.decision).where(Interaction.openid == "o-u5")).one()
    assert stored["booth"]["known"] is False and len(stored["booth"]["event"]) <= 64
    assert client.get("/healthz").json["backlog"] == 0


def test_late_scan_is_recorded_as_late_and_raises_nothing(client, app, auth_headers):
    _load(client, auth_headers)
    now = datetime.now(UTC).replace(tzinfo=None)
    make_event(client, auth_headers, slug="done", booths=("A1",), name="Done Expo",
               starts_at=iso(now - timedelta(days=3)), ends_at=iso(now - timedelta(hours=3)))  # fmt: skip
    assert "Done Expo 已经结束" in scan(client, "o-late", "booth:done:A1")
    scan(client, "o-late", "booth:done:A1")
    (row,) = checkins(app)
    assert row.late and row.late_scans == 2 and row.scans == 2
    assert _follower(client, auth_headers, "o-late")["tags"] == []
    assert client.get("/api/v1/events/done/stats", headers=auth_headers).json["late"] == 1
    count = client.get("/api/v1/segments/preview?checked_in=done", headers=auth_headers)
    assert count.status_code == 200 and count.json["count"] == 0  # a late scan is no visit


def test_checked_in_segment_reads_the_records(client, auth_headers):
    make_event(client, auth_headers)
    scan(client, "o-s1", "booth:expo:A1")
    scan(client, "o-s2", "booth:nope:A1")
    r = client.get("/api/v1/segments/preview?checked_in=expo", headers=auth_headers)
    assert r.json["count"] == 1
    assert client.get("/api/v1/segments/preview?checked_in=*", headers=auth_headers).json["count"] == 1


def test_a_booth_scan_stays_within_the_request_budget(app, client, auth_headers):
    make_event(client, auth_headers)
    scan(client, "o-warm", "booth:expo:A1")
    db = app.extensions["welead"].db
    for i in range(5):
        with counting(db) as counted:
            scan(client, f"o-budget-{i}", "booth:expo:B2", kind="subscribe", apply=False)
        assert counted[0] <= REQUEST_BUDGET, counted[0]


def test_migration_turns_checkin_tags_into_checkins(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0014")
    db = sqlite3.connect(tmp_path / "m.db")
    for fid in (1, 2):
        db.execute("INSERT INTO followers (id, openid, channel, subscribed, stage, profile, created_at)"
                   " VALUES (?, ?, 'oa', 1, 'new', '{}', '2026-01-01 00:00:00')", (fid, f"o{fid}"))  # fmt: skip
    tags = [(1, "checkin:expo:A1"), (2, "checkin:expo:B2"), (3, "checkin:fair"), (4, "checkin:bad slug:x")]
    db.executemany("INSERT INTO tags (id, name, created_at) VALUES (?, ?, '2026-01-01 00:00:00')", tags)
    links = [(1, 1, "2026-05-20 02:00:00"), (1, 2, "2026-05-20 03:00:00"), (2, 1, "2026-05-21 04:00:00"),
             (2, 3, "2026-06-01 00:00:00"), (2, 4, "2026-06-01 00:00:00")]  # fmt: skip
    db.executemany("INSERT INTO follower_tags (follower_id, tag_id, added_at) VALUES (?, ?, ?)", links)
    db.commit()
    db.close()
    upgrade(url, "0015")
    db = sqlite3.connect(tmp_path / "m.db")
    events = db.execute("SELECT slug, starts_at, ends_at FROM events ORDER BY slug").fetchall()
    assert [e[0] for e in events] == ["expo", "fair"]
    assert events[0][1].startswith("2026-05-20 02:00") and events[0][2].startswith("2026-05-21 04:00")
    rows = db.execute("SELECT c.follower_id, b.slug, c.scans, c.late FROM checkins c JOIN booths b ON b.id ="
                      " c.booth_id ORDER BY c.follower_id, b.slug").fetchall()  # fmt: skip
    assert rows == [(1, "A1", 1, 0), (1, "B2", 1, 0), (2, "A1", 1, 0), (2, "main", 1, 0)]
    db.close()
