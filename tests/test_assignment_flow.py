"""Assignment as the applier applies callbacks: personal codes, first vs last touch, WeCom contacts, MQL, `assign`,
and the bad input that must never fail an interaction (unknown or inactive reps, unknown codes)."""

from __future__ import annotations

import logging

import pytest

from scrm.models import Interaction
from tests.assignment_kit import (
    Clock,
    activities,
    add_rep,
    change_rep,
    failed,
    follower,
    load_playbook,
    loads,
    outbox,
    scan,
    svc,
    wecom_add,
)
from tests.helpers import post

LAST_TOUCH = "assignment: last_touch\nrules: []\n"
MQL_BOOK = """
stages:
  order: [{name: new, at: 0}, {name: engaged, at: 10}, {name: mql, at: 40}, customer]
rules:
  - name: demo
    when: {click: DEMO}
    do: [{score: 50}]
"""


def interaction_id(app, openid: str, kind: str) -> int:
    with svc(app).db.sessions() as s:
        return s.query(Interaction.id).filter_by(openid=openid, kind=kind).order_by(Interaction.id).first()[0]


def test_personal_code_scan_assigns_records_and_tells_the_rep_once(app, client, auth_headers):
    li = add_rep(app, "li.wei")
    tick = Clock()
    created = tick()
    scan(client, "o1", f"rep:{li}", created)
    scan(client, "o1", f"rep:{li}", created)  # WeChat retried the callback: the same event, recorded once
    f = follower(app, "o1")
    assert (f.owner_id, f.source) == (li, f"rep:{li}")
    (entry,) = activities(app, "o1", "owner_assigned")
    assert entry == {"rep": li, "from": None, "to": li, "via": "rep_code", "code": None}
    (notice,) = outbox(app, "rep.notify")
    iid = interaction_id(app, "o1", "subscribe")
    assert notice.key == f"rep.notify:assigned:{f.id}:{iid}"
    assert {k: notice.args[k] for k in ("openid", "rep_id", "kind", "reason")} == {
        "openid": "o1", "rep_id": li, "kind": "assigned", "reason": "new lead assigned"}  # fmt: skip
    assert loads(app) == {li: 1}
    timeline = client.get("/api/v1/followers/o1/timeline", headers=auth_headers).json
    assert "owner_assigned" in [e["kind"] for e in timeline]
    assert client.get("/api/v1/followers/o1", headers=auth_headers).json["owner"] == li


def test_first_touch_keeps_the_owner(app, client):
    a, b = add_rep(app, "a"), add_rep(app, "b")
    tick = Clock()
    scan(client, "o1", f"rep:{a}", tick())
    scan(client, "o1", f"rep:{b}", tick(), first=False)
    assert follower(app, "o1").owner_id == a
    assert len(activities(app, "o1", "owner_assigned")) == 1 and loads(app) == {a: 1}


def test_last_touch_gives_the_lead_to_the_latest_code(app, client):
    load_playbook(app, LAST_TOUCH)
    a, b = add_rep(app, "a"), add_rep(app, "b")
    tick = Clock()
    scan(client, "o1", f"rep:{a}", tick())
    scan(client, "o1", f"rep:{b}", tick(), first=False)
    assert follower(app, "o1").owner_id == b
    history = activities(app, "o1", "owner_assigned")
    assert [(e["from"], e["to"]) for e in history] == [(None, a), (a, b)]
    scan(client, "o1", f"rep:{b}", tick(), first=False)  # the owner's own code again: nothing changes
    assert len(activities(app, "o1", "owner_assigned")) == 2
    assert len(outbox(app, "rep.notify")) == 2


def test_unknown_or_inactive_rep_leaves_the_lead_unowned_with_a_warning(app, client, caplog):
    gone = add_rep(app, "gone", active=False)
    fresh = add_rep(app, "fresh", confirmed=False)
    tick = Clock()
    with caplog.at_level(logging.WARNING, logger="scrm.assign_effects"):
        scan(client, "o1", "rep:999", tick())
        scan(client, "o2", f"rep:{gone}", tick())
        scan(client, "o3", f"rep:{fresh}", tick())
    for openid, scene in (("o1", "rep:999"), ("o2", f"rep:{gone}"), ("o3", f"rep:{fresh}")):
        f = follower(app, openid)
        assert (f.owner_id, f.source, f.subscribed) == (None, scene, True), openid
        (skip,) = activities(app, openid, "assignment_skipped")
        assert skip["scene"] == scene
    text = caplog.text
    assert "rep 999 is unknown" in text and f"rep {gone} is inactive" in text and f"rep {fresh} is unconfirmed" in text
    assert failed(app) == [] and outbox(app, "rep.notify") == [] and loads(app) == {}


def test_malformed_scenes_are_only_recorded(app, client):
    tick = Clock()
    for i, scene in enumerate(["rep:", "rep:abc", "team:-1", "rep:1:2", "team:99999999999999999999"]):
        scan(client, f"o{i}", scene, tick())
        assert (follower(app, f"o{i}").owner_id, follower(app, f"o{i}").source) == (None, scene)
    assert failed(app) == []


def test_wecom_contact_is_owned_by_the_member_wecom_reports(app, client):
    a, b = add_rep(app, "a"), add_rep(app, "b")
    tick = Clock()
    wecom_add(client, "wm1", "b", f"rep:{a}", tick())  # the state names a, but b is who WeCom gave the contact to
    f = follower(app, "wm1")
    assert (f.owner_id, f.channel, f.source) == (b, "wecom", f"rep:{a}")
    (entry,) = activities(app, "wm1", "owner_assigned")
    assert (entry["via"], entry["to"]) == ("wecom_contact", b) and loads(app) == {b: 1}
    wecom_add(client, "wm2", "new.member", "", tick())  # a member nobody listed yet: created unconfirmed, owns it
    with svc(app).db.sessions() as s:
        from scrm.models import Rep

        rep = s.query(Rep).filter_by(userid="new.member").one()
        assert not rep.confirmed and follower(app, "wm2").owner_id == rep.id


def test_wecom_contact_under_first_and_last_touch(app, client):
    a, b = add_rep(app, "a"), add_rep(app, "b")
    tick = Clock()
    scan(client, "p1", f"rep:{a}", tick())
    wecom_add(client, "p1", "b", "", tick())  # the same id for both sides only to keep the test short
    assert follower(app, "p1").owner_id == a
    load_playbook(app, LAST_TOUCH)
    wecom_add(client, "p2", "a", "", tick())
    wecom_add(client, "p2", "b", "", tick())
    assert follower(app, "p2").owner_id == b


def test_unowned_lead_reaching_mql_is_assigned_by_the_picker(app, client):
    load_playbook(app, MQL_BOOK)
    a, b = add_rep(app, "a"), add_rep(app, "b", weight=3)
    add_rep(app, "off", active=False)
    tick = Clock()
    for i in range(8):
        post(client, "subscribe", openid=f"o{i}", create_time=tick())
        post(client, "click", openid=f"o{i}", key="DEMO", create_time=tick())
    got = [follower(app, f"o{i}").owner_id for i in range(8)]
    assert got.count(a) == 2 and got.count(b) == 6
    entry = activities(app, "o0", "owner_assigned")[0]
    assert entry["via"] == "mql" and follower(app, "o0").stage == "mql"
    kinds = sorted(r.args["kind"] for r in outbox(app, "rep.notify") if r.args["openid"] == "o0")
    assert kinds == ["assigned"]  # one notice: the lead is theirs (the mql notice goes to owners already there)


def test_owned_or_unreachable_leads_reaching_mql_keep_their_owner(app, client):
    load_playbook(app, MQL_BOOK)
    a, b = add_rep(app, "a"), add_rep(app, "b")
    tick = Clock()
    scan(client, "o1", f"rep:{b}", tick())
    post(client, "click", openid="o1", key="DEMO", create_time=tick())
    assert follower(app, "o1").owner_id == b
    post(client, "subscribe", openid="o2", create_time=tick())
    post(client, "unsubscribe", openid="o2", create_time=tick())
    post(client, "click", openid="o2", key="DEMO", create_time=tick())
    assert follower(app, "o2").owner_id is None and follower(app, "o2").stage == "mql"
    assert a not in loads(app)


def test_nobody_eligible_at_mql_is_noted(app, client):
    load_playbook(app, MQL_BOOK)
    add_rep(app, "full", daily_cap=0)
    tick = Clock()
    post(client, "subscribe", openid="o1", create_time=tick())
    post(client, "click", openid="o1", key="DEMO", create_time=tick())
    assert follower(app, "o1").owner_id is None
    assert activities(app, "o1", "assignment_skipped")[0]["why"] == "reached mql but no rep is eligible"


def test_playbook_assign_goes_through_the_same_path(app, client):
    load_playbook(app, "rules: [{name: vip, when: {click: VIP}, do: [{assign: boss, overwrite: true}]}]")
    boss = add_rep(app, "boss", daily_cap=1)
    a = add_rep(app, "a")
    tick = Clock()
    scan(client, "o1", f"rep:{a}", tick())
    post(client, "click", openid="o1", key="VIP", create_time=tick())
    f = follower(app, "o1")
    assert f.owner_id == boss
    last = activities(app, "o1", "owner_assigned")[-1]
    assert (last["via"], last["rule"], last["from"], last["to"]) == ("playbook", "vip", a, boss)
    assert loads(app) == {a: 1, boss: 1}
    assert [r.args["rep_id"] for r in outbox(app, "rep.notify")] == [a, boss]
    change_rep(app, boss, daily_cap=None)


def test_the_assignment_setting_in_the_playbook_grammar(client, auth_headers):
    from scrm.playbook import PlaybookError, parse

    assert parse("rules: []").assignment == "first_touch" and parse(LAST_TOUCH).assignment == "last_touch"
    with pytest.raises(PlaybookError) as exc:
        parse("assignment: newest\n")
    assert exc.value.errors == ["assignment: expected 'first_touch' or 'last_touch'"]
    r = client.put("/api/v1/playbook", data="assignment: true\n", headers=auth_headers)
    assert r.status_code in (400, 422) and "assignment" in str(r.json)


def test_scene_parts_that_look_like_digits_but_are_not(app, client):
    tick = Clock()
    for i, scene in enumerate(["rep:³", "team:٣", "rep:1234567890123"]):
        scan(client, f"o{i}", scene, tick())
        assert follower(app, f"o{i}").source == scene
    assert failed(app) == []
