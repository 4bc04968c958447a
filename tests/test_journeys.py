"""Journeys run: a rule starts one, `wait` steps set the run's due time, the step runner (journey.tick) executes what
is due, `do` steps act through the engine; runs finish on the version they started."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from foundation.clock import utcnow
from scrm import journeys
from scrm.journeys import JourneyRun
from scrm.models import Outbox
from scrm.playbook import store
from tasks.journey import tick
from tasks.worker import run_worker
from tests.helpers import post
from tests.messaging_kit import with_messaging

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


@pytest.fixture
def settings(settings):
    return with_messaging(settings)  # quiet hours off: tests must not depend on the hour they run at


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
        running = JourneyRun.state == journeys.RUNNING
        session.execute(update(JourneyRun).where(running).values(due_at=utcnow() - timedelta(seconds=5)))


def run_steps(app) -> dict:
    with app.app_context():
        return tick()


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
    for run in runs(app):
        assert abs((run.due_at - before) - timedelta(days=1)) < timedelta(minutes=1)
        assert (run.position, run.version) == ("0", 1) and run.since is not None
    assert rows(app, "template.send") == [] and rows(app, journeys.STEP_TASK) == []

    assert run_steps(app)["steps"] == 0  # not due yet: nothing moves
    assert rows(app, "template.send") == []

    make_due(app)
    assert run_steps(app)["steps"] == 4  # the wait and the step, twice
    (sent,) = templates_for(app, "o-plain")
    assert sent["template"] == "case_study" and sent["key"].startswith("rule:journey:nurture:")
    assert templates_for(app, "o-tagged") == []
    (plain,), (tagged,) = runs(app, "o-plain"), runs(app, "o-tagged")
    assert (plain.state, plain.step, plain.reason) == ("finished", 2, "completed")
    assert (tagged.state, tagged.step) == ("finished", 2)
    with db(app).sessions() as session:
        assert journeys.executed(session, plain.id) == [("0", "done"), ("1", "done")]
        assert journeys.executed(session, tagged.id) == [("0", "done"), ("1", "skipped")]
    assert run_steps(app)["steps"] == 0 and len(templates_for(app, "o-plain")) == 1

    f = client.get("/api/v1/followers/o-plain", headers=auth_headers).json
    assert "nurtured" in f["tags"]  # the engine's own tag action
    events = timeline(client, auth_headers, "o-plain")
    kinds = [e["kind"] for e in events]
    assert kinds.count("journey_started") == 1 and kinds.count("journey_finished") == 1
    assert kinds.count("journey_step") == 2 and "tag_added" in kinds
    skipped = [e for e in timeline(client, auth_headers, "o-tagged") if e["kind"] == "journey_step"]
    assert any(e["data"].get("outcome") == "skipped" for e in skipped)


def test_exit_if_stops_a_run(app, client, live):
    load(app)
    click(client, "o-exit", "GO")
    run_worker(app, burst=True)
    click(client, "o-exit", "STOP")
    make_due(app)
    run_steps(app)
    (run,) = runs(app, "o-exit")
    assert (run.state, run.reason, run.step, run.position) == ("exited", "exit_if", 0, "0")
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
        assert session.scalar(select(func.count()).select_from(Outbox).where(Outbox.task == "journey.step")) == 0


def test_runs_finish_on_their_version_after_the_journey_changes_or_goes(app, client, live):
    load(app)
    click(client, "o-v1", "GO")
    run_worker(app, burst=True)
    load(app, BOOK.replace("send_template: case_study", "send_template: pricing_intro"))
    click(client, "o-v2", "GO")
    run_worker(app, burst=True)
    load(app, BOOK.replace("nurture", "other"))  # gone from the playbook: runs of it still finish
    make_due(app)
    run_steps(app)
    (v1,), (v2,) = runs(app, "o-v1"), runs(app, "o-v2")
    assert (v1.version, v1.state, v2.version, v2.state) == (1, "finished", 2, "finished")
    assert [t["template"] for t in templates_for(app, "o-v1")] == ["case_study"]
    assert [t["template"] for t in templates_for(app, "o-v2")] == ["pricing_intro"]


def test_a_run_started_before_versions_is_pinned_and_continues(app, client, live):
    """A run written by the old code (no version, `step` index, a delayed journey.step row) still finishes."""
    load(app)
    click(client, "o-old", "MARK")
    run_worker(app, burst=True)
    with db(app).transaction() as session:
        from scrm import outbox
        from scrm.models import Follower

        fid = session.scalar(select(Follower.id).where(Follower.openid == "o-old"))
        values = {"follower_id": fid, "journey": "nurture", "key": "old:1", "step": 1, "state": "running"}
        run = JourneyRun(**values, started_at=utcnow(), updated_at=utcnow())
        session.add(run)
        session.flush()
        outbox.add(session, journeys.STEP_TASK, {"run_id": run.id, "index": 1}, key=f"journey:{run.id}:1")
    run_worker(app, burst=True)
    (old,) = runs(app, "o-old")
    assert (old.state, old.version, old.position) == ("finished", 1, None)
