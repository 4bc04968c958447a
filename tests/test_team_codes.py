"""Team live codes end to end: the API and CLI against the sandbox, scans assigned fairly within caps, the backup,
the contact way re-listed at schedule boundaries, midnight and caps, WeCom contacts through the code, printing."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from scrm.assignment_models import AssignmentTurn
from scrm.models import Outbox
from tasks.codes import sync
from tasks.registry import GiveUp
from tests.assignment_kit import (
    WORKDAY,
    Clock,
    activities,
    add_rep,
    at,
    change_rep,
    failed,
    follower,
    outbox,
    owners,
    scan,
    svc,
    wecom_add,
)
from tests.helpers import drain
from tests.test_reps import token
from wechat.sandbox_contacts import contact_way
from wechat.sandbox_state import SandboxControl

OA_QR, WAY, UPDATE = (
    "oa/qrcode/create",
    "wecom/externalcontact/add_contact_way",
    "wecom/externalcontact/update_contact_way",
)


@pytest.fixture
def sandbox(app) -> SandboxControl:
    return SandboxControl(svc(app).redis_slow)


def create(client, headers, **body):
    r = client.post("/api/v1/codes", json=body, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def listed(sandbox, code) -> list[str]:
    return contact_way(sandbox, code["wecom"]["config_id"])["user"]


def sync_at(app, code_id: int, seconds: int) -> dict:
    with app.app_context():
        return sync(code_id, at=at(seconds))


def test_create_makes_both_halves_with_the_team_scene(app, client, live, auth_headers, sandbox):
    a, b, c = add_rep(app, "a"), add_rep(app, "b"), add_rep(app, "c")
    code = create(client, auth_headers, name="Expo booth", members=[{"rep_id": a}, {"rep_id": b, "weight": 3}],
                  backup_rep_id=c, tags=["via:expo"], welcome="欢迎!")  # fmt: skip
    scene = f"team:{code['id']}"
    assert (code["scene"], code["complete"], code["tags"], code["welcome"]) == (scene, True, ["via:expo"], "欢迎!")
    (qr,) = sandbox.sent(OA_QR)
    assert qr["body"] == {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}}
    (way,) = sandbox.sent(WAY)
    assert (way["body"]["type"], way["body"]["state"], way["body"]["user"]) == (2, scene, ["a", "b"])
    assert code["wecom"]["users"] == ["a", "b"] and code["oa"]["url"] == qr["answer"]["url"]
    assert client.get(f"/api/v1/codes/{code['id']}", headers=auth_headers).json == code
    assert client.get("/api/v1/codes", headers=auth_headers).json == {"items": [code], "next": None}
    (boundary,) = outbox(app, "codes.sync")  # no working hours: the next change is midnight
    assert boundary.run_after is not None and boundary.key.startswith(f"codes.sync:at:{code['id']}:")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "members is required"),
        ({"members": []}, "members: a list of 1 to 100"),
        ({"members": [{"rep_id": 999}]}, "members: no rep 999"),
        ({"members": [{"rep_id": 1, "weight": 0}]}, "members[0].weight must be a positive integer"),
        ({"members": [{"rep_id": 1, "weight": 101}]}, "members[0].weight must be from 1 to 100"),
        ({"members": [1, 1]}, "members[1]: rep 1 is listed twice"),
        ({"members": [{"rep": 1}]}, "members[0]: {rep_id, weight}"),
        ({"members": [1], "backup_rep_id": 42}, "backup_rep_id: no rep 42"),
        ({"members": [1], "tags": ["x" * 65]}, "is not a tag name"),
        ({"members": [1], "welcome": "字" * 1400}, "welcome: text of at most 4000 bytes"),
        ({"members": [1], "colour": "red"}, "unknown field 'colour'"),
        ({"members": [1], "active": "yes"}, "active must be true or false"),
        ({"members": [1], "name": ""}, "name: 1 to 128 characters"),
    ],
)
def test_bad_input_is_refused_naming_the_field(app, client, auth_headers, body, words):
    add_rep(app, "a")
    r = client.post("/api/v1/codes", json=body, headers=auth_headers)
    assert r.status_code == 400 and words in r.json["message"], r.json
    assert client.get("/api/v1/codes", headers=auth_headers).json["items"] == []


def test_roles_and_missing_codes(app, client, auth_headers):
    rep = add_rep(app, "a")
    assert client.get("/api/v1/codes/5", headers=auth_headers).status_code == 404
    assert client.patch("/api/v1/codes/5", json={}, headers=auth_headers).status_code == 404
    for role, subject in (("rep", str(rep)), ("staff", "expo")):
        headers = token(app, role, subject)
        assert client.get("/api/v1/codes", headers=headers).status_code == 403
        assert client.post("/api/v1/codes", json={"members": [rep]}, headers=headers).status_code == 403
    assert client.get("/api/v1/codes").status_code == 401


def test_a_thousand_scans_share_by_weight_and_get_the_code_tags(app, client, live, auth_headers):
    a, b, c = add_rep(app, "a"), add_rep(app, "b", weight=2), add_rep(app, "c")
    code = create(client, auth_headers, members=[{"rep_id": a}, {"rep_id": b}, {"rep_id": c, "weight": 5}],
                  tags=["via:team"])  # fmt: skip
    tick, n = Clock(), 1000
    for i in range(n):  # recorded by the requests, applied in batches below, as under load
        scan(client, f"o{i}", f"team:{code['id']}", tick(), apply=False)
    drain(app)
    got = owners(app)
    for rep, share in ((a, 1 / 8), (b, 2 / 8), (c, 5 / 8)):
        assert abs(got[rep] - n * share) <= n * share * 0.03, got  # within 3% (the rule gives within one lead)
    assert failed(app) == []
    tagged = client.get("/api/v1/followers/o7", headers=auth_headers).json
    assert "via:team" in tagged["tags"] and tagged["source"] == f"team:{code['id']}"
    (entry,) = activities(app, "o7", "owner_assigned")
    assert (entry["via"], entry["code"]) == ("team_code", code["id"])


def test_caps_then_backup_then_unowned(app, client, live, auth_headers, caplog):
    a, b = add_rep(app, "a", daily_cap=1), add_rep(app, "b", daily_cap=2)
    backup = add_rep(app, "backup")
    code = create(client, auth_headers, members=[a, b], backup_rep_id=backup)
    tick = Clock()
    for i in range(5):
        scan(client, f"o{i}", f"team:{code['id']}", tick())
    assert [follower(app, f"o{i}").owner_id for i in range(5)] == [a, b, b, backup, backup]
    assert activities(app, "o3", "owner_assigned")[0]["via"] == "team_backup"
    keys = [r.key for r in outbox(app, "codes.sync") if ":cap:" in r.key]  # a full after o0, b after o2
    assert keys == [f"codes.sync:cap:{a}:2026-01-07:1:{code['id']}", f"codes.sync:cap:{b}:2026-01-07:2:{code['id']}"]
    change_rep(app, backup, active=False)
    scan(client, "o9", f"team:{code['id']}", tick())
    assert follower(app, "o9").owner_id is None
    assert "no usable backup" in activities(app, "o9", "assignment_skipped")[0]["why"]
    assert failed(app) == []


def test_first_touch_keeps_an_owner_and_last_touch_keeps_a_member(app, client, live, auth_headers):
    from tests.assignment_kit import load_playbook

    a, b, other = add_rep(app, "a"), add_rep(app, "b"), add_rep(app, "other")
    code = create(client, auth_headers, members=[a, b])
    tick = Clock()
    scan(client, "o1", f"rep:{other}", tick())
    scan(client, "o1", f"team:{code['id']}", tick(), first=False)
    assert follower(app, "o1").owner_id == other  # first touch
    load_playbook(app, "assignment: last_touch\n")
    scan(client, "o1", f"team:{code['id']}", tick(), first=False)
    owner = follower(app, "o1").owner_id
    assert owner in (a, b)
    scan(client, "o1", f"team:{code['id']}", tick(), first=False)
    assert follower(app, "o1").owner_id == owner  # already one of the team's: kept


def test_contact_way_follows_schedules_midnight_and_backup(app, client, live, auth_headers, sandbox):
    morning = {"weekly": {"wed": ["09:00-12:00"], "thu": ["09:00-18:00"]}}
    a, b = add_rep(app, "a", hours=morning), add_rep(app, "b", hours=WORKDAY)
    backup = add_rep(app, "backup")
    code = create(client, auth_headers, members=[a, b], backup_rep_id=backup)
    cid = code["id"]
    assert sync_at(app, cid, 0)["users"] == ["a", "b"]  # Wednesday 10:00 in Shanghai
    assert listed(sandbox, code) == ["a", "b"]
    updates = contact_way(sandbox, code["wecom"]["config_id"]).get("updates", 0)  # creation listed as of now
    keys = {r.key: r.run_after for r in outbox(app, "codes.sync")}
    assert keys[f"codes.sync:at:{cid}:2026-01-07T04:00:00"] == at(2 * 3600)  # 12:00: a stops
    result = sync_at(app, cid, 2 * 3600)
    assert (result["users"], result["next"]) == (["b"], "2026-01-07T10:00:00")  # until 18:00
    assert listed(sandbox, code) == ["b"]
    result = sync_at(app, cid, 8 * 3600)  # 18:00: nobody works, the backup is listed
    assert (result["users"], result["reason"], result["next"]) == (["backup"], "backup", "2026-01-07T16:00:00")
    assert listed(sandbox, code) == ["backup"]
    assert sync_at(app, cid, 23 * 3600)["users"] == ["a", "b"]  # Thursday 09:00
    assert contact_way(sandbox, code["wecom"]["config_id"])["updates"] == updates + 3
    before = sandbox.calls(UPDATE)
    assert sync_at(app, cid, 23 * 3600 + 60)["changed"] is False and sandbox.calls(UPDATE) == before
    got = client.get(f"/api/v1/codes/{cid}", headers=auth_headers).json["wecom"]
    assert got["users"] == ["a", "b"] and got["synced_at"] == "2026-01-08T01:01:00Z"


def test_a_filled_cap_takes_the_rep_off_the_contact_way(app, client, live, auth_headers, sandbox):
    a, b = add_rep(app, "a", daily_cap=1), add_rep(app, "b")
    code = create(client, auth_headers, members=[a, b])
    tick = Clock()
    scan(client, "o1", f"team:{code['id']}", tick())
    assert follower(app, "o1").owner_id == a
    (capped,) = [r for r in outbox(app, "codes.sync") if ":cap:" in r.key]
    assert capped.args == {"code_id": code["id"]}
    assert sync_at(app, code["id"], 5)["users"] == ["b"] and listed(sandbox, code) == ["b"]
    assert sync_at(app, code["id"], 14 * 3600)["users"] == ["a", "b"]  # local midnight: a's cap resets


def test_wecom_contact_through_the_code_counts_for_the_member_wecom_chose(app, client, live, auth_headers):
    a, b = add_rep(app, "a", daily_cap=1), add_rep(app, "b")
    code = create(client, auth_headers, members=[a, b], tags=["wecom:team"])
    tick = Clock()
    wecom_add(client, "wm1", "b", f"team:{code['id']}", tick())
    f = follower(app, "wm1")
    assert f.owner_id == b and "wecom:team" in client.get("/api/v1/followers/wm1", headers=auth_headers).json["tags"]
    with svc(app).db.sessions() as s:
        turns = {t.rep_id: t.picks for t in s.scalars(select(AssignmentTurn))}
    assert turns == {b: 1}  # charged to the pool: the next OA scan is a's turn
    scan(client, "o2", f"team:{code['id']}", tick())
    assert follower(app, "o2").owner_id == a
    wecom_add(client, "wm3", "a", f"team:{code['id']}", tick())  # WeCom still listed a: the contact is a's anyway
    assert follower(app, "wm3").owner_id == a and failed(app) == []


def test_inactive_or_unknown_team_code(app, client, live, auth_headers, sandbox):
    a = add_rep(app, "a")
    code = create(client, auth_headers, members=[a], tags=["t"])
    r = client.patch(f"/api/v1/codes/{code['id']}", json={"active": False}, headers=auth_headers)
    assert r.status_code == 200 and r.json["active"] is False
    tick = Clock()
    scan(client, "o1", f"team:{code['id']}", tick())
    scan(client, "o2", "team:424242", tick())
    for openid in ("o1", "o2"):
        f = follower(app, openid)
        assert f.owner_id is None and f.source.startswith("team:")
        assert activities(app, openid, "assignment_skipped") and activities(app, openid, "tag_added") == []
    assert sync_at(app, code["id"], 0) == {"skipped": "inactive"}
    with app.app_context(), pytest.raises(GiveUp):
        sync(424242)


def test_edit_relists_the_contact_way(app, client, live, auth_headers, sandbox):
    a, b = add_rep(app, "a"), add_rep(app, "b")
    code = create(client, auth_headers, members=[a])
    r = client.patch(f"/api/v1/codes/{code['id']}", json={"members": [a, {"rep_id": b, "weight": 2}]},
                     headers=auth_headers)  # fmt: skip
    assert r.status_code == 200 and r.json["members"] == [{"rep_id": a}, {"rep_id": b, "weight": 2}]
    (edit,) = [row for row in outbox(app, "codes.sync") if ":edit:" in row.key]
    with app.app_context():
        assert sync(**edit.args)["users"] == ["a", "b"]
    assert listed(sandbox, code) == ["a", "b"]
    r = client.patch(f"/api/v1/codes/{code['id']}", json={"name": "renamed"}, headers=auth_headers)
    assert r.json["name"] == "renamed" and len([x for x in outbox(app, "codes.sync") if ":edit:" in x.key]) == 1


def test_wechat_failure_keeps_the_half_made_and_patch_completes_it(app, client, live, auth_headers, sandbox):
    a = add_rep(app, "a")
    sandbox.set_wecom_members("someone.else")  # WeCom: a is not a member of the corp
    r = client.post("/api/v1/codes", json={"members": [a]}, headers=auth_headers)
    assert r.status_code == 422 and r.json["detail"]["errcode"] == 60111, r.json
    cid = r.json["detail"]["code_id"]
    half = client.get(f"/api/v1/codes/{cid}", headers=auth_headers).json
    assert (half["complete"], half["oa"] is not None, half["wecom"]) == (False, True, None)
    assert client.get(f"/api/v1/codes/{cid}/qrcode.png?kind=wecom", headers=auth_headers).status_code == 409
    sandbox.set_wecom_members()
    done = client.patch(f"/api/v1/codes/{cid}", json={}, headers=auth_headers)
    assert done.status_code == 200 and done.json["complete"] and done.json["oa"] == half["oa"]
    assert sandbox.calls(OA_QR) == 1  # one permanent OA code spent, not two


def test_nobody_to_list_is_a_409(app, client, live, auth_headers):
    a = add_rep(app, "a", active=False)
    r = client.post("/api/v1/codes", json={"members": [a]}, headers=auth_headers)
    assert r.status_code == 409 and "at least one user" in r.json["message"]


def test_update_contact_way_refusals_in_the_sandbox(app, client, live, auth_headers, sandbox):
    a = add_rep(app, "a")
    code = create(client, auth_headers, members=[a])
    client.patch(f"/api/v1/codes/{code['id']}", json={"members": [a, add_rep(app, "ghost")]}, headers=auth_headers)
    sandbox.set_wecom_members("a")
    with app.app_context(), pytest.raises(GiveUp, match="60111"):
        sync(code["id"], at=at(0))
    assert listed(sandbox, code) == ["a"]  # refused: nothing changed
    from tasks.wechat import wecom_client
    from wechat.errors import WeChatAPIError

    with app.app_context(), pytest.raises(WeChatAPIError) as exc:
        wecom_client().update_contact_way("no-such-config", ["a"])
    assert exc.value.errcode == 40058


def test_printable_png_and_cli(app, client, live, auth_headers, runner, tmp_path):
    a, b = add_rep(app, "a"), add_rep(app, "b")
    result = runner.invoke(args=["code", "add", "展位 A", "--member", f"{a}", "--member", f"{b}:3", "--tag", "x"])
    assert result.exit_code == 0, result.output
    cid = int(result.output.split()[0])
    shown = json.loads(runner.invoke(args=["code", "show", str(cid)]).output)
    assert shown["members"] == [{"rep_id": a}, {"rep_id": b, "weight": 3}] and shown["tags"] == ["x"]
    assert f"team:{cid}" in runner.invoke(args=["code", "list"]).output
    for kind, field in (("oa", ("oa", "url")), ("wecom", ("wecom", "qr_code"))):
        r = client.get(f"/api/v1/codes/{cid}/qrcode.png?kind={kind}&size=400", headers=auth_headers)
        assert r.status_code == 200 and r.mimetype == "image/png"
        decoded = [f.text for f in zxingcpp.read_barcodes(Image.open(io.BytesIO(r.data)))]
        assert decoded == [shown[field[0]][field[1]]]
    assert client.get(f"/api/v1/codes/{cid}/qrcode.png?kind=x", headers=auth_headers).status_code == 400
    out = tmp_path / "code.png"
    assert runner.invoke(args=["code", "qrcode", str(cid), "--out", str(out)]).exit_code == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    bad = runner.invoke(args=["code", "add", "x", "--member", "999"])
    assert bad.exit_code == 1 and "no rep 999" in bad.output
    assert "INCOMPLETE" not in runner.invoke(args=["code", "list"]).output
    with svc(app).db.sessions() as s:
        assert s.scalar(select(Outbox.id).where(Outbox.task == "codes.sync")) is not None
    assert Counter(r.exit_code for r in [runner.invoke(args=["code", "sync", str(cid)])]) == {0: 1}
