"""Broadcasts: fan-out, counts and skip reasons, re-runs, pause/resume/cancel, the circuit breaker, channels, CLI."""

import json

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from scrm import broadcasts
from scrm.delivery_models import Delivery
from scrm.models import Follower
from scrm.playbook.models import Segment
from tasks.broadcast import fan_out
from tasks.pump import pump
from tasks.send import message_library, run_batch
from tasks.worker import run_worker
from tests.helpers import post
from tests.messaging_kit import (
    add_followers,
    drain,
    messages_per_openid,
    rows,
    sandbox,
    svc,
    template_sends,
    with_messaging,
)

VIP = {"tag": "vip"}


@pytest.fixture
def settings(settings):
    return with_messaging(settings, batch=10)


def start(client, auth_headers, **body):
    body = {"segment": VIP, "template": "event_checkin", "data": {"event_name": "Expo"}, **body}
    return client.post("/api/v1/broadcasts", json=body, headers=auth_headers)


def status(client, auth_headers, bid):
    return client.get(f"/api/v1/broadcasts/{bid}", headers=auth_headers).json


def test_broadcast_reaches_the_segment_once_and_reports_why_not(app, client, live, auth_headers):
    vip = add_followers(app, 45, prefix="vip-", tags=("vip",))
    add_followers(app, 10, prefix="other-")
    add_followers(app, 2, prefix="gone-", tags=("vip",), subscribed=False)
    add_followers(app, 1, prefix="out-", tags=("vip", "opted-out"))
    r = start(client, auth_headers)
    assert r.status_code == 202 and r.json["state"] == "running"
    drain(app)
    s = status(client, auth_headers, r.json["id"])
    assert s["state"] == "done" and s["audience"] == 48 and s["total"] == 48 and s["progress"] == 1.0
    assert s["counts"] == {"sent": 45, "blocked": 3}
    assert s["reasons"] == {"blocked": {"unsubscribed": 2, "opted_out": 1}}
    assert {o: len(m) for o, m in messages_per_openid(app).items()} == dict.fromkeys(vip, 1)
    skipped = client.get(
        "/api/v1/deliveries", query_string={"broadcast": r.json["id"], "state": "blocked"}, headers=auth_headers
    ).json["items"]
    assert sorted(d["openid"] for d in skipped) == ["gone-000000", "gone-000001", "out-000000"]


def test_rerunning_never_sends_twice(app, client, live, auth_headers):
    add_followers(app, 25, tags=("vip",))
    first = start(client, auth_headers, key="spring-2026")
    drain(app)
    again = start(client, auth_headers, key="spring-2026")
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    with app.app_context():
        assert fan_out(first.json["id"]) == 0  # the fan-out itself, run again on purpose
    drain(app)
    assert len(rows(app)) == 25 and len(template_sends(app)) == 25


def test_fan_out_resumes_at_its_cursor(app, client, auth_headers):
    add_followers(app, 2500, tags=("vip",))
    with app.app_context(), svc(app).db.transaction() as s:
        b, _, _ = broadcasts.create(s, message_library(), template="event_checkin", segment=VIP, data={})
        bid = b.id
    with app.app_context(), pytest.raises(Died):
        fan_out(bid, progress=die, page=1000)  # one page, then "the process died"
    assert len(rows(app)) == 1000
    with app.app_context():
        assert fan_out(bid) == 1500
    assert len({r.openid for r in rows(app)}) == 2500
    jobs = {r.job for r in rows(app)}
    assert len(jobs) == 250 and all(len([r for r in rows(app) if r.job == j]) == 10 for j in jobs)


class Died(Exception):
    pass


def die(scanned: int) -> None:
    raise Died


def test_pause_resume_cancel(app, client, live, auth_headers):
    add_followers(app, 30, tags=("vip",))
    bid = start(client, auth_headers).json["id"]
    with app.app_context():
        fan_out(bid)
        first_job = rows(app)[0].job
        run_batch(first_job, [r.id for r in rows(app) if r.job == first_job])
    r = client.post(f"/api/v1/broadcasts/{bid}/pause", json={"reason": "typo in the data"}, headers=auth_headers)
    assert r.status_code == 200 and r.json["state"] == "paused" and r.json["pause_reason"] == "typo in the data"
    drain_paused(app)
    assert len(template_sends(app)) == 10 and status(client, auth_headers, bid)["counts"]["queued"] == 20
    assert client.post(f"/api/v1/broadcasts/{bid}/pause", json={}, headers=auth_headers).status_code == 409
    assert client.post(f"/api/v1/broadcasts/{bid}/resume", headers=auth_headers).json["state"] == "running"
    drain(app)
    assert status(client, auth_headers, bid)["counts"] == {"sent": 30}
    assert {len(m) for m in messages_per_openid(app).values()} == {1}

    add_followers(app, 5, prefix="late-", tags=("late",))
    bid2 = start(client, auth_headers, segment={"tag": "late"}).json["id"]
    r = client.post(f"/api/v1/broadcasts/{bid2}/cancel", headers=auth_headers)
    assert r.status_code == 200 and r.json["state"] == "cancelled"
    drain(app)
    assert status(client, auth_headers, bid2)["counts"] in ({}, {"cancelled": 5})
    assert len(template_sends(app)) == 30


def drain_paused(app):
    """A paused broadcast keeps its queued rows: run what is queued once, expect nothing to move."""
    run_worker(app, burst=True)
    with app.app_context():
        pump()
    run_worker(app, burst=True)


def test_circuit_breaker_pauses_and_says_why(app, client, live, auth_headers):
    add_followers(app, 40, tags=("vip",))
    sandbox(app).set_templates("ANOTHER_TEMPLATE")  # every send answers 40037
    bid = start(client, auth_headers, error_budget=0.1, breaker_window=20).json["id"]
    drain_paused(app)
    s = status(client, auth_headers, bid)
    # a worker records a chunk (10 sends) at a time: the breaker sees the first ten errors together
    assert s["state"] == "paused" and s["pause_reason"].startswith("circuit breaker: error rate 10/10")
    assert s["counts"] == {"error": 10, "queued": 30} and len(template_sends(app)) == 10
    assert s["reasons"] == {"error": {"wechat": 10}}


def test_marketing_cannot_be_a_template_message(client, auth_headers, app):
    add_followers(app, 1, tags=("vip",))
    r = start(client, auth_headers, template="we_miss_you", channel="template")
    assert r.status_code == 422 and "cannot go by 'template'" in r.json["message"]


def test_render_is_checked_before_fanning_out(client, auth_headers, app):
    add_followers(app, 1, tags=("vip",))
    r = start(client, auth_headers, template="event_reminder", data={})
    assert r.status_code == 422 and "does not render" in r.json["message"] and "event_name" in r.json["message"]


@pytest.mark.parametrize("segment", [{"colour": "red"}, {}, "no-such-segment", {"tag": 3}])
def test_bad_segments(client, auth_headers, segment):
    r = start(client, auth_headers, segment=segment)
    assert r.status_code == 422 and r.json["message"].startswith("segment:")


def test_saved_segment_by_name(app, client, live, auth_headers):
    add_followers(app, 3, tags=("vip",))
    with svc(app).db.transaction() as s:
        s.add(Segment(name="vips", filter=VIP, created_at=utcnow()))
    bid = start(client, auth_headers, segment="vips").json["id"]
    drain(app)
    assert status(client, auth_headers, bid)["counts"] == {"sent": 3}


def test_mass_channel_checks_the_monthly_quota(app, client, live, auth_headers):
    svc(app).settings = with_messaging(svc(app).settings, mass_per_month=1)
    openids = add_followers(app, 4, tags=("vip",))
    with svc(app).db.transaction() as s:
        f = s.scalar(select(Follower).order_by(Follower.id))
        s.add(
            Delivery(
                key="earlier-mass",
                follower_id=f.id,
                openid=f.openid,
                channel="mass",
                template="we_miss_you",
                args={},
                state="delivered",
                sent_at=utcnow(),
            )
        )
    bid = start(client, auth_headers, template="we_miss_you", channel="mass").json["id"]
    drain(app)
    s = status(client, auth_headers, bid)
    assert s["counts"] == {"sent": 3, "skipped": 1} and s["reasons"] == {"skipped": {"mass_quota": 1}}
    (call,) = sandbox(app).sent("oa/message/mass/send")
    assert call["body"]["touser"] == openids[1:] and call["errcode"] == 0
    post(client, "mass-status", openid="gh_account", msg_id=call["answer"]["msg_id"], status="send success")
    assert status(client, auth_headers, bid)["counts"] == {"delivered": 3, "skipped": 1}


def test_custom_channel_skips_outside_the_window(app, client, live, auth_headers):
    add_followers(app, 2, tags=("vip",))
    post(client, "text", openid="o-000001", content="hi")
    bid = start(client, auth_headers, template="pricing_intro", channel="custom").json["id"]
    drain(app)
    s = status(client, auth_headers, bid)
    assert s["counts"] == {"sent": 1, "skipped": 1} and s["reasons"] == {"skipped": {"outside_window": 1}}


CLI_SEND = ["broadcast", "send", "--segment", json.dumps(VIP), "--template", "event_checkin",
            "--data", '{"event_name": "Expo"}', "--key", "cli-1", "--no-wait"]  # fmt: skip


def test_cli_send_and_control(app, runner, live):
    add_followers(app, 12, tags=("vip",))
    out = runner.invoke(args=CLI_SEND)
    assert out.exit_code == 0, out.output
    assert "broadcast 1 created" in out.output and "enqueued 12 deliveries" in out.output
    assert runner.invoke(args=["broadcast", "pause", "1"]).output.startswith("broadcast 1: paused")
    assert runner.invoke(args=["broadcast", "pause", "1"]).exit_code == 0  # already paused: says so, no error
    assert runner.invoke(args=["broadcast", "resume", "1"]).exit_code == 0
    drain(app)
    again = runner.invoke(args=CLI_SEND)
    assert "exists (same key)" in again.output and "enqueued 0 deliveries" in again.output
    shown = json.loads(runner.invoke(args=["broadcast", "status", "1", "--json"]).output)
    assert shown["state"] == "done" and shown["counts"] == {"sent": 12}
    assert runner.invoke(args=["broadcast", "cancel", "1"]).exit_code == 1
    assert runner.invoke(args=["broadcast", "send", "--segment", "{bad", "--template", "x"]).exit_code == 2
