"""Tracked links end to end: a broadcast's URLs carry each recipient's signed parameter, their clicks are recorded
by the redirect (one insert) and applied (timeline, the link's tags and points, a `link_clicked` rule), and the
broadcast reports its click-through. Bad input: forged parameters, unknown codes, non-http targets."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from scrm.link_models import LinkClick
from scrm.link_sign import LinkSigner
from tests.helpers import drain as apply_all
from tests.helpers import post
from tests.links_kit import (
    PHONE_UA,
    anonymous_clicks,
    clicks_recorded,
    local,
    register,
    token,
)
from tests.messaging_kit import add_followers, drain, svc, template_sends, with_messaging

BOOK = """
name: links
rules:
  - name: clicked spring
    when: {link_clicked: {campaign: spring, link: "spring*"}}
    do:
      - tag: clicked-spring
      - score: 3
        cap: once
      - stage: mql
  - name: clicked other
    when: {link_clicked: {url: "https://elsewhere.example.com/*"}}
    do:
      - tag: wrong-rule
"""


@pytest.fixture
def settings(settings):
    return with_messaging(settings, batch=10)


def _load(client, headers, text: str = BOOK) -> None:
    r = client.put("/api/v1/playbook", data=text, headers={**headers, "Content-Type": "application/yaml"})
    assert r.status_code in (200, 201), r.json


def test_broadcast_clicks_reach_timelines_rules_and_click_through(app, client, live, auth_headers):
    _load(client, auth_headers)
    link = register(client, auth_headers, campaign="spring", tags=["link-clicker"], points=5)
    vip = add_followers(app, 3, prefix="vip-", tags=("vip",))
    body = {"segment": {"tag": "vip"}, "template": "event_checkin", "data": {"page_url": link["url"]}}
    started = client.post("/api/v1/broadcasts", json=body, headers=auth_headers)
    assert started.status_code == 202, started.json
    drain(app)
    sent = {rec["body"]["touser"]: rec["body"]["url"] for rec in template_sends(app) if rec["errcode"] == 0}
    assert set(sent) == set(vip)
    for openid, url in sent.items():  # the plain target was rewritten to the short link, signed per recipient
        assert url.startswith(f"{live}/l/{link['code']}?wl=")
        assert parse_qs(urlsplit(url).query)["wl"] != parse_qs(urlsplit(sent[vip[0]]).query)["wl"] or openid == vip[0]
    for openid in vip:
        r = client.get(local(sent[openid]), headers={"User-Agent": PHONE_UA})
        assert r.status_code == 302 and r.headers["Location"] == link["url"]
    for _ in range(2):  # a burst from one follower: every click kept, counted once for click-through
        client.get(local(sent[vip[0]]))
    apply_all(app)
    for openid in vip:
        timeline = client.get(f"/api/v1/followers/{openid}/timeline", headers=auth_headers).json
        kinds = [e["kind"] for e in (timeline["items"] if isinstance(timeline, dict) else timeline)]
        assert kinds.count("link_click") == (3 if openid == vip[0] else 1)
        follower = client.get(f"/api/v1/followers/{openid}", headers=auth_headers).json
        assert {"clicked-spring", "link-clicker"} <= set(follower["tags"]) and "wrong-rule" not in follower["tags"]
        assert follower["score"] == 8  # the link's points once per follower however often they clicked, the rule's 3
        assert follower["stage"] == "mql"
    status = client.get(f"/api/v1/broadcasts/{started.json['id']}", headers=auth_headers).json
    assert status["clicks"] == {"delivered": 3, "clickers": 3, "clicks": 5, "click_through": 1.0}
    listed = client.get("/api/v1/links", headers=auth_headers).json["items"]
    assert [(x["code"], x["clicks"], x["unique_clickers"], x["anonymous_clicks"]) for x in listed] == [
        (link["code"], 5, 3, 0)
    ]


def test_forged_and_tampered_parameters_redirect_and_attribute_nothing(app, client, auth_headers, caplog):
    link = register(client, auth_headers)
    add_followers(app, 1, prefix="a-")
    good = token(app, "a-000000", d=1)
    body, mac = good.split(".")
    tampered = f"{LinkSigner('another key').sign('wl', {'o': 'a-000000'}).split('.')[0]}.{mac}"
    with caplog.at_level(logging.WARNING, logger="welead.links"):
        for bad in ("garbage", tampered, tampered, f"{body}.{mac[:-1]}x", "a.b.c"):
            r = client.get(f"/l/{link['code']}", query_string={"wl": bad})
            assert r.status_code == 302 and r.headers["Location"] == link["url"]
    apply_all(app)
    assert clicks_recorded(app) == 0 and anonymous_clicks(app, link["code"]) == 5
    forged = [r for r in caplog.records if "forged" in r.getMessage()]
    assert len(forged) == 4  # the replayed token is logged once


def test_a_head_request_counts_nothing(app, client, auth_headers):
    link = register(client, auth_headers)
    r = client.head(f"/l/{link['code']}", query_string={"wl": token(app, "a-1")})
    assert r.status_code == 302 and r.headers["Location"] == link["url"] and r.headers["Cache-Control"] == "no-store"
    assert clicks_recorded(app) == 0 and anonymous_clicks(app, link["code"]) == 0


def test_a_target_with_chinese_text_is_sent_percent_encoded(client, auth_headers):
    link = register(client, auth_headers, url="https://shop.example.com/活动?城市=上海")
    r = client.get(f"/l/{link['code']}")
    assert r.headers["Location"] == "https://shop.example.com/%E6%B4%BB%E5%8A%A8?%E5%9F%8E%E5%B8%82=%E4%B8%8A%E6%B5%B7"


def test_unknown_code_is_an_html_404(client):
    for code in ("nope123", "x" * 40, "bad$code"):
        r = client.get(f"/l/{code}")
        assert r.status_code == 404 and r.mimetype == "text/html" and b"does not exist" in r.data
        assert b"Traceback" not in r.data


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "JavaScript:alert(1)", "//evil.example.com",
     "ftp://files.example.com/x", "https://", "https://ok.example.com/\nLocation: x", "/l/relative"],
)  # fmt: skip
def test_only_http_targets_can_be_registered(client, auth_headers, url):
    r = client.post("/api/v1/links", json={"name": "bad", "url": url}, headers=auth_headers)
    assert r.status_code == 400, r.json
    assert client.get("/api/v1/links", headers=auth_headers).json["items"] == []


def test_names_are_unique_and_roles_apply(client, auth_headers):
    register(client, auth_headers)
    again = client.post("/api/v1/links", json={"name": "spring offer", "url": "https://x.example.com"},
                        headers=auth_headers)  # fmt: skip
    assert again.status_code == 409
    assert client.post("/api/v1/links", json={"name": "n", "url": "https://x.example.com"}).status_code == 401


def test_a_click_carried_by_a_rule_is_the_recipients(app, client, auth_headers):
    """A signed parameter naming a rule (a reply's URL) attributes the click to its recipient."""
    link = register(client, auth_headers)
    add_followers(app, 1, prefix="b-")
    r = client.get(f"/l/{link['code']}", query_string={"wl": token(app, "b-000000", r="welcome")})
    assert r.status_code == 302
    apply_all(app)
    timeline = client.get("/api/v1/followers/b-000000/timeline", headers=auth_headers).json
    items = timeline["items"] if isinstance(timeline, dict) else timeline
    assert [e["kind"] for e in items].count("link_click") == 1


def test_link_clicked_rules_cannot_reply(client, auth_headers):
    bad = """
name: bad
rules:
  - name: answer a click
    when: {link_clicked: {link: offer}}
    do:
      - reply: thanks
"""
    r = client.post("/api/v1/playbook/check", data=bad, headers={**auth_headers, "Content-Type": "application/yaml"})
    assert r.status_code == 422 and "link_clicked" in str(r.json)


NEWS = """
name: news
rules:
  - name: pricing news
    when: {text: {keywords: [price]}}
    do:
      - reply:
          articles:
            - title: Pricing
              description: Plans
              url: https://shop.example.com/spring
"""


def test_news_replies_carry_the_followers_attribution(app, client, auth_headers):
    """A news reply's url that is a registered target becomes the follower's own short link; the click names the
    rule that carried it."""
    link = register(client, auth_headers)
    _load(client, auth_headers, NEWS)

    r = post(client, "text", openid="n-1", content="price please", msg_id="77001")
    match = re.search(rb"<Url><!\[CDATA\[(.*?)\]\]></Url>", r.data)
    assert match, r.data
    url = match.group(1).decode()
    assert f"/l/{link['code']}?wl=" in url
    again = post(client, "text", openid="n-1", content="price please", msg_id="77001")  # WeChat's retry
    assert re.sub(rb"<CreateTime>\d+", b"", again.data) == re.sub(rb"<CreateTime>\d+", b"", r.data)
    assert client.get(local(url)).headers["Location"] == link["url"]
    apply_all(app)
    with svc(app).db.sessions() as s:
        carriers = [(c.carrier, c.carrier_ref) for c in s.scalars(select(LinkClick))]
    assert carriers == [("rule", "pricing news")]


RULE_SEND = """
name: sends
rules:
  - name: offer mail
    when: {text: {keywords: [offer]}}
    do:
      - send_template:
          template: event_checkin
          data: {page_url: "https://shop.example.com/spring"}
"""


def test_a_rules_sends_report_their_click_through(app, client, live, auth_headers):
    link = register(client, auth_headers)
    _load(client, auth_headers, RULE_SEND)
    add_followers(app, 2, prefix="r-")
    for openid in ("r-000000", "r-000001"):
        post(client, "text", openid=openid, content="any offer?")
    drain(app)
    urls = {rec["body"]["touser"]: rec["body"]["url"] for rec in template_sends(app) if rec["errcode"] == 0}
    assert all(u.startswith(f"{live}/l/{link['code']}?wl=") for u in urls.values()) and len(urls) == 2
    for _ in range(3):
        client.get(local(urls["r-000000"]))
    apply_all(app)
    got = client.get("/api/v1/links/click-through", query_string={"rule": "offer mail"}, headers=auth_headers).json
    assert got == {"delivered": 2, "clicked": 1, "clicks": 3, "click_through": 0.5}
    none = client.get("/api/v1/links/click-through", query_string={"rule": "of%"}, headers=auth_headers).json
    assert none["delivered"] == 0  # a rule's name is matched literally


def test_a_database_outage_is_a_page_not_a_traceback(settings):
    from welead.app import create_app

    app = create_app(settings.replace(database_url="sqlite:////nonexistent-dir/welead.db"))
    try:
        r = app.test_client().get("/l/abcdefg")
        assert r.status_code == 503 and r.mimetype == "text/html" and b"try again" in r.data
    finally:
        app.extensions["welead"].close()
