"""Landing pages and sharing: each visitor's copy carries their own share token; a chain A → B → C credits A with
B's visit and B with C's, counts who followed and who left details; the JS-SDK share menu is signed with the
cached jsapi_ticket, and the page works without it."""

from __future__ import annotations

import html
import json
import re

import pytest

from tasks.links import refresh_ticket
from tests.helpers import drain as apply_all
from tests.links_kit import PHONE_UA, WECHAT_UA, local, oauth, token
from tests.messaging_kit import add_followers, sandbox, svc
from wechat import jssdk

PAGE = {"slug": "spring", "title": "Spring fair", "body": "Come and see us.\nBooth 12.",
        "image": "https://cdn.example.com/spring.png", "form": ["name", "phone"]}  # fmt: skip
SHARE = re.compile(rb'data-share-token="([^"]+)"')
ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def _create(client, headers, **body):
    r = client.post("/api/v1/pages", json={**PAGE, **body}, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def _share_token(response) -> str:
    assert response.status_code == 200, response.data[:300]
    return SHARE.search(response.data).group(1).decode()


def _timeline(client, headers, openid):
    timeline = client.get(f"/api/v1/followers/{openid}/timeline", headers=headers).json
    return [e["kind"] for e in (timeline["items"] if isinstance(timeline, dict) else timeline)]


def test_a_share_chain_credits_each_sharer(app, client, live, auth_headers):
    _create(client, auth_headers)
    add_followers(app, 1, prefix="a-")
    add_followers(app, 1, prefix="b-")
    alice = app.test_client()
    tok_a = _share_token(alice.get("/p/spring", query_string={"wl": token(app, "a-000000")},
                                   headers={"User-Agent": PHONE_UA}))  # fmt: skip
    bob = app.test_client()  # opens Alice's share inside WeChat: named by web authorization
    start = bob.get("/p/spring", query_string={"s": tok_a}, headers={"User-Agent": WECHAT_UA})
    assert start.status_code == 302
    back = bob.get(local(oauth(bob, start.headers["Location"], "b-000000")), headers={"User-Agent": WECHAT_UA})
    tok_b = _share_token(bob.get(back.headers["Location"], headers={"User-Agent": WECHAT_UA}))
    carol = app.test_client()  # a stranger in an ordinary browser opens Bob's share and leaves details
    tok_c = _share_token(carol.get("/p/spring", query_string={"s": tok_b}, headers={"User-Agent": PHONE_UA}))
    sent = carol.post("/p/spring", data={"name": "Carol", "phone": "13800000000"}, headers={"User-Agent": PHONE_UA})
    assert sent.status_code == 200 and b"Thank you" in sent.data
    alice.get("/p/spring", query_string={"s": tok_a, "wl": token(app, "a-000000")})  # her own copy: no credit
    assert len({tok_a, tok_b, tok_c}) == 3
    shares = client.get("/api/v1/pages/spring/shares", headers=auth_headers).json
    by_openid = {item["openid"]: item for item in shares["items"]}
    assert by_openid["a-000000"] | {"sharer": None} == {"sharer": None, "openid": "a-000000", "opened": 1,
                                                        "visits": 1, "followed": 1, "left_details": 0}  # fmt: skip
    assert (by_openid["b-000000"]["opened"], by_openid["b-000000"]["followed"]) == (1, 0)
    assert by_openid["b-000000"]["left_details"] == 1
    assert shares["totals"] == {"visits": 4, "visitors": 3, "shared_visits": 2, "leads": 1}
    apply_all(app)
    alice_sees = _timeline(client, auth_headers, "a-000000")
    assert alice_sees.count("shared_visit") == 1 and alice_sees.count("page_view") == 2  # her own two opens
    bob_sees = _timeline(client, auth_headers, "b-000000")
    assert bob_sees.count("shared_visit") == 1 and bob_sees.count("page_view") == 1


def test_a_forged_share_token_credits_nobody(app, client, auth_headers):
    _create(client, auth_headers)
    r = client.get("/p/spring", query_string={"s": "eyJrIjoidjEifQ.AAAAAAAAAAAAAAAA"})
    assert r.status_code == 200
    assert client.get("/api/v1/pages/spring/shares", headers=auth_headers).json["items"] == []


def test_the_share_menu_is_signed_with_the_cached_ticket(app, client, live, auth_headers):
    _create(client, auth_headers, form=None, button={"text": "Book a visit", "url": "https://shop.example.com/b"})
    add_followers(app, 1, prefix="a-")
    wl = token(app, "a-000000")
    plain = client.get("/p/spring", query_string={"wl": wl}, headers={"User-Agent": WECHAT_UA})
    assert plain.status_code == 200 and b"jweixin" not in plain.data  # no ticket yet: the page works without it
    with app.app_context():
        assert refresh_ticket() == {"cached": True}
    ticket = jssdk.cached_ticket(svc(app).redis_slow, svc(app).settings.wechat_app_id)
    page = client.get("/p/spring", query_string={"wl": wl}, headers={"User-Agent": WECHAT_UA})
    assert b"res.wx.qq.com/open/js/jweixin" in page.data and b"Book a visit" in page.data
    cfg = json.loads(re.search(rb"var cfg = (\{.*?\}),", page.data).group(1))
    url = f"{live}/p/spring?wl={wl}"
    assert cfg["signature"] == jssdk.signature(ticket, cfg["nonceStr"], cfg["timestamp"], url)
    outside = client.get("/p/spring", query_string={"wl": wl}, headers={"User-Agent": PHONE_UA})
    assert b"jweixin" not in outside.data
    assert len(sandbox(app).sent("oa/ticket/getticket")) == 1
    with app.app_context():
        refresh_ticket()  # cached: WeChat is not asked again
    assert len(sandbox(app).sent("oa/ticket/getticket")) == 1


def test_signature_matches_wechats_documented_example():
    ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    url = "http://mp.weixin.qq.com?params=value"
    assert jssdk.signature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, url) == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    assert jssdk.signature(ticket, "Wm3WZYTPz0wzccnW", "1414587457", url + "#frag") == jssdk.signature(
        ticket, "Wm3WZYTPz0wzccnW", 1414587457, url
    )


def test_the_sandbox_ticket_endpoint_wants_jsapi(client, live):
    token_r = client.get("/sandbox/oa/cgi-bin/token", query_string={"grant_type": "client_credential",
                         "appid": "wxsandbox0000000", "secret": "sandbox-secret"}).json  # fmt: skip
    bad = client.get("/sandbox/oa/cgi-bin/ticket/getticket",
                     query_string={"access_token": token_r["access_token"], "type": "wx_card"}).json  # fmt: skip
    assert bad["errcode"] == 40097
    assert client.get("/sandbox/oa/cgi-bin/ticket/getticket", query_string={"type": "jsapi"}).json["errcode"] != 0


@pytest.mark.parametrize(
    "change",
    [{"image": "javascript:alert(1)"}, {"button": {"text": "x", "url": "data:text/html,hi"}}, {"slug": "Bad Slug"},
     {"form": ["ok", "Not OK"]}, {"title": ""}, {"button": {"text": "x"}}],
)  # fmt: skip
def test_bad_pages_are_refused(client, auth_headers, change):
    r = client.post("/api/v1/pages", json={**PAGE, **change}, headers=auth_headers)
    assert r.status_code in (400, 422), r.json


def test_unknown_pages_and_taken_slugs(client, auth_headers):
    _create(client, auth_headers)
    assert client.post("/api/v1/pages", json=PAGE, headers=auth_headers).status_code == 409
    r = client.get("/p/nothing-here")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert client.get("/api/v1/pages/nothing-here/shares", headers=auth_headers).status_code == 404
    empty = client.post("/p/spring", data={"name": "", "phone": ""})
    assert empty.status_code == 400


FORM_BOOK = """
name: page-forms
rules:
  - name: page-lead
    when: {form_submitted: "page:spring"}
    do: [{tag: "lead:spring"}, {score: 10}]
"""


def test_a_followers_form_raises_form_submitted_once_a_strangers_only_leaves_details(app, client, auth_headers):
    from scrm.playbook import store

    with svc(app).db.transaction() as session:
        store.load(session, FORM_BOOK)
    _create(client, auth_headers)
    add_followers(app, 1, prefix="a-")
    alice = app.test_client()
    shown = alice.get("/p/spring", query_string={"wl": token(app, "a-000000")}, headers={"User-Agent": PHONE_UA})
    action = html.unescape(ACTION.search(shown.data.decode()).group(1))  # the form posts back with her `wl`
    assert action.startswith("/p/spring?wl=")
    bad = alice.post(action, data={"name": "Alice"}, headers={"User-Agent": PHONE_UA})
    assert bad.status_code == 400  # a required field left empty: nothing recorded, nothing raised
    sent = alice.post(action, data={"name": "Alice", "phone": "13800000000"}, headers={"User-Agent": PHONE_UA})
    assert sent.status_code == 200 and b"Thank you" in sent.data
    stranger = app.test_client()
    stranger.get("/p/spring", headers={"User-Agent": PHONE_UA})
    stranger.post("/p/spring", data={"name": "Eve", "phone": "13900000000"}, headers={"User-Agent": PHONE_UA})
    apply_all(app)
    apply_all(app)  # applying again changes nothing
    timeline = client.get("/api/v1/followers/a-000000/timeline", headers=auth_headers).json
    items = timeline["items"] if isinstance(timeline, dict) else timeline
    captured = [e for e in items if e["kind"] == "lead_captured"]
    assert len(captured) == 1 and captured[0]["data"]["page"] == "spring"
    follower = client.get("/api/v1/followers/a-000000", headers=auth_headers).json
    assert "lead:spring" in follower["tags"] and follower["score"] == 10
    assert client.get("/api/v1/pages/spring/shares", headers=auth_headers).json["totals"]["leads"] == 2
