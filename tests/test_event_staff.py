"""Staff on duty, end to end through signed callbacks: registering staff (API), the staff code's reply, going on and
off duty, moving booths, the day's end, a visitor on a staff code, and leads routed to the booth's on-duty staff
round-robin with their WeCom notification recorded by the sandbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from foundation.clock import utcnow
from scrm import event_forms, event_turns, hours
from scrm.models import Follower, Rep
from scrm.staff_duty import DUTY
from tasks.worker import run_worker
from tests.event_forms_kit import content, duties, fill, last_decision, leads, make_event, say, scan, svc
from tests.helpers import post
from tests.messaging_kit import sandbox, with_messaging
from welead.auth import issue

ANSWERS = ("1", "王小明", "Acme", "13800138000")


@pytest.fixture
def settings(settings):
    return with_messaging(settings)


def add_rep(app, userid: str, name: str) -> int:
    with svc(app).db.transaction() as s:
        rep = Rep(userid=userid, name=name, created_at=utcnow())
        s.add(rep)
        s.flush()
        return rep.id


def register(client, auth_headers, event: str = "expo", **body) -> dict:
    r = client.post(f"/api/v1/events/{event}/staff", json=body, headers=auth_headers)
    assert r.status_code in (200, 201), r.json
    return r.json


def open_duties(app) -> list[tuple[int, int]]:
    return [(d["staff_id"], d["booth_id"]) for d in duties(app) if d["off_at"] is None]


def test_staff_go_on_duty_move_booths_and_go_off(app, client, auth_headers):
    ids = make_event(app)
    staff = register(client, auth_headers, name="小李", openid="o-staff")
    assert staff["openid"] == "o-staff" and staff["rep_id"] is None
    reply = content(scan(client, "o-staff", "staff:expo:A1"))
    assert "Booth A1" in reply and "上岗" in reply
    assert last_decision(app, "o-staff")["staff"]["action"] == "on"
    assert open_duties(app) == [(staff["id"], ids["A1"])]
    assert duties(app)[0]["day"] == hours.local_day(utcnow())
    scan(client, "o-staff", "staff:expo:A1")  # scanned again: still one duty
    assert open_duties(app) == [(staff["id"], ids["A1"])]
    scan(client, "o-staff", "staff:expo:A2")
    assert open_duties(app) == [(staff["id"], ids["A2"])] and len(duties(app)) == 2
    listed = client.get("/api/v1/events/expo/staff", headers=auth_headers).json["items"]
    assert [(s["id"], s["on_duty_booth_id"]) for s in listed] == [(staff["id"], ids["A2"])]
    assert content(say(client, "o-staff", "下班")) == event_turns.OFF_DUTY
    assert open_duties(app) == []
    timeline = client.get("/api/v1/followers/o-staff/timeline", headers=auth_headers).json
    kinds = [e["kind"] for e in timeline]
    assert kinds.count("staff_on_duty") == 3 and kinds.count("staff_off_duty") == 1


def test_a_visitor_scanning_a_staff_code_is_told_politely_and_nothing_changes(app, client, auth_headers):
    make_event(app)
    register(client, auth_headers, name="小李", openid="o-staff")
    assert content(scan(client, "o-visitor", "staff:expo:A1", kind="subscribe")) == event_turns.STAFF_ONLY
    assert last_decision(app, "o-visitor")["staff"] == {"action": "refused", "why": "not staff", "event": "expo",
                                                        "booth": "A1"}  # fmt: skip
    assert content(scan(client, "o-staff", "staff:expo:ZZ")) == event_turns.UNKNOWN_CODE
    assert content(scan(client, "o-staff", "staff:nosuch:A1")) == event_turns.UNKNOWN_CODE
    assert duties(app) == []
    assert content(say(client, "o-visitor", "下班")) != event_turns.OFF_DUTY  # not staff: an ordinary message


def test_staff_of_another_event_are_visitors_here(app, client, auth_headers):
    make_event(app)
    make_event(app, "fair", ("B1",))
    register(client, auth_headers, "fair", openid="o-fair")
    assert content(scan(client, "o-fair", "staff:expo:A1")) == event_turns.STAFF_ONLY
    assert duties(app) == []


def test_yesterdays_duty_ends_with_the_day(app, client, auth_headers):
    ids = make_event(app)
    staff = register(client, auth_headers, openid="o-staff")
    yesterday = utcnow() - timedelta(days=1)
    with svc(app).db.transaction() as s:
        row = {"staff_id": staff["id"], "event_id": ids["event"], "booth_id": ids["A1"],
               "day": hours.local_day(yesterday), "on_at": yesterday}  # fmt: skip
        s.connection().execute(insert(DUTY), row)
    scan(client, "o-visit", "booth:expo:A1")
    fill(client, "o-visit", *ANSWERS)
    (lead,) = leads(app)
    assert lead["staff_id"] is None  # nobody on duty today
    listed = client.get("/api/v1/events/expo/staff", headers=auth_headers).json["items"]
    assert listed[0]["on_duty_booth_id"] is None
    scan(client, "o-staff", "staff:expo:A1")  # a new day's scan closes yesterday's duty
    assert [(d["day"], d["off_at"] is None) for d in duties(app)] == [
        (hours.local_day(yesterday), False), (hours.local_day(utcnow()), True)]  # fmt: skip


def test_leads_go_round_robin_to_two_on_duty_reps_who_are_notified(app, client, auth_headers, live):
    make_event(app)
    li, wang = add_rep(app, "li.wei", "Li Wei"), add_rep(app, "wang.fang", "Wang Fang")
    a = register(client, auth_headers, name="Li", openid="o-li", rep_id=li)
    b = register(client, auth_headers, name="Wang", openid="o-wang", userid="wang.fang")
    assert b["rep_id"] == wang  # the userid's rep
    scan(client, "o-li", "staff:expo:A1")
    scan(client, "o-wang", "staff:expo:A1")
    for i in range(4):
        scan(client, f"o-v{i}", "booth:expo:A1")
        fill(client, f"o-v{i}", "1", f"访客{i}", "Acme", f"1380013800{i}")
    got = [lead["staff_id"] for lead in leads(app)]
    assert sorted(got) == sorted([a["id"], b["id"]] * 2) and got[0] != got[1]
    with svc(app).db.sessions() as s:
        owners = dict(s.execute(select(Follower.openid, Follower.owner_id).where(Follower.openid.like("o-v%"))).all())
    assert sorted(owners.values()) == sorted([li, li, wang, wang])  # unowned leads: the picked rep owns them
    run_worker(app, burst=True)
    sent = [c["body"] for c in sandbox(app).sent("wecom/message/send") if c["errcode"] == 0]
    assert sorted(m["touser"] for m in sent) == ["li.wei", "li.wei", "wang.fang", "wang.fang"]
    assert all("New lead assigned to you" in m["markdown"]["content"] for m in sent)
    assert all("访客" in m["markdown"]["content"] and "Acme" in m["markdown"]["content"] for m in sent)


def test_an_owned_lead_stays_with_its_owner_and_the_staff_gets_a_lead_notice(app, client, auth_headers, live):
    make_event(app)
    owner, li = add_rep(app, "boss", "Boss"), add_rep(app, "li.wei", "Li Wei")
    register(client, auth_headers, openid="o-li", rep_id=li)
    scan(client, "o-li", "staff:expo:A1")
    scan(client, "o-known", "booth:expo:A1")
    with svc(app).db.transaction() as s:
        s.scalar(select(Follower).where(Follower.openid == "o-known")).owner_id = owner
    fill(client, "o-known", *ANSWERS)
    (lead,) = leads(app)
    assert lead["rep_id"] == li
    run_worker(app, burst=True)
    (msg,) = [c["body"] for c in sandbox(app).sent("wecom/message/send") if c["errcode"] == 0]
    text = msg["markdown"]["content"]
    assert msg["touser"] == "li.wei" and "New lead at your booth" in text and "13800138000" in text
    with svc(app).db.sessions() as s:
        assert s.scalar(select(Follower.owner_id).where(Follower.openid == "o-known")) == owner


def test_staff_who_are_not_reps_share_leads_by_load(app, client, auth_headers):
    ids = make_event(app)
    one = register(client, auth_headers, openid="o-s1")
    two = register(client, auth_headers, openid="o-s2")
    for openid in ("o-s1", "o-s2"):
        scan(client, openid, "staff:expo:A1")
    scan(client, "o-s2", "staff:expo:A2")  # moved away: A1 leads go to the other one only
    for i in range(3):
        scan(client, f"o-w{i}", "booth:expo:A1")
        fill(client, f"o-w{i}", "1", "张三", "Acme", "13800138000")
    assert [lead["staff_id"] for lead in leads(app)] == [one["id"]] * 3
    scan(client, "o-s2", "staff:expo:A1")
    for i in range(3, 5):
        scan(client, f"o-w{i}", "booth:expo:A1")
        fill(client, f"o-w{i}", *ANSWERS)
    assert [lead["staff_id"] for lead in leads(app)][3:] == [two["id"], two["id"]]  # the fewest today first
    assert all(lead["booth_id"] == ids["A1"] for lead in leads(app))


@pytest.mark.parametrize(
    "body, status",
    [({}, 400), ({"openid": "bad id!"}, 400), ({"rep_id": 999}, 404), ({"openid": "o", "name": "x" * 200}, 400)],
)
def test_bad_registrations_are_refused(app, client, auth_headers, body, status):
    make_event(app)
    r = client.post("/api/v1/events/expo/staff", json=body, headers=auth_headers)
    assert r.status_code == status, r.json
    assert client.post("/api/v1/events/nosuch/staff", json={"openid": "o"}, headers=auth_headers).status_code == 404


def test_registering_again_updates_and_removing_keeps_the_leads(app, client, auth_headers):
    make_event(app)
    first = register(client, auth_headers, name="A", openid="o-again")
    r = client.post("/api/v1/events/expo/staff", json={"name": "B", "openid": "o-again"}, headers=auth_headers)
    assert r.status_code == 200 and r.json["id"] == first["id"] and r.json["name"] == "B"
    scan(client, "o-again", "staff:expo:A1")
    scan(client, "o-visit", "booth:expo:A1")
    fill(client, "o-visit", *ANSWERS)
    assert client.delete(f"/api/v1/events/expo/staff/{first['id']}", headers=auth_headers).status_code == 204
    assert [lead["staff_id"] for lead in leads(app)] == [None]
    assert client.delete(f"/api/v1/events/expo/staff/{first['id']}", headers=auth_headers).status_code == 404
    assert content(scan(client, "o-again", "staff:expo:A1")) == event_turns.STAFF_ONLY


def test_a_staff_token_lists_only_its_own_events_staff(app, client, auth_headers):
    make_event(app)
    make_event(app, "fair", ("B1",))
    register(client, auth_headers, openid="o-s1")
    with svc(app).db.transaction() as s:
        token = issue(s, "booth-expo", "staff", subject="expo")
    mine = {"Authorization": f"Bearer {token}"}
    assert [s["openid"] for s in client.get("/api/v1/events/expo/staff", headers=mine).json["items"]] == ["o-s1"]
    assert client.get("/api/v1/events/fair/staff", headers=mine).status_code == 404
    assert client.post("/api/v1/events/expo/staff", json={"openid": "o-x"}, headers=mine).status_code == 403


def test_the_cli_registers_lists_and_removes_staff(app, runner):
    make_event(app)
    rep = add_rep(app, "li.wei", "Li Wei")
    r = runner.invoke(args=["event", "staff", "add", "expo", "--name", "小李", "--openid", "o-cli", "--rep", str(rep)])
    assert r.exit_code == 0 and "added staff" in r.output, r.output
    staff_id = int(r.output.split()[2].rstrip(":"))
    runner.invoke(args=["event", "staff", "add", "expo", "--name", "小李", "--openid", "o-cli"])
    r = runner.invoke(args=["event", "staff", "list", "expo"])
    assert r.exit_code == 0 and "o-cli" in r.output and "off duty" in r.output and r.output.count("\n") == 1
    assert runner.invoke(args=["event", "staff", "add", "nosuch", "--openid", "o-x"]).exit_code == 1
    assert runner.invoke(args=["event", "staff", "add", "expo"]).exit_code == 1  # nobody named
    assert runner.invoke(args=["event", "staff", "remove", "expo", str(staff_id)]).exit_code == 0
    assert runner.invoke(args=["event", "staff", "remove", "expo", str(staff_id)]).exit_code == 1


def test_an_event_made_through_the_events_api_runs_its_form_and_staff(app, client, auth_headers):
    body = {"slug": "show", "name": "Show", "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
            "form": {"start": "direct"}, "booths": [{"slug": "C3", "name": "Hall C"}]}  # fmt: skip
    r = client.post("/api/v1/events", json=body, headers=auth_headers)
    assert r.status_code == 201, r.json
    staff = register(client, auth_headers, "show", openid="o-show")
    assert "Hall C" in content(scan(client, "o-show", "staff:show:C3"))
    reply = content(scan(client, "o-guest", "booth:show:C3", kind="subscribe"))
    assert reply.endswith(event_forms.PROMPTS["name"])  # the booth's reply, then the first question
    fill(client, "o-guest", "王小明", "Acme", "13800138000")
    (lead,) = leads(app)
    assert (lead["staff_id"], lead["via"], lead["mobile"]) == (staff["id"], "chat", "13800138000")


def test_the_same_wecom_member_registered_twice_is_one_staff(app, client, auth_headers):
    make_event(app)
    first = register(client, auth_headers, userid="zhao.li")
    again = register(client, auth_headers, userid="zhao.li", openid="o-zhao", name="Zhao")
    assert again["id"] == first["id"] and again["openid"] == "o-zhao" and again["rep_id"] == first["rep_id"]
    with svc(app).db.sessions() as s:
        assert s.scalar(select(Rep.confirmed).where(Rep.userid == "zhao.li")) is False  # notified, takes no leads
    assert content(say(client, "o-zhao", "off duty")) == event_turns.OFF_DUTY


def test_off_duty_through_the_wecom_app_matches_the_userid(app, client, auth_headers):
    ids = make_event(app)
    staff = register(client, auth_headers, openid="o-mem", userid="mem.one")
    scan(client, "o-mem", "staff:expo:A1")
    assert open_duties(app) == [(staff["id"], ids["A1"])]
    r = post(client, "wecom-text", userid="someone.else", content="下班")
    assert r.status_code == 200 and open_duties(app) == [(staff["id"], ids["A1"])]
    assert post(client, "wecom-text", userid="mem.one", content="下班").status_code == 200
    assert open_duties(app) == []
