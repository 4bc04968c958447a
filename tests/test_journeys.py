"""Journeys run: a rule starts one, `wait` steps become delayed outbox rows, `do` steps act through the engine."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

from sqlalchemy import func, select, update

from foundation.clock import utcnow
from scrm import journeys
from scrm.journeys import JourneyRun
from scrm.models import Outbox
from scrm.playbook import store
from tasks.worker import run_worker
from tests.helpers import post

_clock = itertools.count(int(time.time()) - 50_000)

BOOK = """
name: journeys
rules:
  - name: go
    when: {click: GO}
    do: [{start_journey: nurture}]
  - name: mark-x
    when: {click: MARK}
    do: [{tag: x}]
  - name: stop
    when: {click: STOP}
    do: [{tag: unsubscribed-from-nurture}]
journeys:
  nurture:
    exit_if: {tagged: [unsubscribed-from-nurture]}
    steps:
      - wait: 1d
      - if: {not_tagged: [x]}
        do: [{send_template: case_study}, {tag: nurtured}]
"""


def db(app):
    return app.extensions["welead"].db


def load(app, text: str = BOOK) -> None:
    with db(app).transaction() as session:
        store.load(session, text)


def click(client, openid: str, key: str) -> None:
    assert post(client, "click", openid=openid, key=key, create_time=next(_clock)).status_code == 200


def runs(app, openid: str | None = None) -> list[JourneyRun]:
    from scrm.models import Follower

    with db(app).sessions() as session:
        query = select(JourneyRun).order_by(JourneyRun.id)
        if openid:
            query = query.join(Follower, Follower.id == JourneyRun.follower_id).where(Follower.openid == openid)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def rows(app, task: str) -> list[Outbox]:
    with db(app).sessions() as session:
        found = list(session.scalars(select(Outbox).where(Outbox.task == task).order_by(Outbox.id)))
        session.expunge_all()
        return found


def make_due(app) -> None:
    with db(app).transaction() as session:
        session.execute(
            update(Outbox).where(Outbox.task == journeys.STEP_TASK).values(run_after=utcnow() - timedelta(seconds=5))
        )


def templates_for(app, openid: str) -> list[dict]:
    return [r.args for r in rows(app, "template.send") if r.args["openid"] == openid]


def timeline(client, headers, openid: str) -> list[dict]:
    r = client.get(f"/api/v1/followers/{openid}/timeline", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def test_wait_then_send_unless_tagged(app, client, live, auth_headers):
    load(app)
    click(client, "o-plain", "GO")
    click(client, "o-tagged", "MARK")
    click(client, "o-tagged", "GO")
    before = utcnow()
    run_worker(app, burst=True)

    assert [r.state for r in runs(app)] == ["running", "running"]
    steps = rows(app, "journey.step")
    assert len(steps) == 2 and all(s.done_at is None for s in steps)
    for s in steps:
        assert abs((s.run_after - before) - timedelta(days=1)) < timedelta(minutes=1)
        assert s.key == f"journey:{s.args['run_id']}:1" and s.args["index"] == 1
    assert rows(app, "template.send") == []

    run_worker(app, burst=True)  # not due yet: nothing moves
    assert all(s.done_at is None for s in rows(app, "journey.step")) and rows(app, "template.send") == []

    make_due(app)
    run_worker(app, burst=True)
    (sent,) = templates_for(app, "o-plain")
    assert sent["template"] == "case_study" and sent["key"].startswith("rule:journey:nurture:")
    assert templates_for(app, "o-tagged") == []
    (plain,), (tagged,) = runs(app, "o-plain"), runs(app, "o-tagged")
    assert (plain.state, plain.step, plain.reason) == ("finished", 2, "completed")
    assert (tagged.state, tagged.step) == ("finished", 2)
    assert all(s.done_at is not None and s.last_error is None for s in rows(app, "journey.step"))

    f = client.get("/api/v1/followers/o-plain", headers=auth_headers).json
    assert "nurtured" in f["tags"]  # the engine's own tag action
    events = timeline(client, auth_headers, "o-plain")
    kinds = [e["kind"] for e in events]
    assert kinds.count("journey_started") == 1 and kinds.count("journey_finished") == 1
    assert kinds.count("journey_step") == 2 and "tag_added" in kinds
    skipped = [e for e in timeline(client, auth_headers, "o-tagged") if e["kind"] == "journey_step"]
    assert any(e["data"].get("skipped") for e in skipped)


def test_exit_if_stops_a_run(app, client, live):
    load(app)
    click(client, "o-exit", "GO")
    run_worker(app, burst=True)
    click(client, "o-exit", "STOP")
    make_due(app)
    run_worker(app, burst=True)
    (run,) = runs(app, "o-exit")
    assert (run.state, run.reason, run.step) == ("exited", "exit_if", 1)
    assert templates_for(app, "o-exit") == []


def test_same_key_starts_one_run(app, client):
    load(app)
    click(client, "o-twice", "MARK")
    with app.app_context():
        from tasks.journey import journey_start

        first = journey_start("o-twice", "nurture", "manual:1")
        second = journey_start("o-twice", "nurture", "manual:1")
    assert first == {"run": second["run"], "state": "running"}
    assert second["state"] is None
    with db(app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(JourneyRun)) == 1
        assert session.scalar(select(func.count()).select_from(Outbox).where(Outbox.task == "journey.step")) == 1


def test_journey_gone_from_the_playbook_ends_the_run(app, client, live):
    load(app)
    click(client, "o-gone", "GO")
    run_worker(app, burst=True)
    load(app, BOOK.replace("nurture", "other"))
    make_due(app)
    run_worker(app, burst=True)
    (run,) = runs(app, "o-gone")
    assert run.state == "exited" and "not in the active playbook" in run.reason
