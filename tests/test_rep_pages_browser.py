"""The rep pages in a real headless Chromium at phone size: a notification's link, the card, a follow-up by click,
the list's filters, no horizontal scroll, another rep's lead, an expired link, a form without its CSRF token.

One browser for the session (tests/browser_kit.py); each test has a fresh context (no cookies) and its own server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.browser_kit import Leads, seed
from tests.helpers import serve

NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture
def site(app, client, auth_headers) -> Iterator[Leads]:
    with serve(app) as base:
        yield seed(client, auth_headers, base)


def test_a_notification_link_opens_the_card_and_a_click_follows_up(phone, site, client, auth_headers):
    page = phone
    response = page.goto(site.card_link(site.li, "o-zhang"))
    assert response.status == 200 and "t=" not in page.url and page.url.endswith(f"/rep/leads/{site.ids['o-zhang']}")
    cookie = next(c for c in page.context.cookies() if c["name"] == "session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.locator("#name").inner_text() == "张三"
    assert "138****5678" in page.locator("#profile").inner_text()
    assert page.locator('#tags [data-tag="interest:pricing"]').count() == 1
    score = page.locator("#score").inner_text()
    assert "asked-price" in score and "welcome" in score and "engagement" in score
    assert page.locator('#timeline li[data-kind="text"]').first.inner_text().count("price please") == 1
    assert page.evaluate(NO_SIDEWAYS)

    page.fill("#note", "Called: wants a quote for 20 units")
    page.click("#followed-up")
    page.wait_for_url(f"**/rep/leads/{site.ids['o-zhang']}")
    assert page.locator(".flash").inner_text() == "Marked as followed up."
    newest = page.locator("#timeline li").first
    assert newest.get_attribute("data-kind") == "rep_action" and "wants a quote for 20 units" in newest.inner_text()
    timeline = client.get("/api/v1/followers/o-zhang/timeline", headers=auth_headers).json
    assert timeline[0]["kind"] == "rep_action"
    note = "Called: wants a quote for 20 units"
    assert timeline[0]["data"] == {"rep": site.li, "action": "followed_up", "note": note}

    page.fill("#new-tag", "vip")
    page.click("#add-tag")
    page.wait_for_selector('#tags [data-tag="vip"]')
    assert page.locator("#score-now").inner_text() == "40.0"  # the playbook's tag_added rule: +20

    page.click("header a")  # the session carries on to the list without the link's token
    page.wait_for_url("**/rep/leads")
    assert page.locator("#leads a.lead").count() == 3


def test_the_list_filters_and_fits_a_phone(phone, site):
    page = phone
    page.goto(site.list_link(site.li))
    assert page.evaluate(NO_SIDEWAYS)
    page.select_option("#stage", "mql")
    page.click("#filters button")
    page.wait_for_url("**stage=mql**")
    assert page.locator("#leads a.lead").all_inner_texts()[0].startswith("Liu Yang")
    assert page.locator("#leads a.lead").count() == 1
    page.select_option("#stage", "")
    page.fill("#q", "ACME")
    page.select_option("#sort", "activity")
    page.click("#filters button")
    page.wait_for_url("**q=ACME**")
    openids = [a.get_attribute("data-openid") for a in page.locator("#leads a.lead").all()]
    assert openids == ["o-liu", "o-zhang"]
    page.click('#stages a:has-text("all")')
    page.fill("#tag", "interest:pricing")
    page.click("#filters button")
    page.wait_for_url("**tag=interest**")
    assert [a.get_attribute("data-openid") for a in page.locator("#leads a.lead").all()] == ["o-zhang"]
    page.click("#leads a.lead")
    assert page.locator("#name").inner_text() == "张三"
    page.fill("#new-tag", "x" * 64)  # one long unbroken word must wrap, not widen the page
    page.click("#add-tag")
    page.wait_for_selector(f'#tags [data-tag="{"x" * 64}"]')
    assert page.evaluate(NO_SIDEWAYS)


def test_another_reps_lead_and_an_expired_link_are_plain_pages(phone, site, monkeypatch):
    page = phone
    page.goto(site.list_link(site.li))
    response = page.goto(f"{site.base}/rep/leads/{site.ids['o-other']}")
    assert response.status == 404 and "no such lead among yours" in page.locator("#error").inner_text()
    assert "Someone Else" not in page.content()
    real = time.time
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real() - 8 * 86400)
        old = site.card_link(site.li, "o-zhang")
    page.context.clear_cookies()
    response = page.goto(old)
    assert response.status == 403 and "This link has expired" in page.locator("#error").inner_text()
    assert page.evaluate(NO_SIDEWAYS)


def test_a_form_without_its_csrf_token_is_refused(phone, site, client, auth_headers):
    page = phone
    page.goto(site.card_link(site.li, "o-chen"))
    page.evaluate("document.querySelectorAll('#follow-up input[name=csrf]').forEach(e => e.remove())")
    page.fill("#note", "should not be saved")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#followed-up")
    assert posted.value.status == 400 and "security token" in page.locator("#error").inner_text()
    kinds = [e["kind"] for e in client.get("/api/v1/followers/o-chen/timeline", headers=auth_headers).json]
    assert "rep_action" not in kinds
