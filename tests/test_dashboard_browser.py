"""The dashboard in a real headless Chromium (tests/browser_kit.py: Debian's /usr/bin/chromium, skipped without it
unless WELEAD_REQUIRE_BROWSER is set): sign in with a token, open every page, read the numbers the SVG charts and
tables draw and compare them with what the API answers, and save a screenshot of each page as a test artifact
(under WELEAD_ARTIFACTS when set, else pytest's temporary directory; the path is printed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.helpers import serve
from tests.report_kit import WINDOW, build

DESKTOP = {"width": 1280, "height": 900}
QUERY = urlencode(WINDOW)


@pytest.fixture
def site(app, client) -> Iterator[tuple[str, Any]]:
    data = build(app)
    with serve(app) as base:
        yield base, data


@pytest.fixture
def desk(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = Path(os.environ.get("WELEAD_ARTIFACTS") or tmp_path_factory.getbasetemp() / "artifacts") / "dashboard"
    where.mkdir(parents=True, exist_ok=True)
    return where


def api(client, data, path: str, who: str = "admin") -> Any:
    response = client.get(path, query_string=WINDOW if "/reports/" in path else None, headers=data.tokens[who])
    assert response.status_code == 200, response.json
    return response.json


def bars(page: Any, chart: str) -> list[tuple[str, float, str]]:
    """(label, value, the number written after the bar) for each bar of a chart."""
    out = []
    for g in page.locator(f"svg#{chart} g.bar").all():
        out.append((g.get_attribute("data-label"), float(g.get_attribute("data-value")),
                    g.locator("text.value").text_content()))  # fmt: skip
    return out


def sign_in(page: Any, base: str, token: str, path: str) -> None:
    page.goto(f"{base}{path}?{QUERY}")
    page.wait_for_url("**/dashboard/login**")
    page.fill("#token", token)
    page.click("#sign-in")
    page.wait_for_url(f"**{path}?{QUERY}")


def shoot(page: Any, artifacts: Path, name: str) -> None:
    target = artifacts / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    print(f"screenshot: {target}")


def test_every_page_draws_what_the_api_answers(desk, site, client, artifacts):
    base, data = site
    page = desk
    sign_in(page, base, "test-admin-token", "/dashboard/funnel")

    funnel = api(client, data, "/api/v1/reports/funnel")
    assert bars(page, "funnel-chart") == [(r["stage"], r["reached"], str(r["reached"])) for r in funnel["rows"]]
    assert page.locator("#cohort").inner_text() == str(funnel["cohort"])
    seconds = page.locator("#funnel td[data-seconds]").evaluate_all("tds => tds.map(td => td.dataset.seconds)")
    assert seconds == [str(r["median_seconds_from_previous"] or "") for r in funnel["rows"]]
    shoot(page, artifacts, "funnel")

    page.click('header a:has-text("Sources")')
    page.wait_for_url("**/dashboard/sources**")
    sources = api(client, data, "/api/v1/reports/sources")
    gained = page.locator('svg#sources-chart rect[data-key="gained"]').evaluate_all(
        "rects => rects.map(r => [r.dataset.label, Number(r.dataset.value)])"
    )
    assert gained == [[s["bucket"], s["gained"]] for s in sources["series"]]
    lost = page.locator('svg#sources-chart rect[data-key="lost"]').evaluate_all("rs => rs.map(r => +r.dataset.value)")
    assert lost == [s["lost"] for s in sources["series"]]
    assert [page.locator(f"#{k}").inner_text() for k in ("gained", "lost", "net")] == [
        str(sources["totals"][k]) for k in ("gained", "lost", "net")]  # fmt: skip
    assert bars(page, "kinds-chart") == [(k["kind"], k["gained"], str(k["gained"])) for k in sources["by_kind"]]
    shoot(page, artifacts, "sources")

    page.select_option("#bucket", "week")
    page.click("#window button")
    page.wait_for_url("**bucket=week**")
    weekly = client.get("/api/v1/reports/sources", query_string={**WINDOW, "bucket": "week"},
                        headers=data.tokens["admin"]).json  # fmt: skip
    drawn = page.locator('svg#sources-chart rect[data-key="gained"]').evaluate_all(
        "rs => rs.map(r => +r.dataset.value)"
    )
    assert drawn == [s["gained"] for s in weekly["series"]]
    assert len(drawn) == 2

    page.goto(f"{base}/dashboard/deliveries?{QUERY}")
    deliveries = api(client, data, "/api/v1/reports/deliveries")
    assert bars(page, "deliveries-chart") == [(t["template"], t["total"], str(t["total"]))
                                             for t in deliveries["by_template"]]  # fmt: skip
    parts = page.locator("svg#deliveries-chart rect").evaluate_all(
        "rs => rs.map(r => [r.parentNode.dataset.label, r.dataset.key, +r.dataset.value])"
    )
    assert sorted(map(tuple, parts)) == sorted((r["template"], r["state"], r["count"]) for r in deliveries["rows"])
    assert page.locator("#total").inner_text() == str(deliveries["total"])
    shoot(page, artifacts, "deliveries")

    page.goto(f"{base}/dashboard/journeys?{QUERY}")
    journeys = api(client, data, "/api/v1/reports/journeys")
    for journey in journeys["journeys"]:
        chart = f"journey-{journey['journey']}-v{journey['version']}"
        assert bars(page, chart) == [(s["label"], s["entered"], str(s["entered"])) for s in journey["steps"]]
        section = page.locator(f'section[data-journey="{journey["journey"]}"][data-version="{journey["version"]}"]')
        for step in journey["steps"]:
            row = section.locator(f'tr[data-step="{step["step"]}"]')
            keys = ("entered", "waiting", "done", "exited", "converted")
            assert [row.locator(f"td.{k}").inner_text() for k in keys] == [str(step[k]) for k in keys]
    shoot(page, artifacts, "journeys")

    page.goto(f"{base}/dashboard/reps?{QUERY}")
    reps = api(client, data, "/api/v1/reports/reps")
    assert bars(page, "reps-chart") == [(r["name"], r["leads"], str(r["leads"])) for r in reps["rows"]]
    for r in reps["rows"]:
        row = page.locator(f'#reps tr[data-rep="{r["rep_id"]}"]')
        assert row.locator("td.mqls").inner_text() == str(r["mqls"])
        assert row.locator("td[data-seconds]").get_attribute("data-seconds") == str(
            r["median_seconds_to_follow_up"] or "")  # fmt: skip
    shoot(page, artifacts, "reps")

    page.fill("#find input", "f1")
    page.press("#find input", "Enter")
    page.wait_for_url("**/dashboard/followers/f1")
    follower = api(client, data, "/api/v1/followers/f1")
    timeline = api(client, data, "/api/v1/followers/f1/timeline")
    assert page.locator("#stage").inner_text() == follower["stage"]
    assert page.locator("#score-now").inner_text() == str(follower["score"])
    assert page.locator("#tags .tag").all_inner_texts() == follower["tags"]
    kinds = page.locator("#timeline tr").evaluate_all("trs => trs.map(t => t.dataset.kind)")
    assert kinds == [e["kind"] for e in timeline]
    shoot(page, artifacts, "follower")

    page.click("#logout")
    page.wait_for_url("**/dashboard/login")
    page.goto(f"{base}/dashboard/reps")
    assert "/dashboard/login" in page.url


def test_a_rep_sees_its_own_numbers(desk, site, client, artifacts):
    base, data = site
    page = desk
    sign_in(page, base, data.tokens["li"]["Authorization"].removeprefix("Bearer "), "/dashboard/sources")
    own = api(client, data, "/api/v1/reports/sources", "li")
    assert page.locator("#gained").inner_text() == str(own["totals"]["gained"]) == "2"
    assert "own leads" in page.locator("#who").inner_text()
    response = page.goto(f"{base}/dashboard/followers/f3")
    assert response.status == 404
    shoot(page, artifacts, "rep-sources")
