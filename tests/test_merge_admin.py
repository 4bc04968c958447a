"""Contact merges by hand and their faults (API and CLI), owner conflicts, and merges racing the applier."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from scrm import applier, merge
from scrm.merge_models import MERGED, ContactMerge
from scrm.models import Activity, Follower, Interaction, Rep
from tests.helpers import post
from tests.merge_kit import EID, OPENID, PLAYBOOK, follower_row, get, load, merges, svc

TOKENS = ("marketer", "rep")


@pytest.fixture
def two(app, client):
    """o-amy (OA) and wm-amy (WeCom) recorded and applied, no profile fetched: not merged yet."""
    load(app, PLAYBOOK)
    post(client, "subscribe", openid=OPENID, scene="booth:expo:a1")
    post(client, "wecom-add-contact", userid="zhao.lei", external_userid=EID)
    return follower_row(app, OPENID).id, follower_row(app, EID).id


def token(runner, role: str) -> dict[str, str]:
    args = ["tokens", "issue", f"t-{role}", "--role", role] + (["--subject", "1"] if role == "rep" else [])
    out = runner.invoke(args=args)
    assert out.exit_code == 0, out.output
    return {"Authorization": f"Bearer {out.output.strip().split()[-1]}"}


def set_owner(app, openid: str, userid: str) -> int:
    with svc(app).db.transaction() as s:
        rep = s.scalar(select(Rep).where(Rep.userid == userid))
        if rep is None:
            rep = Rep(userid=userid, name=userid)
            s.add(rep)
            s.flush()
        s.scalar(select(Follower).where(Follower.openid == openid)).owner_id = rep.id
        return rep.id


def test_merge_by_hand_and_its_refusals(app, client, auth_headers, two):
    bad = [
        ({"primary": OPENID, "secondary": "nobody"}, 404),
        ({"primary": OPENID, "secondary": OPENID}, 400),
        ({"primary": EID, "secondary": OPENID}, 400),  # the OA follower must stay the primary
        ({"primary": OPENID}, 422),
        ({"primary": OPENID, "secondary": "x" * 65}, 422),
    ]
    for body, status in bad:
        r = client.post("/api/v1/merges", json=body, headers=auth_headers)
        assert r.status_code == status, (body, r.json)
    r = client.post("/api/v1/merges", json={"primary": OPENID, "secondary": EID}, headers=auth_headers)
    assert r.status_code == 201 and r.json["reason"] == "manual" and r.json["state"] == "merged"
    again = client.post("/api/v1/merges", json={"primary": OPENID, "secondary": EID}, headers=auth_headers)
    assert again.status_code == 409 and "merged into another follower" in again.json["message"]
    assert get(client, auth_headers, EID)["openid"] == OPENID
    assert [m["id"] for m in merges(client, auth_headers, openid=EID)] == [r.json["id"]]
    assert merges(client, auth_headers, state="undone") == []
    assert client.get("/api/v1/merges", query_string={"openid": "nobody"}, headers=auth_headers).status_code == 404
    assert client.get("/api/v1/merges", query_string={"state": "gone"}, headers=auth_headers).status_code == 422
    assert client.get("/api/v1/merges/999", headers=auth_headers).status_code == 404
    assert client.get(f"/api/v1/merges/{r.json['id']}", headers=auth_headers).json["id"] == r.json["id"]
    assert client.post("/api/v1/merges/999/undo", headers=auth_headers).status_code == 404


def test_only_an_admin_merges_or_undoes(app, client, runner, auth_headers, two):
    done = client.post("/api/v1/merges", json={"primary": OPENID, "secondary": EID}, headers=auth_headers).json
    headers = {role: token(runner, role) for role in TOKENS}
    for role in TOKENS:
        body = {"primary": OPENID, "secondary": EID}
        assert client.post("/api/v1/merges", json=body, headers=headers[role]).status_code == 403
        assert client.post(f"/api/v1/merges/{done['id']}/undo", headers=headers[role]).status_code == 403
    assert client.get("/api/v1/merges", headers=headers["rep"]).status_code == 403
    assert client.get("/api/v1/merges", headers=headers["marketer"]).json["items"][0]["id"] == done["id"]
    assert client.get("/api/v1/merges").status_code == 401
    assert get(client, auth_headers, EID)["openid"] == OPENID  # still merged


def test_owner_conflict_keeps_the_primarys_and_notes_the_other(app, client, auth_headers, two):
    primary_id, _ = two
    li = set_owner(app, OPENID, "li.wei")
    zhao = follower_row(app, EID).owner_id
    assert zhao is not None and zhao != li
    m = client.post("/api/v1/merges", json={"primary": OPENID, "secondary": EID}, headers=auth_headers).json
    assert get(client, auth_headers, EID)["owner"] == li
    with svc(app).db.sessions() as s:
        (note,) = s.scalars(select(Activity).where(Activity.kind == "owner_conflict"))
    assert note.follower_id == primary_id and note.data["kept"] == li and note.data["other"] == zhao
    with svc(app).db.sessions() as s:  # nobody's lead list shows the secondary while merged
        assert s.scalar(select(Follower.owner_id).where(Follower.openid == EID)) is None
    client.post(f"/api/v1/merges/{m['id']}/undo", headers=auth_headers)
    assert get(client, auth_headers, OPENID)["owner"] == li and get(client, auth_headers, EID)["owner"] == zhao


def test_cli_lists_merges_merges_and_unmerges(app, runner, two):
    assert runner.invoke(args=["contact", "merges"]).output.strip() == "no merges"
    out = runner.invoke(args=["contact", "merge", OPENID, EID])
    assert out.exit_code == 0 and out.output.startswith("merged: 1  merged  wm-amy (wecom) -> o-amy (oa)  manual")
    listed = runner.invoke(args=["contact", "merges", "--state", "merged"]).output
    assert "wm-amy (wecom) -> o-amy (oa)" in listed and "interaction 1" in listed
    again = runner.invoke(args=["contact", "merge", OPENID, EID])
    assert again.exit_code != 0 and "merged into another follower" in again.output
    out = runner.invoke(args=["contact", "unmerge", "1"])
    assert out.exit_code == 0 and out.output.startswith("undone: 1  undone")
    assert runner.invoke(args=["contact", "unmerge", "1"]).exit_code != 0
    assert "no merge 7" in runner.invoke(args=["contact", "unmerge", "7"]).output
    assert '"state": "undone"' in runner.invoke(args=["contact", "merges", "--json"]).output


def same_unionid(app, *openids: str) -> str:
    with svc(app).db.transaction() as s:
        for f in s.scalars(select(Follower).where(Follower.openid.in_(openids))):
            f.unionid = "o-union-amy"
    return "o-union-amy"


def pending_events(client, n: int) -> int:
    """`n` texts from the OA follower and `n` WeCom edits of the contact, recorded and not applied yet."""
    start = int(time.time()) + 10
    for i in range(n):
        post(client, "text", openid=OPENID, content=f"hello {i}", apply=False)
        post(client, "wecom-edit-contact", userid="zhao.lei", external_userid=EID, create_time=start + i, apply=False)
    return 2 * n


def assert_all_on(app, primary_id: int, total: int) -> None:
    with svc(app).db.sessions() as s:
        rows = s.execute(select(Interaction.follower_id, Interaction.applied_at, Interaction.apply_error)).all()
    assert len(rows) == total
    assert all(r.applied_at is not None and r.apply_error is None for r in rows)
    assert {r.follower_id for r in rows} == {primary_id}


def test_a_merge_holding_its_locks_loses_no_event(app, client, two):
    """The applier skips (PostgreSQL) or waits for (SQLite) the partitions a merge holds; nothing is lost."""
    primary_id, _ = two
    unionid = same_unionid(app, OPENID, EID)
    total = 2 + pending_events(client, 20)
    db = svc(app).db
    result: dict[str, applier.Report] = {}
    with db.transaction() as session:
        (done,) = merge.by_unionid(session, unionid)
        worker = threading.Thread(target=lambda: result.update(report=applier.drain(db, 5)))
        worker.start()
        worker.join(0.5)  # PostgreSQL: done, having applied nothing of theirs; SQLite: waiting for the write lock
    worker.join(30)
    assert not worker.is_alive()
    applier.drain(db)
    assert_all_on(app, primary_id, total)
    assert get(client, {"Authorization": "Bearer test-admin-token"}, EID)["openid"] == OPENID
    assert done.moved["interaction"] == 1  # the add: the rest were not applied when it moved


def test_merges_racing_the_applier_lose_no_event(app, client, two):
    primary_id, _ = two
    unionid = same_unionid(app, OPENID, EID)
    total = 2 + pending_events(client, 40)
    db = svc(app).db
    worker = threading.Thread(target=applier.drain, args=(db, 3))
    worker.start()
    while worker.is_alive():  # merge, undo, merge again while batches apply
        with db.sessions() as s:
            live = s.scalar(select(func.count()).select_from(Follower).where(Follower.merged_into.is_not(None)))
        with db.transaction() as session:
            if live:
                merge.undo(session, session.scalar(select(ContactMerge.id).where(ContactMerge.state == MERGED)))
            else:
                merge.merge_openids(session, OPENID, EID)
    worker.join()
    assert follower_row(app, EID).unionid == unionid
    if follower_row(app, EID).merged_into is None:  # undone last: by hand (the job never merges an undone pair)
        with db.transaction() as session:
            merge.merge_openids(session, OPENID, EID)
    applier.drain(db)
    assert_all_on(app, primary_id, total)


def test_two_merge_jobs_at_once_make_one_merge(app, client, two):
    unionid = same_unionid(app, OPENID, EID)
    results: list[dict] = []

    def job() -> None:
        with app.app_context():
            from tasks.merge import merge_unionid

            results.append(merge_unionid(unionid))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(len(r["merges"]) for r in results) == [0, 1]
    with svc(app).db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ContactMerge)) == 1
