"""The tables the funnel and the leaderboard read (scrm/report_marks.py) hold what the timeline says, whoever wrote
the timeline: leads brought in by rep codes and reassigned by a rule (the applier), stages moved by the score
(the rules engine) and by a rep (the rep pages, promoted and demoted), follow-ups, a merge and its undo.

Each check compares the trigger-kept rows with two derivations from the timeline: a plain Python walk over the
activities (the definitions of scrm/report_people.py, written out), and `backfill` (migration 0023); and the
reports' numbers before and after a backfill.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from scrm import merge, rep_actions, report_marks, reports
from scrm.models import Activity, Follower, Rep
from scrm.report_marks import LeadAssignment, StageEntry
from scrm.report_sql import window
from tests.helpers import post

BOOK = """
name: report-marks
models:
  engagement: {}
stages:
  order: [{name: new, at: 0}, {name: engaged, at: 10}, {name: mql, at: 40}, sql, customer]
rules:
  - name: rep-code
    when: {scene: "rep:{rep}"}
    do: [{assign: "{rep}"}]
  - name: asked-price
    when: {text: price}
    do: [{score: 15}]
  - name: hand-over
    when: {text: {keywords: [switch]}}
    do: [{assign: "{{li}}", overwrite: true}]
"""


def _db(app):
    return app.extensions["welead"].db


def _expected(app) -> tuple[set, set]:
    """(stage entries, assignments) worked out from the timeline in Python, as the reports define them."""
    with _db(app).sessions() as s:
        query = select(Activity.id, Activity.follower_id, Activity.kind, Activity.at, Activity.data)
        rows = list(s.execute(query.where(Activity.kind.in_(report_marks.KINDS)).order_by(Activity.at, Activity.id)))
        born = dict(s.execute(select(Follower.id, Follower.created_at)).all())
        stage = dict(s.execute(select(Follower.id, Follower.stage)).all())
    firsts: dict[tuple[int, str], object] = {}
    for _, fid, kind, at, data in rows:
        if kind == "stage_changed" and data.get("to") is not None:
            firsts.setdefault((fid, data["to"]), at)
    entries = {(fid, name, at, born[fid]) for (fid, name), at in firsts.items()}
    assigned = set()
    for aid, fid, kind, at, data in rows:
        if kind == "owner_assigned" and isinstance(data.get("rep"), int):
            acts = [a for _, f, k, a, d in rows if k == "rep_action" and f == fid and d.get("rep") == data["rep"]]
            assigned.add((aid, fid, data["rep"], at, min((a for a in acts if a >= at), default=None), stage[fid]))
    return entries, assigned


def _stored(app) -> tuple[set, set]:
    with _db(app).sessions() as s:
        entries = set(s.execute(select(StageEntry.follower_id, StageEntry.stage, StageEntry.at, StageEntry.born)))
        cols = (LeadAssignment.activity_id, LeadAssignment.follower_id, LeadAssignment.rep_id, LeadAssignment.at,
                LeadAssignment.followed_up_at, LeadAssignment.stage)  # fmt: skip
        return entries, set(s.execute(select(*cols)))


def _numbers(app) -> dict:
    today = utcnow() + timedelta(hours=8)
    win = window((today - timedelta(days=2)).date().isoformat(), today.date().isoformat(), None, utcnow())
    with _db(app).sessions() as s:
        return {name: reports.run(s, name, win) for name in ("funnel", "reps")}


def _agrees(app) -> tuple[set, set]:
    """The stored rows equal the Python walk, and a backfill changes neither them nor the reports."""
    stored = _stored(app)
    assert stored == _expected(app)
    before = _numbers(app)
    with _db(app).transaction() as s:
        report_marks.backfill(s.connection())
    assert _stored(app) == stored
    assert _numbers(app) == before
    return stored


@pytest.fixture
def people(app, client, auth_headers):
    with _db(app).transaction() as s:
        li, wang = Rep(userid="li.wei", name="Li Wei"), Rep(userid="wang.fang", name="Wang Fang")
        s.add_all([li, wang])
        s.flush()
        reps = {"li": li.id, "wang": wang.id}
    book = BOOK.replace("{{li}}", str(reps["li"]))
    r = client.put("/api/v1/playbook", data=book, headers={**auth_headers, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.json
    for openid, rep in (("o-a", "li"), ("o-b", "wang"), ("o-c", "li"), ("o-d", "wang")):
        post(client, "subscribe", openid=openid, scene=f"rep:{reps[rep]}")
    for openid in ("o-a", "o-a", "o-a", "o-d"):
        post(client, "text", openid=openid, content="price please")  # o-a: engaged, then mql; o-d: engaged
    post(client, "text", openid="o-b", content="switch")  # a rule hands o-b over to li
    with _db(app).sessions() as s:
        ids = dict(s.execute(select(Follower.openid, Follower.id)).all())
    return reps, ids


def test_marks_follow_the_applier_the_rules_and_the_rep_pages(app, people):
    reps, ids = people
    li, wang = reps["li"], reps["wang"]
    with _db(app).transaction() as s:
        rep_actions.followed_up(s, li, ids["o-a"], "called")
        rep_actions.set_stage(s, li, ids["o-a"], "sql")
        rep_actions.set_stage(s, li, ids["o-a"], "engaged")  # demoted: it still reached sql
        rep_actions.followed_up(s, li, ids["o-c"])
        rep_actions.followed_up(s, li, ids["o-c"], "again")  # the first one counts
        rep_actions.tag(s, li, ids["o-b"], "vip", add=True)
    entries, assigned = _agrees(app)
    assert {(f, st) for f, st, *_ in entries} >= {(ids["o-a"], "engaged"), (ids["o-a"], "mql"), (ids["o-a"], "sql")}
    by_lead = {(fid, rep): (fu, stage) for _, fid, rep, _, fu, stage in assigned}
    assert by_lead[(ids["o-a"], li)][0] is not None and by_lead[(ids["o-a"], li)][1] == "engaged"
    assert by_lead[(ids["o-b"], wang)][0] is None  # wang never acted; li did, after the hand-over
    assert by_lead[(ids["o-b"], li)][0] is not None
    assert by_lead[(ids["o-d"], wang)] == (None, "engaged")
    rows = {r["name"]: r for r in _numbers(app)["reps"]["rows"]}
    assert (rows["Li Wei"]["leads"], rows["Li Wei"]["followed_up"], rows["Wang Fang"]["leads"]) == (3, 3, 2)
    funnel = {r["stage"]: r["reached"] for r in _numbers(app)["funnel"]["rows"]}
    assert (funnel["new"], funnel["engaged"], funnel["mql"], funnel["sql"]) == (4, 2, 1, 1)


def test_a_merge_and_its_undo_move_the_marks_with_the_timeline(app, people):
    reps, ids = people
    with _db(app).transaction() as s:
        rep_actions.followed_up(s, reps["wang"], ids["o-d"])
    _agrees(app)
    with _db(app).transaction() as s:
        done = merge.merge_openids(s, "o-c", "o-d")  # o-d's stage history, assignment and follow-up move to o-c
        merge_id = done.id
    entries, assigned = _agrees(app)
    assert {f for f, *_ in entries if f == ids["o-d"]} == set()
    assert {(fid, rep) for _, fid, rep, *_ in assigned} >= {(ids["o-c"], reps["wang"])}
    with _db(app).transaction() as s:
        merge.undo(s, merge_id)
    entries, _ = _agrees(app)
    assert (ids["o-d"], "engaged") in {(f, st) for f, st, *_ in entries}
