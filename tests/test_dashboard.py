"""The dashboard through Flask's test client: sign-in (CSRF, bad tokens, roles, revocation), every page draws the
report's numbers, a rep sees only its own leads, bad windows, no scripts and nothing loaded from another host."""

from __future__ import annotations

import re

import pytest

from tests.report_kit import WINDOW, build
from welead.auth import revoke

PAGES = ("", "/funnel", "/sources", "/deliveries", "/journeys", "/reps", "/tags", "/followers/f1")


@pytest.fixture
def data(app):
    return build(app)


def csrf(client) -> str:
    page = client.get("/dashboard/login").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def sign_in(client, token: str, **extra):
    return client.post("/dashboard/login", data={"csrf": csrf(client), "token": token, **extra})


def bearer(data, who: str) -> str:
    return data.tokens[who]["Authorization"].removeprefix("Bearer ")


def test_pages_need_a_session(client, data):
    response = client.get("/dashboard/funnel?from=2026-11-01")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/dashboard/login?next=/dashboard/funnel")


def test_sign_in_then_every_page(client, data):
    response = sign_in(client, "test-admin-token", next="/dashboard/reps")
    assert response.status_code == 303 and response.headers["Location"] == "/dashboard/reps"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    for path in PAGES:
        page = client.get("/dashboard" + path, query_string=WINDOW)
        html = page.get_data(as_text=True)
        assert page.status_code == 200, (path, html[:500])
        assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in html and page.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_pages_draw_the_reports_numbers(client, data):
    sign_in(client, "test-admin-token")
    html = client.get("/dashboard/funnel", query_string=WINDOW).get_data(as_text=True)
    drawn = re.findall(r'<g class="bar" data-label="([^"]+)" data-value="(\d+)"', html)
    assert drawn == [("new", "5"), ("engaged", "4"), ("mql", "3"), ("sql", "1"), ("customer", "0")]
    assert 'data-seconds="7200.0">2 h<' in html and 'data-seconds="5400.0">1.5 h<' in html
    html = client.get("/dashboard/reps", query_string=WINDOW).get_data(as_text=True)
    assert re.findall(r'<g class="bar" data-label="([^"]+)" data-value="(\d+)"', html) == [
        ("Li Wei", "2"), ("Wang Fang", "1")]  # fmt: skip
    assert 'data-seconds="3600.0">1 h<' in html
    html = client.get("/dashboard/sources", query_string=WINDOW).get_data(as_text=True)
    gained = re.findall(r'data-label="(2026-11-0\d)" data-key="gained" data-value="(\d+)"', html)
    assert gained == [(f"2026-11-0{d}", "1" if d <= 5 else "0") for d in range(1, 8)]
    assert '<span id="gained">5</span>' in html and '<span id="lost">2</span>' in html
    csv = client.get("/dashboard/deliveries.csv", query_string=WINDOW)
    assert csv.mimetype == "text/csv" and "welcome,delivered,2" in csv.get_data(as_text=True)


def test_the_follower_page(client, data):
    sign_in(client, "test-admin-token")
    html = client.get("/dashboard/followers/f1").get_data(as_text=True)
    assert '<dd id="stage">mql</dd>' in html and '<span class="tag" data-tag="vip">vip</span>' in html
    assert 'data-kind="unsubscribe"' in html and 'data-kind="rep_action"' in html
    assert client.get("/dashboard/followers?openid=f2").headers["Location"] == "/dashboard/followers/f2"
    assert client.get("/dashboard/followers/nobody").status_code == 404


def test_a_rep_sees_only_its_own_leads(client, data):
    assert sign_in(client, bearer(data, "li")).status_code == 303
    html = client.get("/dashboard/sources", query_string=WINDOW).get_data(as_text=True)
    assert '<span id="gained">2</span>' in html and "own leads" in html
    html = client.get("/dashboard/reps", query_string=WINDOW).get_data(as_text=True)
    assert "Li Wei" in html and "Wang Fang" not in html
    assert client.get("/dashboard/followers/f1").status_code == 200
    assert client.get("/dashboard/followers/f3").status_code == 404  # wang's lead: as if it did not exist


def test_sign_in_refusals(client, data):
    response = client.post("/dashboard/login", data={"token": "test-admin-token"})
    assert response.status_code == 400 and "security token" in response.get_data(as_text=True)
    assert sign_in(client, "wrong").status_code == 401
    assert sign_in(client, bearer(data, "staff")).status_code == 403
    offsite = sign_in(client, "test-admin-token", next="https://evil.example/dashboard")
    assert offsite.headers["Location"] == "/dashboard"
    assert sign_in(client, "test-admin-token", next="//evil.example/x").headers["Location"] == "/dashboard"


def test_revoking_the_token_ends_the_session(app, client, data):
    sign_in(client, bearer(data, "marketer"))
    assert client.get("/dashboard/tags").status_code == 200
    with app.extensions["welead"].db.transaction() as s:
        assert revoke(s, "mkt")
    assert client.get("/dashboard/tags").status_code == 303


def test_sign_out_needs_the_csrf_token(client, data):
    sign_in(client, "test-admin-token")
    assert client.post("/dashboard/logout").status_code == 400
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/dashboard").get_data(as_text=True)).group(1)
    assert client.post("/dashboard/logout", data={"csrf": token}).status_code == 303
    assert client.get("/dashboard").status_code == 303


def test_a_bad_window_is_a_400_page(client, data):
    sign_in(client, "test-admin-token")
    page = client.get("/dashboard/sources?from=2026-11-07&to=2026-11-01")
    assert page.status_code == 400 and "is after to" in page.get_data(as_text=True)
    assert client.get("/dashboard/sources?bucket=year").status_code == 400
    assert client.get("/dashboard/nothing").status_code == 404


def test_labels_are_escaped_in_charts_and_tables(app, client, data):
    from scrm.models import FollowerTag, Tag

    with app.extensions["welead"].db.transaction() as s:
        tag = Tag(name='<img src=x onerror="1">')
        s.add(tag)
        s.flush()
        s.add(FollowerTag(follower_id=data.ids["f1"], tag_id=tag.id))
    sign_in(client, "test-admin-token")
    html = client.get("/dashboard/tags").get_data(as_text=True)
    assert "<img" not in html and "&lt;img src=x onerror=&#34;1&#34;&gt;" in html
