"""What a new marketer tripped over (issue 13, items 1-7 and 17): `+` in filters, unknown stages and models, one
filter language for every command, what `score` means, broadcasts that wait or reach nobody, and CLI output."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from foundation.clock import utcnow
from scrm import broadcasts, guards, scoring, tags
from scrm.models import Follower
from scrm.playbook import store
from tasks.pump import pump
from tasks.worker import run_worker
from tests.messaging_kit import add_followers, svc, with_messaging

TWO_MODELS = """
models: {engagement: {half_life_days: 30}, fit: {}}
stages: {model: fit, order: [new, engaged, {name: mql, at: 40}, sql, customer]}
"""


@pytest.fixture
def settings(settings):
    return with_messaging(settings, batch=10)


def people(app, *specs: tuple[str, str, tuple[str, ...]]) -> None:
    """Followers (openid, stage, tags)."""
    with svc(app).db.transaction() as session:
        for openid, stage, names in specs:
            f = Follower(openid=openid, subscribed=True, stage=stage, profile={}, created_at=utcnow())
            session.add(f)
            session.flush()
            for name in names:
                tags.add(session, f.id, name)


@pytest.fixture
def pricing(app):
    people(
        app,
        ("o-mql", "mql", ("interest:pricing",)),
        ("o-sql", "sql", ("interest:pricing",)),
        ("o-new", "new", ("interest:pricing",)),
        ("o-other", "customer", ()),
    )


# --- 1. `+` is a plus -------------------------------------------------------------------------------------------


def test_cli_count_keeps_plus_as_written(runner, pricing):
    r = runner.invoke(args=["segment", "count", "tags_all=interest:pricing&stage=mql+"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        'filter:    {"stage": ["mql+"], "tags_all": ["interest:pricing"]}',
        "followers: 2",
    ]


@pytest.mark.parametrize("stage", ["mql+", "mql%2B"])
def test_preview_reads_plus_literally_or_encoded(client, auth_headers, pricing, stage):
    r = client.get(f"/api/v1/segments/preview?tags_all=interest:pricing&stage={stage}", headers=auth_headers)
    assert r.status_code == 200, r.json
    assert r.json["filter"]["stage"] == ["mql+"] and r.json["count"] == 2


def test_preview_decodes_percent_escapes(client, auth_headers, app):
    people(app, ("o-space", "new", ("a b",)))
    r = client.get("/api/v1/segments/preview?tags_all=a%20b", headers=auth_headers)
    assert r.json["filter"] == {"tags_all": ["a b"]} and r.json["count"] == 1


# --- 2. unknown stages and models are refused -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("stage=hot", "stage: unknown stage 'hot' (stages: new, engaged, mql, sql, customer)"),
        ("score=nomodel:1..", "score.nomodel: unknown model 'nomodel' (models: engagement)"),
    ],
)
def test_unknown_stage_or_model_is_refused(client, runner, auth_headers, pricing, query, message):
    r = client.get(f"/api/v1/segments/preview?{query}", headers=auth_headers)
    assert r.status_code == 400 and message in json.dumps(r.json)
    out = runner.invoke(args=["segment", "count", query])
    assert out.exit_code == 1 and message in out.output
    out = runner.invoke(args=["segment", "export", query])
    assert out.exit_code == 1 and message in out.output and "openid" not in out.output


def test_models_of_the_playbook_and_stored_scores_are_known(app, runner, pricing):
    with svc(app).db.transaction() as session:
        store.load(session, TWO_MODELS)
    assert runner.invoke(args=["segment", "count", "score=fit:..5", "-q"]).output.strip() == "4"
    with svc(app).db.transaction() as session:
        fid = session.query(Follower.id).filter_by(openid="o-mql").scalar()
        scoring.award(session, follower_id=fid, model="legacy", half_life=None, points=3, rule="r",
                      interaction_id=None, dedup="legacy", now=utcnow())  # fmt: skip
    assert runner.invoke(args=["segment", "count", "score=legacy:1..", "-q"]).output.strip() == "1"


def test_saving_or_broadcasting_an_unknown_stage_is_refused(client, auth_headers, pricing):
    r = client.post("/api/v1/segments", json={"name": "hot", "filter": {"stage": "hot"}}, headers=auth_headers)
    assert r.status_code == 400 and "unknown stage 'hot'" in r.json["message"]
    body = {"segment": {"stage": ["hot"]}, "template": "event_checkin"}
    r = client.post("/api/v1/broadcasts", json=body, headers=auth_headers)
    assert r.status_code == 422 and "unknown stage 'hot'" in r.json["message"]


# --- 3. one filter language -------------------------------------------------------------------------------------


def test_segment_count_takes_every_form(client, runner, auth_headers, pricing):
    client.post("/api/v1/segments", json={"name": "late", "filter": {"stage": ["mql+"]}}, headers=auth_headers)
    for segment in ("stage=mql+", '{"stage": ["mql+"]}', "late"):
        r = runner.invoke(args=["segment", "count", segment, "-q"])
        assert (r.exit_code, r.output.strip()) == (0, "3"), (segment, r.output)


def test_broadcast_send_takes_a_query_string(app, runner, live):
    add_followers(app, 3, prefix="vip-", tags=("vip",))
    add_followers(app, 2, prefix="other-")
    r = runner.invoke(args=["broadcast", "send", "--segment", "tags_any=vip", "--template", "event_checkin",
                            "--no-wait"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "enqueued 3 deliveries" in r.output
    shown = json.loads(runner.invoke(args=["broadcast", "status", "1", "--json"]).output)
    assert shown["segment"] == {"tags_any": ["vip"]}  # stored as the filter it means


def test_api_broadcast_takes_a_query_string(app, client, auth_headers, live):
    add_followers(app, 2, prefix="vip-", tags=("vip",))
    r = client.post("/api/v1/broadcasts", json={"segment": "tags_any=vip", "template": "event_checkin"},
                    headers=auth_headers)  # fmt: skip
    assert r.status_code == 202, r.json
    assert r.json["segment"] == {"tags_any": ["vip"]} and r.json["audience"] == 2


@pytest.mark.parametrize("command", [["segment", "count"], ["segment", "export"], ["broadcast", "send"]])
def test_help_shows_the_syntax(runner, command):
    out = runner.invoke(args=[*command, "--help"]).output
    assert "a query string" in out and "a JSON filter" in out and "a saved segment" in out and "mql+" in out


# --- 4. what `score` means --------------------------------------------------------------------------------------


def test_score_is_the_stage_model_everywhere(app, client, runner, auth_headers):
    people(app, ("o-scored", "new", ()))
    with svc(app).db.transaction() as session:
        store.load(session, TWO_MODELS)
        fid = session.query(Follower.id).filter_by(openid="o-scored").scalar()
        for model, points in (("engagement", 30), ("fit", 12)):
            scoring.award(session, follower_id=fid, model=model, half_life=None, points=points, rule="r",
                          interaction_id=None, dedup=model, now=utcnow())  # fmt: skip
    body = client.get("/api/v1/followers/o-scored", headers=auth_headers).json
    assert body["score"] == 12 and body["scores"] == {"engagement": 30, "fit": 12}
    r = runner.invoke(args=["segment", "export", "--json", '{"openids": ["o-scored"]}'])
    (row,) = csv.DictReader(io.StringIO(r.stdout))
    assert row["score"] == "12.0" and row["scores"] == "engagement=30|fit=12"
    r = runner.invoke(args=["segment", "export", "openids=o-scored", "--format", "jsonl"])
    line = json.loads(r.stdout)
    assert line["score"] == 12 and line["scores"] == {"engagement": 30, "fit": 12}


# --- 5. a broadcast that waits says why -------------------------------------------------------------------------


def quiet_now(app) -> None:
    """Quiet hours from an hour ago to an hour from now, local time."""
    rules = guards.SendRules()
    local = guards.local_now(rules, utcnow())
    window = f"{(local - timedelta(hours=1)):%H:%M}-{(local + timedelta(hours=1)):%H:%M}"
    svc(app).settings = with_messaging(svc(app).settings, batch=10, quiet_hours=window)


def test_quiet_hours_show_in_status_and_cli(app, client, runner, auth_headers, live):
    quiet_now(app)
    add_followers(app, 4, tags=("vip",))
    r = runner.invoke(args=["broadcast", "send", "--segment", "tags_any=vip", "--template", "event_checkin",
                            "--no-wait"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "waiting until " in r.output and "Asia/Shanghai (quiet hours, " in r.output
    run_worker(app, burst=True)
    with app.app_context():
        pump()
    status = client.get("/api/v1/broadcasts/1", headers=auth_headers).json
    assert status["state"] == "running" and status["counts"] == {"queued": 4}
    assert status["reasons"] == {"queued": {"quiet_hours": 4}} and status["waiting_until"]
    assert broadcasts.deferred(status)
    out = runner.invoke(args=["broadcast", "status", "1"]).output
    ends = guards.local_now(guards.SendRules(), utcnow()) + timedelta(hours=1)
    assert f"{ends:%H:%M} Asia/Shanghai (quiet hours)" in out and "waiting until " in out


def test_the_cli_does_not_watch_a_bar_through_quiet_hours(app, runner, live):
    quiet_now(app)
    add_followers(app, 3, tags=("vip",))
    r = runner.invoke(args=["broadcast", "send", "--segment", "tags_any=vip", "--template", "event_checkin"])
    assert r.exit_code == 0, r.output  # returns at once instead of waiting for a worker that may not send for hours
    assert "broadcast 1: running" in r.output and "flask broadcast status 1" in r.output


# --- 7. empty segments and partial renders say so up front ------------------------------------------------------


def test_missing_data_says_to_pass_it(app, runner):
    add_followers(app, 1, tags=("vip",))
    out = runner.invoke(args=["broadcast", "send", "--segment", "tag=vip", "--template", "event_reminder"])
    assert out.exit_code == 1 and "does not render" in out.output and "--data" in out.output


def test_an_empty_segment_is_refused(app, client, runner, auth_headers):
    add_followers(app, 2, tags=("vip",))
    r = client.post("/api/v1/broadcasts", json={"segment": {"tag": "nobody"}, "template": "event_checkin"},
                    headers=auth_headers)  # fmt: skip
    assert r.status_code == 422 and "matches no followers" in r.json["message"]
    out = runner.invoke(args=["broadcast", "send", "--segment", "tag=nobody", "--template", "event_checkin"])
    assert out.exit_code == 1 and "matches no followers" in out.output


NICKNAME = """kind: service
template_id: TPL_EVENT_CHECKIN
fields:
  thing1: "{{ follower.profile.nickname }}"
"""


def test_a_template_that_renders_for_some_only_warns(app, client, runner, auth_headers, tmp_path):
    (tmp_path / "hello.yml").write_text(NICKNAME, encoding="utf-8")
    svc(app).settings = with_messaging(svc(app).settings, templates_dir=str(tmp_path))
    openids = add_followers(app, 5, tags=("vip",))
    with svc(app).db.transaction() as session:
        session.execute(update(Follower).where(Follower.openid.in_(openids[:3])).values(profile={"nickname": "Li"}))
    r = client.post("/api/v1/broadcasts", json={"segment": "tag=vip", "template": "hello", "key": "k"},
                    headers=auth_headers)  # fmt: skip
    assert r.status_code == 202, r.json
    (warning,) = r.json["warnings"]
    assert "does not render for 2 of the 5 followers checked" in warning and openids[3] in warning
    assert "nickname" in warning


def test_none_subscribed_warns(app, runner):
    add_followers(app, 2, tags=("vip",), subscribed=False)
    out = runner.invoke(args=["broadcast", "send", "--segment", "tag=vip", "--template", "event_checkin",
                              "--no-wait"])  # fmt: skip
    assert out.exit_code == 0 and "none of the 2 followers of the segment is subscribed" in out.output


# --- 17. CLI output ---------------------------------------------------------------------------------------------


def test_broadcast_list_has_headers(app, runner, live):
    assert runner.invoke(args=["broadcast", "list"]).output.strip() == "no broadcasts yet"
    add_followers(app, 2, tags=("vip",))
    runner.invoke(args=["broadcast", "send", "--segment", "tag=vip", "--template", "event_checkin", "--no-wait"])
    header, row = runner.invoke(args=["broadcast", "list"]).output.splitlines()
    assert header.split() == ["id", "state", "channel", "total", "created", "(UTC)", "name"]
    assert row.split()[:4] == ["1", "running", "template", "2"]


def test_progress_is_plain_lines_off_a_terminal(app, runner, live):
    add_followers(app, 12, tags=("vip",))
    out = runner.invoke(args=["broadcast", "send", "--segment", "tag=vip", "--template", "event_checkin",
                              "--no-wait"]).output  # fmt: skip
    assert "\r" not in out and "enqueue: 12/12 follower" in out.splitlines()


def test_simulate_against_a_stopped_server_says_so(runner):
    port = _free_port()
    out = runner.invoke(
        args=["wechat", "simulate", "subscribe", "--openid", "o-1", "--url", f"http://127.0.0.1:{port}"]
    )
    assert out.exit_code == 1 and "is `make run` running?" in out.output


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
