"""Each journey step executes at most once per run: real `flask journey run` processes SIGKILLed mid-batch and
restarted, two runners at once, and a step executed twice that cannot commit (the unique key per run and step)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from foundation.clock import utcnow
from scrm import journey_entry, journeys, segments
from scrm.journey_models import FINISHED, JourneyRun
from scrm.models import Activity, Outbox
from tests import journeys_kit as kit
from tests.conftest import ENV_VARS
from tests.helpers import FlaskProcesses

BOOK = """
name: faults
journeys:
  j:
    entry: {segment: everyone}
    reentry: once
    steps:
      - do: [{tag: a}]
      - wait: 1s
      - do: [{send_template: case_study}, {tag: b}]
"""
BATCH = 10


class Runners(FlaskProcesses):
    def __init__(self, database_url: str, redis_url: str, log_dir) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and not k.startswith("WELEAD_")}
        env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1", WELEAD_QUIET_HOURS="off")
        super().__init__(env, log_dir, "journey-run", "journey", "run", "--batch", str(BATCH), "--idle", "0.05")


def enter(app, n: int) -> None:
    kit.load(app, BOOK)
    with kit.db(app).transaction() as session:
        from scrm.models import Follower

        session.add_all(Follower(openid=f"f{i}", subscribed=True) for i in range(n))
        session.flush()
        segments.save(session, "everyone", {})
        assert journey_entry.enter_segments(session) == n


def wait_until(check, timeout: float, what: str, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(every)


def finished(app) -> int:
    return kit.count(app, JourneyRun, JourneyRun.state == FINISHED)


def everything_once(app, n: int) -> None:
    """Every run finished, every step executed once: its row, its timeline entry, its effects."""
    assert finished(app) == n
    assert kit.step_rows(app) == 3 * n and kit.step_notes(app) == 3 * n  # do, wait, do
    assert kit.count(app, Activity, Activity.kind == "tag_added") == 2 * n
    assert kit.count(app, Outbox, Outbox.task == "template.send") == n


def test_a_sigkilled_runner_leaves_whole_batches_and_a_restart_finishes(app, database_url, redis_url, tmp_path):
    n = 1500
    enter(app, n)
    runners = Runners(database_url, redis_url, tmp_path)
    try:
        for _ in range(2):
            before = kit.step_rows(app)
            proc = runners.start()
            wait_until(lambda b=before: kit.step_rows(app) > b, 30, "the runner made no progress", 0.002)
            proc.kill()
            proc.wait(5)
            done = kit.step_rows(app)
            assert done < 3 * n, "killed too late to be mid-work"
            assert done % BATCH == 0, "a batch was committed in part"
            assert kit.step_notes(app) == done  # effects and rows together, nothing else
        runners.start()
        wait_until(lambda: finished(app) == n, 240, "the runs did not finish", 0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- runner logs ---\n{runners.logs()}") from None
    finally:
        runners.stop()
    everything_once(app, n)


def test_two_runners_at_once_execute_each_step_once(app, database_url, redis_url, tmp_path):
    n = 800
    enter(app, n)
    runners = Runners(database_url, redis_url, tmp_path)
    try:
        runners.start()
        runners.start()
        wait_until(lambda: finished(app) == n, 240, "the runs did not finish", 0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- runner logs ---\n{runners.logs()}") from None
    finally:
        runners.stop()
    everything_once(app, n)
    logs = [p.read_text() for p in sorted(tmp_path.glob("journey-run-*.log"))]
    assert all("runs," in log for log in logs), "both runners should have done some of the work"


def test_a_step_executed_again_cannot_commit(app):
    """A runner holding a stale copy of a run (its position before a step another runner executed) fails whole:
    the step's effects roll back with its duplicate row."""
    enter(app, 3)
    with kit.db(app).transaction() as session:
        journeys.run_due(session, rules=kit.NO_QUIET)
    notes = kit.step_notes(app)
    with kit.db(app).transaction() as session:
        session.execute(update(JourneyRun).values(position="0", since=None, due_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(IntegrityError), kit.db(app).transaction() as session:
        journeys.run_due(session, rules=kit.NO_QUIET)
    assert kit.step_notes(app) == notes and kit.step_rows(app) == 3
    assert kit.count(app, Activity, Activity.kind == "tag_added") == 3
