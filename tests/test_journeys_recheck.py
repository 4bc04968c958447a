"""Goals and exits of waiting runs (scrm.journey_recheck): a run waiting days ends as soon as its follower reaches
the goal or an exit, not when it wakes; a run whose follower changed otherwise keeps its wait; unchanged followers'
runs are not looked at."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update

from scrm import journey_recheck
from scrm.models import Activity, Follower
from tests import journeys_kit as kit

T0 = datetime(2026, 3, 2, 2, 0)
BOOK = """
name: recheck
journeys:
  nurture:
    goal: {stage_at_least: sql}
    steps:
      - do: [{tag: welcomed}]
      - wait: 3d
      - do: [{tag: reminded}]
"""


def recheck(app, now: datetime) -> dict[str, int]:
    with kit.db(app).transaction() as session:
        return journey_recheck.recheck(session, now=now, rules=kit.NO_QUIET)


def change(app, fid: int, at: datetime, **values) -> None:
    """The follower changed at `at`: its row, and the timeline entry a change leaves."""
    with kit.db(app).transaction() as session:
        if values:
            session.execute(update(Follower).where(Follower.id == fid).values(**values))
        session.add(Activity(follower_id=fid, kind="stage_changed", at=at, data={}))


def test_a_waiting_run_converts_or_exits_when_its_follower_changes(app):
    kit.load(app, BOOK)
    fids = {name: kit.follower(app, name) for name in ("goal", "unsub", "other", "quiet")}
    for name in fids:
        kit.start(app, name, "nurture", T0)
    assert recheck(app, T0 + timedelta(minutes=1)) == {"checked": 0, "ended": 0}  # nobody changed
    change(app, fids["goal"], T0 + timedelta(hours=1), stage="sql")
    change(app, fids["unsub"], T0 + timedelta(hours=1), subscribed=False, unsubscribed_at=T0 + timedelta(hours=1))
    change(app, fids["other"], T0 + timedelta(hours=1))  # a change that meets neither the goal nor an exit
    assert recheck(app, T0 + timedelta(hours=2)) == {"checked": 3, "ended": 2}
    goal, unsub = kit.run_of(app, "goal"), kit.run_of(app, "unsub")
    assert (goal.state, goal.reason, goal.position, goal.due_at) == ("converted", "goal", "1", None)
    assert (unsub.state, unsub.reason) == ("exited", "unsubscribed")
    other = kit.run_of(app, "other")
    assert (other.state, other.position, other.due_at) == ("running", "1", T0 + timedelta(days=3))
    assert other.updated_at == T0 + timedelta(hours=2)  # looked at: not again until it changes again
    assert recheck(app, T0 + timedelta(hours=3)) == {"checked": 0, "ended": 0}
    assert kit.executed(app, "goal") == [("0", "done")]  # no step ran: the wait never ended, nothing was sent
    kit.step(app, T0 + timedelta(days=3))  # the others wake as they would have
    assert kit.run_of(app, "other").state == kit.run_of(app, "quiet").state == "finished"
    assert kit.executed(app, "other")[-1] == ("2", "done")
