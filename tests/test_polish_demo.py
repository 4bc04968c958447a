"""The demo is consistent: every menu button has a rule, and the sandbox's user/info knows the scene a follower
came by when it was told (issue 13: 12)."""

from __future__ import annotations

from pathlib import Path

from scrm.playbook import parse
from scrm.scenes import compile_pattern
from tests.helpers import post
from wechat.menu import read_menu
from wechat.sandbox_state import SandboxControl

ROOT = Path(__file__).resolve().parent.parent
OA = "/sandbox/oa/cgi-bin/"


def _click_keys(items) -> set[str]:
    keys = set()
    for item in items:
        if getattr(item, "click", None):
            keys.add(item.click)
        keys |= _click_keys(getattr(item, "items", None) or [])
    return keys


def test_every_demo_menu_button_is_handled_by_a_rule():
    menu = read_menu((ROOT / "playbooks" / "menu.yml").read_text())
    book = parse((ROOT / "playbooks" / "demo.yml").read_text())
    keys = _click_keys(menu.menu)
    assert "MENU_DEMO" in keys
    patterns = [compile_pattern(p) for r in book.rules if r.when.kind == "click" for p in r.when.spec.key]
    unhandled = sorted(k for k in keys if not any(p.match(k) is not None for p in patterns))
    assert unhandled == []


def test_book_a_demo_button_replies_and_tags(client, auth_headers):
    r = client.put("/api/v1/playbook", data=(ROOT / "playbooks" / "demo.yml").read_text(), headers=auth_headers)
    assert r.status_code == 201
    post(client, "subscribe", openid="o-menu-demo")
    r = post(client, "click", openid="o-menu-demo", key="MENU_DEMO")
    assert "A consultant will contact you" in r.get_data(as_text=True)
    follower = client.get("/api/v1/followers/o-menu-demo", headers=auth_headers).json
    assert "demo-requested" in follower["tags"]


def _user_info(client, settings, openid: str) -> dict:
    query = {"grant_type": "client_credential", "appid": settings.wechat_app_id, "secret": settings.wechat_app_secret}
    token = client.get(OA + "token", query_string=query).json["access_token"]
    return client.get(OA + "user/info", query_string={"access_token": token, "openid": openid}).json


def test_user_info_reports_the_scene_the_sandbox_was_told_of(client, app):
    settings = app.extensions["welead"].settings
    assert _user_info(client, settings, "oScene")["subscribe_scene"] == "ADD_SCENE_SEARCH"
    r = client.post("/sandbox/_control", json={"followed": {"oScene": "booth:expo2026:A1", "oPlain": None,
                                                            "oNumber": "42"}})  # fmt: skip
    assert r.status_code == 200, r.json
    info = _user_info(client, settings, "oScene")
    assert (info["subscribe"], info["subscribe_scene"], info["qr_scene_str"]) == (1, "ADD_SCENE_QR_CODE",
                                                                                   "booth:expo2026:A1")  # fmt: skip
    assert _user_info(client, settings, "oPlain")["subscribe_scene"] == "ADD_SCENE_SEARCH"
    assert _user_info(client, settings, "oNumber")["qr_scene"] == 42


def test_a_qr_scene_alone_implies_the_qr_code_subscribe_scene(client, app):
    svc = app.extensions["welead"]
    SandboxControl(svc.redis_slow).set_user("oRep", qr_scene_str="rep:7")
    info = _user_info(client, svc.settings, "oRep")
    assert (info["subscribe_scene"], info["qr_scene_str"]) == ("ADD_SCENE_QR_CODE", "rep:7")
