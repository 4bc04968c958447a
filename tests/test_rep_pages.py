"""Rep pages over the Flask test client: signed links and sessions, the list's filters, the card, the actions, CSRF,
and rep isolation on every endpoint. The same pages in a real browser: tests/test_rep_pages_browser.py."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy import select, update

from foundation.clock import utcnow
from scrm.models import Activity, Follower, Rep
from tests.browser_kit import Leads, seed

ACTIONS = [("follow-up", {"note": "called"}), ("stage", {"stage": "sql"}), ("tags", {"tag": "vip"}),
           ("tags/remove", {"tag": "interest:pricing"})]  # fmt: skip


@pytest.fixture
def leads(client, auth_headers) -> Leads:
    return seed(client, auth_headers)


def open_link(client, link: str):
    """Follow a notification's link as a phone would: the redirect that drops the token, then the page."""
    parts = urlsplit(link)
    first = client.get(f"{parts.path}?{parts.query}")
    assert first.status_code == 303, first.data
    return first, client.get(first.headers["Location"])


def csrf(html: bytes) -> str:
    found = re.search(rb'name="csrf" value="([^"]+)"', html)
    assert found, "the card has no CSRF field"
    return found.group(1).decode()


def rep_actions(app, openid: str) -> list[dict]:
    with app.extensions["welead"].db.sessions() as s:
        fid = s.scalar(select(Follower.id).where(Follower.openid == openid))
        rows = s.scalars(select(Activity).where(Activity.follower_id == fid, Activity.kind == "rep_action"))
        return [a.data for a in rows]


def test_a_signed_link_opens_the_card_and_starts_a_session(client, leads):
    first, card = open_link(client, leads.card_link(leads.li, "o-zhang"))
    assert first.headers["Location"] == f"/rep/leads/{leads.ids['o-zhang']}"  # the token is gone from the URL
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert first.headers["Referrer-Policy"] == "no-referrer"
    html = card.get_data(as_text=True)
    assert card.status_code == 200 and card.headers["Cache-Control"] == "no-store"
    for text in ("张三", "Acme Robotics", "138****5678", "interest:pricing", "asked-price", "welcome", "Li Wei"):
        assert text in html, text
    assert "13812345678" not in html  # the mobile is masked
    assert 'id="score-now">20.0<' in html and "fit" in html  # the stage model's score; every model explained
    assert html.index('data-kind="score"') < html.index('data-kind="subscribe"')  # newest first
    listing = client.get("/rep/leads")  # the session cookie carries on
    assert listing.status_code == 200 and "Chen Jing" in listing.get_data(as_text=True)
    assert client.get("/rep/leads?t=x&stage=new").status_code == 403  # a bad token is refused even with a session


def test_expired_forged_and_missing_credentials_get_friendly_pages(client, leads, monkeypatch):
    real = time.time
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real() - 8 * 86400)  # the link was sent eight days ago
        old = leads.card_link(leads.li, "o-zhang")
    r = client.get(urlsplit(old).path + "?" + urlsplit(old).query)
    assert r.status_code == 403 and "expired" in r.get_data(as_text=True) and "Set-Cookie" not in r.headers
    assert r.mimetype == "text/html" and "Traceback" not in r.get_data(as_text=True)
    good = urlsplit(leads.card_link(leads.li, "o-zhang"))
    r = client.get(f"{good.path}?{good.query[:-3]}abc")
    assert r.status_code == 403 and "not valid" in r.get_data(as_text=True)
    r = client.get("/rep/leads")
    assert r.status_code == 401 and "WeCom notification" in r.get_data(as_text=True)


def test_a_session_ends_after_its_hours_and_a_deactivated_rep_is_out(app, client, leads):
    open_link(client, leads.list_link(leads.li))
    with client.session_transaction() as session:
        session["since"] -= 13 * 3600
    r = client.get("/rep/leads")
    assert r.status_code == 401 and "signed out" in r.get_data(as_text=True)
    with app.extensions["welead"].db.transaction() as s:
        s.execute(update(Rep).where(Rep.id == leads.li).values(active=False, deactivated_at=utcnow()))
    r = client.get(urlsplit(leads.list_link(leads.li)).path + "?" + urlsplit(leads.list_link(leads.li)).query)
    assert r.status_code == 403 and "not active" in r.get_data(as_text=True)


def test_the_list_filters_searches_sorts(client, leads):
    open_link(client, leads.list_link(leads.li))

    def shown(query: str = "") -> list[str]:
        r = client.get(f"/rep/leads{query}")
        assert r.status_code == 200, r.data
        return re.findall(r'data-openid="([^"]+)"', r.get_data(as_text=True))

    assert shown() == ["o-zhang", "o-liu", "o-chen"]  # score 20, then 5 and 5 (newest id first)
    assert shown("?sort=activity")[0] == "o-liu"  # last active just now
    assert shown("?stage=mql") == ["o-liu"] and shown("?stage=engaged") == ["o-zhang"]
    assert shown("?stage=customer") == []
    assert shown("?tag=interest:pricing") == ["o-zhang"]
    assert shown("?q=acme") == ["o-zhang", "o-liu"]  # company, any case
    assert shown("?q=张") == ["o-zhang"] and shown("?q=o-ch") == ["o-chen"]
    assert shown("?q=%25") == [] and shown("?q=_") == []  # LIKE wildcards are text
    assert shown("?q=o-other") == []  # another rep's lead is not found by search either
    html = client.get("/rep/leads?tag=interest:pricing").get_data(as_text=True)
    assert "1 lead<" in html and "engaged 1" in html and "mql 0" in html  # counts follow the other filters
    for bad in ("?sort=name", "?page=0", "?page=x", f"?q={'x' * 101}", "?stage=%00"):
        assert client.get(f"/rep/leads{bad}").status_code == 400, bad


def test_pages_and_statements_do_not_grow_with_the_leads(app, client, leads):
    open_link(client, leads.list_link(leads.li))
    db = app.extensions["welead"].db
    statements: list[str] = []

    def count(*args):
        statements.append(args[2])

    def measure() -> int:
        statements.clear()
        sa.event.listen(db.reader, "before_cursor_execute", count)
        try:
            assert client.get("/rep/leads?page=2").status_code == 200
        finally:
            sa.event.remove(db.reader, "before_cursor_execute", count)
        return len(statements)

    few = measure()
    with db.transaction() as s:
        s.add_all(Follower(openid=f"o-bulk-{i}", owner_id=leads.li, stage="new", profile={}) for i in range(40))
    many = measure()
    assert many == few, statements  # one count, one page, one for the page's tags: no query per lead
    html = client.get("/rep/leads?page=2").get_data(as_text=True)
    assert len(re.findall(r'data-openid="', html)) == 20 and "page 2 of 3" in html
    assert "page 3 of 3" in client.get("/rep/leads?page=99").get_data(as_text=True)  # past the end: the last


def test_actions_record_rep_actions_and_go_through_the_rules(app, client, auth_headers, leads):
    _, card = open_link(client, leads.card_link(leads.li, "o-zhang"))
    token, fid = csrf(card.data), leads.ids["o-zhang"]
    r = client.post(f"/rep/leads/{fid}/follow-up", data={"csrf": token, "note": " called, sent prices "})
    assert r.status_code == 303 and r.headers["Location"] == f"/rep/leads/{fid}"
    assert client.post(f"/rep/leads/{fid}/stage", data={"csrf": token, "stage": "sql"}).status_code == 303
    assert client.post(f"/rep/leads/{fid}/tags", data={"csrf": token, "tag": "vip"}).status_code == 303
    for name in ("interest:pricing", "never-had"):
        assert client.post(f"/rep/leads/{fid}/tags/remove", data={"csrf": token, "tag": name}).status_code == 303
    lead = client.get("/api/v1/followers/o-zhang", headers=auth_headers).json
    assert lead["stage"] == "sql" and lead["tags"] == ["vip"] and lead["score"] == pytest.approx(40, abs=0.1)
    li = leads.li
    assert rep_actions(app, "o-zhang") == [
        {"rep": li, "action": "followed_up", "note": "called, sent prices"},
        {"rep": li, "action": "stage", "from": "engaged", "to": "sql", "changed": True},
        {"rep": li, "action": "tag_added", "tag": "vip", "changed": True},
        {"rep": li, "action": "tag_removed", "tag": "interest:pricing", "changed": True},
        {"rep": li, "action": "tag_removed", "tag": "never-had", "changed": False},
    ]
    timeline = client.get("/api/v1/followers/o-zhang/timeline", headers=auth_headers).json
    kinds = {e["kind"]: e["data"] for e in reversed(timeline)}
    assert kinds["stage_changed"]["reason"] == "rep" and kinds["tag_added"] == {"tag": "vip", "rule": f"rep:{li}"}
    assert kinds["score"]["rule"] == "vip"  # the tag fired the playbook's tag_added rule
    html = client.get(f"/rep/leads/{fid}").get_data(as_text=True)
    assert "followed up: called, sent prices" in html and "Tag removed." in html


@pytest.mark.parametrize(
    ("path", "form", "words"),
    [
        ("stage", {"stage": "nope"}, "unknown stage"),
        ("tags", {"tag": ""}, "at least one character"),
        ("tags", {"tag": "x" * 65}, "at most 64"),
        ("tags", {"tag": "a\x01b"}, "control characters"),
        ("follow-up", {"note": "n" * 1001}, "at most 1000"),
    ],
)
def test_bad_action_input_is_a_400_page(app, client, leads, path, form, words):
    _, card = open_link(client, leads.card_link(leads.li, "o-chen"))
    r = client.post(f"/rep/leads/{leads.ids['o-chen']}/{path}", data={"csrf": csrf(card.data), **form})
    assert r.status_code == 400 and words in r.get_data(as_text=True)
    assert rep_actions(app, "o-chen") == []


def test_forms_need_this_sessions_csrf_token(app, client, leads):
    fid = leads.ids["o-chen"]
    _, card = open_link(client, leads.card_link(leads.li, "o-chen"))
    for form in ({}, {"csrf": ""}, {"csrf": "forged"}):
        r = client.post(f"/rep/leads/{fid}/follow-up", data=form)
        assert r.status_code == 400 and "security token" in r.get_data(as_text=True)
    other = app.test_client()  # a second session of the same rep: its token is not this one's
    open_link(other, leads.card_link(leads.li, "o-chen"))
    assert other.post(f"/rep/leads/{fid}/follow-up", data={"csrf": csrf(card.data)}).status_code == 400
    assert rep_actions(app, "o-chen") == []
    open_link(client, leads.list_link(leads.li))  # the rep taps another notification: open forms keep working
    assert client.post(f"/rep/leads/{fid}/follow-up", data={"csrf": csrf(card.data)}).status_code == 303


def test_another_reps_lead_is_a_404_on_every_endpoint(app, client, leads):
    _, card = open_link(client, leads.card_link(leads.li, "o-zhang"))
    token, theirs = csrf(card.data), leads.ids["o-other"]
    bearer = leads.token(leads.li)
    for fid in (theirs, 999_999, 2**63 - 1):
        assert client.get(f"/rep/leads/{fid}").status_code == 404
        assert client.get(f"/rep/leads/{fid}", headers=bearer).status_code == 404
        for path, form in ACTIONS:
            r = client.post(f"/rep/leads/{fid}/{path}", data={"csrf": token, **form})
            assert r.status_code == 404 and "no such lead" in r.get_data(as_text=True), path
            assert client.post(f"/rep/leads/{fid}/{path}", data=form, headers=bearer).status_code == 404
    assert client.get(f"/rep/leads/{2**64}").status_code == 404
    assert rep_actions(app, "o-other") == []
    with app.extensions["welead"].db.sessions() as s:
        assert s.scalar(select(Follower.stage).where(Follower.id == theirs)) == "engaged"
    listed = client.get("/rep/leads?q=o-other", headers=bearer).get_data(as_text=True)
    assert 'id="empty"' in listed and "Someone Else" not in listed
    # and the other way round: wang.fang sees their lead, not li.wei's
    wang = leads.token(leads.wang)
    assert client.get(f"/rep/leads/{theirs}", headers=wang).status_code == 200
    assert client.get(f"/rep/leads/{leads.ids['o-zhang']}", headers=wang).status_code == 404


def test_rep_api_tokens_open_the_pages_without_cookies_or_csrf(app, client, leads, auth_headers):
    bearer = leads.token(leads.li)
    r = client.get("/rep/leads", headers=bearer)
    assert r.status_code == 200 and "Set-Cookie" not in r.headers and "Chen Jing" in r.get_data(as_text=True)
    fid = leads.ids["o-liu"]
    r = client.post(f"/rep/leads/{fid}/follow-up", data={"note": "from a script"}, headers=bearer)
    assert r.status_code == 303 and rep_actions(app, "o-liu")[-1]["note"] == "from a script"
    assert client.get("/rep/leads", headers=auth_headers).status_code == 403  # admin tokens are not rep tokens
    assert client.get("/rep/leads", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/rep/leads", headers={"Authorization": "Basic eDp5"}).status_code == 401


def test_a_lead_reassigned_meanwhile_is_gone_and_a_merged_identity_shows_its_person(app, client, leads):
    _, card = open_link(client, leads.card_link(leads.li, "o-chen"))
    fid, token = leads.ids["o-chen"], csrf(card.data)
    with app.extensions["welead"].db.transaction() as s:  # the pool gave it to wang.fang after the card was opened
        s.execute(update(Follower).where(Follower.id == fid).values(owner_id=leads.wang))
    assert client.post(f"/rep/leads/{fid}/follow-up", data={"csrf": token}).status_code == 404
    assert rep_actions(app, "o-chen") == [] and client.get(f"/rep/leads/{fid}").status_code == 404
    with app.extensions["welead"].db.transaction() as s:  # o-liu is also the WeCom contact of o-zhang's person
        s.execute(update(Follower).where(Follower.id == leads.ids["o-liu"]).values(merged_into=leads.ids["o-zhang"]))
    r = client.get(f"/rep/leads/{leads.ids['o-liu']}")
    assert r.status_code == 303 and r.headers["Location"] == f"/rep/leads/{leads.ids['o-zhang']}"
    listed = client.get("/rep/leads").get_data(as_text=True)
    assert "Liu Yang" not in listed and "1 lead<" in listed  # one person once; o-chen went to wang.fang
    r = client.post(f"/rep/leads/{leads.ids['o-liu']}/follow-up", data={"csrf": token})
    assert r.status_code == 404  # actions name the person's own id


def test_flask_rep_link_prints_a_working_link(runner, client, leads):
    out = runner.invoke(args=["rep", "link", str(leads.li), "--lead", "o-zhang"])
    assert out.exit_code == 0, out.output
    link = out.stdout.strip()
    assert link.startswith(f"http://127.0.0.1:5000/rep/leads/{leads.ids['o-zhang']}?t=")
    assert open_link(client, link)[1].status_code == 200
    out = runner.invoke(args=["rep", "link", str(leads.li)])
    assert out.exit_code == 0 and "/rep/leads?t=" in out.stdout
    for args, words in ((["--lead", "o-other"], "owns no lead"), (["--lead", "o-nobody"], "owns no lead")):
        out = runner.invoke(args=["rep", "link", str(leads.li), *args])
        assert out.exit_code == 1 and words in out.output
    out = runner.invoke(args=["rep", "link", "99"])
    assert out.exit_code == 1 and "no active rep 99" in out.output
