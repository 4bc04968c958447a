"""OA web authorization for links opened inside WeChat without a signed parameter: the sandbox's authorize page and
code exchange, with WeChat's failures (40029 invalid code, 40163 code been used) sending the visitor on unidentified.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from scrm.models import Follower
from tests.helpers import drain as apply_all
from tests.links_kit import PHONE_UA, WECHAT_UA, anonymous_clicks, clicks_recorded, local, oauth, register
from tests.messaging_kit import add_followers, sandbox, svc

UA = {"User-Agent": WECHAT_UA}


def _timeline_clicks(client, headers, openid: str) -> int:
    timeline = client.get(f"/api/v1/followers/{openid}/timeline", headers=headers).json
    items = timeline["items"] if isinstance(timeline, dict) else timeline
    return [e["kind"] for e in items].count("link_click")


def test_a_follower_inside_wechat_is_named_once_and_remembered(app, client, live, auth_headers):
    link = register(client, auth_headers)
    add_followers(app, 1, prefix="w-")
    first = client.get(f"/l/{link['code']}", headers=UA)
    assert first.status_code == 302 and first.headers["Location"].startswith(f"{live}/sandbox/open/")
    redirect_uri = parse_qs(urlsplit(first.headers["Location"].split("#")[0]).query)["redirect_uri"][0]
    assert redirect_uri == f"{live}/oauth/wechat"
    back = oauth(client, first.headers["Location"], "w-000000")
    returned = client.get(local(back), headers=UA)
    assert returned.status_code == 302 and returned.headers["Location"] == f"/l/{link['code']}"
    final = client.get(returned.headers["Location"], headers=UA)
    assert final.status_code == 302 and final.headers["Location"] == link["url"]
    again = client.get(f"/l/{link['code']}", headers=UA)  # the signed cookie: no second round trip
    assert again.headers["Location"] == link["url"]
    apply_all(app)
    assert _timeline_clicks(client, auth_headers, "w-000000") == 2
    exchanges = sandbox(app).sent("oa/sns/oauth2/access_token")
    assert len(exchanges) == 1 and exchanges[0]["answer"]["openid"] == "w-000000"
    assert exchanges[0]["query"]["grant_type"] == "authorization_code"


def test_a_code_used_twice_and_an_invalid_code_leave_the_visitor_unidentified(app, client, live, auth_headers):
    link = register(client, auth_headers)
    add_followers(app, 1, prefix="w-")
    start = client.get(f"/l/{link['code']}", headers=UA)
    back = oauth(client, start.headers["Location"], "w-000000")
    kept = _cookie(client, "wl_ret")
    client.get(local(back), headers=UA)  # the first use names the visitor
    other = app.test_client()  # someone replaying the same code (and WeChat's state) from another browser
    other.set_cookie(*kept)
    replay = other.get(local(back), headers=UA)
    assert replay.status_code == 302 and replay.headers["Location"] == f"/l/{link['code']}"
    assert other.get_cookie("wl_anon") is not None and other.get_cookie("wl_id") is None
    assert other.get(replay.headers["Location"], headers=UA).headers["Location"] == link["url"]
    third = app.test_client()
    start = third.get(f"/l/{link['code']}", headers=UA)
    state = parse_qs(urlsplit(start.headers["Location"].split("#")[0]).query)["state"][0]
    bad = third.get("/oauth/wechat", query_string={"code": "not-a-code", "state": state}, headers=UA)
    assert bad.status_code == 302 and third.get_cookie("wl_anon") is not None
    third.get(bad.headers["Location"], headers=UA)
    codes = [r["answer"].get("errcode", 0) for r in sandbox(app).sent("oa/sns/oauth2/access_token")]
    assert codes == [0, 40163, 40029]
    apply_all(app)
    assert clicks_recorded(app) == 0 and anonymous_clicks(app, link["code"]) == 2


def _cookie(client, name: str) -> tuple[str, str]:
    cookie = client.get_cookie(name)
    assert cookie is not None, name
    return name, cookie.value


def test_a_wechat_user_who_does_not_follow_is_counted_not_invented(app, client, live, auth_headers):
    link = register(client, auth_headers)
    start = client.get(f"/l/{link['code']}", headers=UA)
    back = oauth(client, start.headers["Location"], "o-stranger")
    client.get(client.get(local(back), headers=UA).headers["Location"], headers=UA)
    apply_all(app)
    with svc(app).db.sessions() as s:
        assert s.scalar(select(Follower.id).where(Follower.openid == "o-stranger")) is None
    assert anonymous_clicks(app, link["code"]) == 1 and clicks_recorded(app) == 0


def test_outside_wechat_no_authorization_is_tried(app, client, auth_headers):
    link = register(client, auth_headers)
    r = client.get(f"/l/{link['code']}", headers={"User-Agent": PHONE_UA})
    assert r.status_code == 302 and r.headers["Location"] == link["url"]
    assert anonymous_clicks(app, link["code"]) == 1


def test_a_forged_return_never_redirects_elsewhere(app, client, auth_headers):
    register(client, auth_headers)
    r = client.get("/oauth/wechat", query_string={"code": "x", "state": "y"})
    assert r.status_code == 404 and r.mimetype == "text/html"


def test_the_sandbox_authorize_page_checks_appid_and_scope(client, live):
    base = "/sandbox/open/connect/oauth2/authorize"
    good = {"appid": "wxsandbox0000000", "redirect_uri": f"{live}/oauth/wechat", "response_type": "code",
            "scope": "snsapi_base", "state": "s"}  # fmt: skip
    assert client.get(base, query_string={**good, "appid": "wxother"}).status_code == 400
    assert client.get(base, query_string={**good, "scope": "snsapi_login"}).status_code == 400
    asks = client.get(base, query_string=good)
    assert asks.status_code == 200 and b"sandbox_openid" in asks.data
    client.set_cookie("sandbox_openid", "o-cookie")
    assert "code=" in client.get(base, query_string=good).headers["Location"]
