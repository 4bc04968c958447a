"""Reports over a known data set (tests/report_kit.py): every count and median checked, the CSV variant, the CLI,
roles (a rep counts only its own leads, staff is refused) and bad input (400 with a message naming it)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.report_kit import WINDOW, build


@pytest.fixture
def data(app):
    return build(app)


def get(client, data, name, who="admin", **args):
    response = client.get(f"/api/v1/reports/{name}", query_string={**WINDOW, **args}, headers=data.tokens[who])
    assert response.status_code == 200, response.json
    return response.json


def test_sources_by_kind_scene_and_local_day(client, data):
    r = get(client, data, "sources")
    assert r["totals"] == {"gained": 5, "lost": 2, "net": 3}
    kinds = {k["kind"]: (k["gained"], k["lost"]) for k in r["by_kind"]}
    assert kinds == {"rep": (1, 2), "booth": (1, 0), "none": (1, 0), "team": (1, 0), "campaign": (1, 0)}
    assert r["by_scene"][0] == {"scene": "rep:1", "kind": "rep", "gained": 1, "lost": 2, "net": -1}
    days = {s["bucket"]: (s["gained"], s["lost"]) for s in r["series"]}
    assert list(days) == [f"2026-11-0{d}" for d in range(1, 8)]  # every day of the window, empty ones too
    # 00:30 and 01:00 local are still the day before in UTC: the buckets are Asia/Shanghai days
    assert days == {"2026-11-01": (1, 0), "2026-11-02": (1, 0), "2026-11-03": (1, 0), "2026-11-04": (1, 0),
                    "2026-11-05": (1, 0), "2026-11-06": (0, 1), "2026-11-07": (0, 1)}  # fmt: skip
    wecom = [row for row in r["rows"] if row["channel"] == "wecom"]
    assert {(w["scene"], w["gained"], w["lost"]) for w in wecom} == {("team:5", 1, 0), ("rep:1", 0, 1)}


def test_sources_by_week_start_on_monday(client, data):
    r = get(client, data, "sources", bucket="week")
    weeks = {s["bucket"]: (s["gained"], s["lost"]) for s in r["series"]}
    assert weeks == {"2026-10-26": (1, 0), "2026-11-02": (4, 2)}  # 11-01 is a Sunday


def test_funnel_counts_conversion_and_median_times(client, data):
    r = get(client, data, "funnel")
    assert r["cohort"] == 5
    rows = {row["stage"]: row for row in r["rows"]}
    assert [rows[s]["reached"] for s in ("new", "engaged", "mql", "sql", "customer")] == [5, 4, 3, 1, 0]
    assert rows["engaged"]["from_previous"] == 0.8 and rows["mql"]["conversion"] == 0.6
    assert rows["sql"]["from_previous"] == 0.3333 and rows["new"]["from_previous"] is None
    medians = [rows[s]["median_seconds_from_previous"] for s in ("new", "engaged", "mql", "sql", "customer")]
    assert medians == [None, 7200.0, 5400.0, 14400.0, None]


def test_reps_leaderboard(client, data):
    r = get(client, data, "reps")
    assert r["rows"] == [
        {"rep_id": data.li, "name": "Li Wei", "leads": 2, "mqls": 1, "followed_up": 2,
         "median_seconds_to_follow_up": 3600.0},
        {"rep_id": data.wang, "name": "Wang Fang", "leads": 1, "mqls": 1, "followed_up": 0,
         "median_seconds_to_follow_up": None},
    ]  # fmt: skip


def test_deliveries_by_template_and_state(client, data):
    r = get(client, data, "deliveries")
    assert r["total"] == 4 and r["by_state"] == {"delivered": 2, "failed": 1, "queued": 1}
    welcome = r["by_template"][0]
    assert welcome == {"template": "welcome", "total": 3, "states": {"delivered": 2, "failed": 1},
                       "delivered_rate": 1.0, "clicked": 1, "clicks": 2, "click_through": 0.5}  # fmt: skip
    assert r["by_template"][1]["clicked"] == 0 and r["by_template"][1]["click_through"] is None  # nothing reached
    assert {(x["template"], x["state"], x["count"]) for x in r["rows"]} == {
        ("welcome", "delivered", 2), ("welcome", "failed", 1), ("pricing", "queued", 1)}  # fmt: skip


def test_top_tags(client, data):
    r = get(client, data, "tags")
    assert r["rows"] == [{"tag": "vip", "followers": 3, "added": 2}, {"tag": "hot", "followers": 1, "added": 1}]
    assert get(client, data, "tags", limit=1)["rows"] == [{"tag": "vip", "followers": 3, "added": 2}]


def test_journeys_per_version_and_step(client, data):
    r = get(client, data, "journeys")
    (nurture,) = r["journeys"]
    assert (nurture["journey"], nurture["version"], nurture["entered"]) == ("nurture", 1, 4)
    assert (nurture["finished"], nurture["exited"], nurture["runs"]["running"]) == (1, 1, 2)
    steps = [(s["step"], s["entered"], s["waiting"], s["done"], s["exited"]) for s in nurture["steps"]]
    assert steps == [("0", 4, 0, 4, 0), ("1", 3, 1, 2, 1), ("2", 2, 1, 1, 0)]
    assert [s["entered"] for s in get(client, data, "journeys", "li")["journeys"][0]["steps"]] == [2, 2]


def test_a_rep_counts_only_its_own_leads(client, data):
    assert get(client, data, "sources", "li")["totals"] == {"gained": 2, "lost": 2, "net": 0}
    assert get(client, data, "funnel", "li")["cohort"] == 2
    assert [r["rep_id"] for r in get(client, data, "reps", "li")["rows"]] == [data.li]
    assert get(client, data, "deliveries", "li")["by_state"] == {"delivered": 2}
    assert get(client, data, "tags", "li")["rows"][0] == {"tag": "vip", "followers": 2, "added": 2}
    assert get(client, data, "sources", "marketer")["totals"]["gained"] == 5
    refused = client.get("/api/v1/reports/sources", headers=data.tokens["staff"])
    assert refused.status_code == 403


def test_csv_holds_the_rows(client, data):
    response = client.get("/api/v1/reports/deliveries.csv", query_string=WINDOW, headers=data.tokens["admin"])
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="deliveries.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {(r["template"], r["state"], r["count"]) for r in rows} == {
        ("welcome", "delivered", "2"), ("welcome", "failed", "1"), ("pricing", "queued", "1")}  # fmt: skip
    funnel = client.get("/api/v1/reports/funnel.csv", query_string=WINDOW, headers=data.tokens["admin"])
    lines = funnel.get_data(as_text=True).splitlines()
    assert lines[0] == "stage,reached,conversion,from_previous,median_seconds_from_previous"
    assert lines[2] == "engaged,4,0.8,0.8,7200.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"from": "2026-11-07", "to": "2026-11-01"}, "from (2026-11-07) is after to (2026-11-01)"),
        ({"from": "2026-13-01"}, "from must be a date like 2026-12-01"),
        ({"to": "yesterday"}, "to must be a date like 2026-12-01"),
        ({"from": "2026-11-01T00:00"}, "from must be a date"),
        ({"bucket": "month"}, "bucket must be one of day, week"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "the window is at most 731 days long"),
        ({"limit": "0"}, "limit must be an integer from 1 to 200"),
    ],
)
def test_bad_input_is_a_400_naming_it(client, data, args, message):
    response = client.get("/api/v1/reports/tags", query_string=args, headers=data.tokens["admin"])
    assert response.status_code == 400 and response.json["message"].startswith(message), response.json


def test_unknown_report(client, data):
    for path in ("/api/v1/reports/nope", "/api/v1/reports/nope.csv"):
        response = client.get(path, headers=data.tokens["admin"])
        assert response.status_code == 400
        assert response.json["message"].startswith("unknown report 'nope': one of sources, funnel")


def test_cli_prints_json_or_csv(runner, data):
    result = runner.invoke(args=["report", "reps", "--from", "2026-11-01", "--to", "2026-11-07"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"][0]["median_seconds_to_follow_up"] == 3600.0
    result = runner.invoke(args=["report", "tags", "--from", "2026-11-01", "--to", "2026-11-07", "--csv"])
    assert result.output.splitlines() == ["tag,followers,added", "vip,3,2", "hot,1,1"]
    bad = runner.invoke(args=["report", "tags", "--bucket", "year"])
    assert bad.exit_code == 2 and "bucket must be one of day, week" in bad.output
    unknown = runner.invoke(args=["report", "nope"])
    assert unknown.exit_code == 2 and "unknown report" in unknown.output
