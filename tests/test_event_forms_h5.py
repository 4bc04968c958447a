"""The lead form as an H5 page: linked from the booth reply with a signed token, CSRF-protected, field errors, and a
submission applied through the same path as the chat (one interaction, one `form_submitted`, one lead row)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from foundation.signing import Signer
from scrm import event_forms, form_links, lead_links
from scrm.models import Interaction
from tests.event_forms_kit import LINK, content, leads, make_event, say, scan, svc
from tests.helpers import count, drain

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NONCE = re.compile(r'name="n" value="([^"]+)"')


@pytest.fixture
def settings(settings):
    return settings.replace(public_url="https://welead.example")


def link_of(client, openid: str, scene: str = "booth:expo:A1") -> tuple[str, str]:
    """The form's address (path and query) and token, as the booth reply gives them."""
    url, token = LINK.search(content(scan(client, openid, scene)) or "").groups()
    parts = urlsplit(url)
    assert parts.netloc == "welead.example"
    return f"{parts.path}?{parts.query}", token


def page(client, path: str) -> tuple[str, str, str]:
    r = client.get(path)
    assert r.status_code == 200, r.get_data(as_text=True)
    html = r.get_data(as_text=True)
    return html, CSRF.search(html).group(1), NONCE.search(html).group(1)


def send(client, token: str, csrf: str, nonce: str = "n1", **values: str):
    return client.post("/forms/lead", data={"t": token, "csrf": csrf, "n": nonce, **values})


GOOD = {"name": "李雷", "company": "Hanmeimei Ltd", "mobile": "0086-139-1234-5678"}


def test_the_page_submits_a_lead_like_the_chat(app, client, auth_headers):
    make_event(app)
    path, token = link_of(client, "o-h5")
    html, csrf, nonce = page(client, path)
    assert "Booth A1" in html and 'name="mobile"' in html and 'type="tel"' in html
    r = send(client, token, csrf, nonce, **GOOD)
    assert r.status_code == 303 and "/forms/lead/done" in r.headers["Location"]
    assert "谢谢" in client.get(r.headers["Location"]).get_data(as_text=True)
    assert send(client, token, csrf, nonce, **GOOD).status_code == 303  # a double tap: the same page counts once
    assert content(say(client, "o-h5", "1")) != event_forms.PROMPTS["name"]  # the chat's offer ended with it
    drain(app)
    (lead,) = leads(app)
    assert (lead["name"], lead["company"], lead["mobile"]) == ("李雷", "Hanmeimei Ltd", "13912345678")
    timeline = client.get("/api/v1/followers/o-h5/timeline", headers=auth_headers).json
    assert [e["data"]["via"] for e in timeline if e["kind"] == "lead_captured"] == ["h5"]
    assert any(e["kind"] == "form_submit" for e in timeline)


def test_bad_fields_show_their_errors_and_record_nothing(app, client):
    make_event(app)
    path, token = link_of(client, "o-h5bad")
    _, csrf, nonce = page(client, path)
    before = count(app, Interaction)
    r = send(client, token, csrf, nonce, name="🙂", company="Acme", mobile="12345")
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "请填写 11 位中国大陆手机号" in html and "请填写您的称呼" in html
    assert 'value="Acme"' in html and 'aria-invalid="true"' in html
    r = send(client, token, csrf, nonce, name="<b>x</b>]]>", company="Acme", mobile="12345")
    assert "<b>x</b>" not in r.get_data(as_text=True)  # escaped, as any page value
    assert count(app, Interaction) == before


def test_a_missing_or_wrong_csrf_token_is_refused(app, client):
    make_event(app)
    path, token = link_of(client, "o-csrf")
    page(client, path)
    before = count(app, Interaction)
    assert send(client, token, "", **GOOD).status_code == 400
    r = send(client, token, "forged-token", **GOOD)
    assert r.status_code == 400 and "安全校验" in r.get_data(as_text=True)
    fresh = app.test_client()  # another browser: no session at all
    assert send(fresh, token, "whatever", **GOOD).status_code == 400
    assert count(app, Interaction) == before


def test_forged_edited_or_foreign_tokens_are_refused(app, client):
    make_event(app)
    path, token = link_of(client, "o-victim")
    _, csrf, _ = page(client, path)
    other = Signer("not-our-key")
    forged = form_links.form_token(other, "o-victim", "expo", "A1")
    assert client.get(f"/forms/lead?t={forged}").status_code == 403
    edited = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert client.get(f"/forms/lead?t={edited}").status_code == 403
    rep_token = lead_links.rep_token(svc(app).signer, 1)  # signed by us, for another purpose
    assert client.get(f"/forms/lead?t={rep_token}").status_code == 403
    assert send(client, forged, csrf, **GOOD).status_code == 403
    assert client.get("/forms/lead").status_code == 403
    drain(app)
    assert leads(app) == []


def test_a_token_for_an_event_that_is_gone_is_a_404(app, client):
    token = form_links.form_token(svc(app).signer, "o-x", "nosuch", "A1")
    r = client.get(f"/forms/lead?t={token}")
    assert r.status_code == 404 and r.headers["X-Frame-Options"] == "DENY"
