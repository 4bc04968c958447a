"""Shared by the link and page tests: registering links, following URLs through the app, WeChat's browser."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from scrm.link_models import Link
from scrm.link_stamp import stamper
from scrm.models import Interaction
from tests.messaging_kit import svc

WECHAT_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 MicroMessenger/8.0.47"
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Safari/604.1"


def register(client, headers, name: str = "spring offer", url: str = "https://shop.example.com/spring", **more):
    r = client.post("/api/v1/links", json={"name": name, "url": url, **more}, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def local(url: str) -> str:
    """The path and query of an absolute URL of this app (the test client serves it)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def token(app, openid: str, **carrier) -> str:
    s = svc(app).settings
    return stamper(s.secret_key, s.public_url).token(openid, **carrier)


def anonymous_clicks(app, code: str) -> int:
    with svc(app).db.sessions() as s:
        return s.scalar(select(Link.anonymous_clicks).where(Link.code == code))


def clicks_recorded(app) -> int:
    with svc(app).db.sessions() as s:
        return len(list(s.scalars(select(Interaction.id).where(Interaction.kind == "link_click"))))


def oauth(client, url: str, openid: str | None):
    """Follow WeChat's authorize page (the sandbox's) as the browser would: back to WeLead with a code."""
    assert "/sandbox/open/connect/oauth2/authorize" in url and url.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(url.split("#")[0]).query)
    assert query["scope"] == ["snsapi_base"] and query["response_type"] == ["code"]
    path = local(url.split("#")[0]) + (f"&sandbox_openid={openid}" if openid else "")
    page = client.get(path)
    assert page.status_code == 302, page.data
    return page.headers["Location"]
