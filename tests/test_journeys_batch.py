"""A batch of runs is set-based (scrm.journey_stepper): the followers' tags, scores, caps and events are read once
for the whole batch and the effects written at its end. These check that nothing a run sees changes by it: each
follower's own events decide its branch, a run sees what the batch itself did before it (its own earlier steps,
another run of the same follower), score caps hold across runs of one batch, and the playbook's rules fire from
the actions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from scrm import tags
from scrm.journey_models import JourneyRun
from scrm.models import Activity, Follower
from scrm.playbook.models import ScoreEvent
from tests import journeys_kit as kit

T0 = datetime(2026, 3, 2, 2, 0)
BOOK = """
name: batch
rules:
  - {name: vip_seen, when: {tag_added: vip}, do: [{tag: rule-fired}]}
journeys:
  forms:
    steps:
      - wait: 1h
      - if: {not_happened: form_submitted}
        yes: [{do: [{tag: no-form}]}]
        no: [{do: [{tag: had-form}]}]
  own:
    steps:
      - do: [{tag: vip}]
      - if: {happened: ["tag:vip", "activity:tag_added"]}
        yes: [{do: [{tag: saw-own}]}]
  first:
    steps:
      - wait: 1h
      - do: [{tag: from-first}]
  second:
    steps:
      - wait: 1h
      - if: {tagged: [from-first]}
        yes: [{do: [{tag: saw-first}]}]
  capped:
    steps:
      - wait: 1h
      - do: [{score: 7, cap: once}]
"""


def tagset(app, openid: str) -> set[str]:
    with kit.db(app).sessions() as session:
        fid = session.scalar(select(Follower.id).where(Follower.openid == openid))
        return tags.names(session, fid)


def test_each_follower_of_a_batch_goes_its_own_way(app):
    kit.load(app, BOOK)
    n = 40
    fids = [kit.follower(app, f"o{i}") for i in range(n)]
    for i in range(n):
        kit.start(app, f"o{i}", "forms", T0)
    with kit.db(app).transaction() as session:  # every third follower sent a form after the run began
        session.add_all(Activity(follower_id=fids[i], kind="lead_captured", at=T0 + timedelta(minutes=5), data={})
                        for i in range(0, n, 3))  # fmt: skip
        session.add(Activity(follower_id=fids[1], kind="lead_captured", at=T0 - timedelta(days=1), data={}))  # before
    out = kit.step(app, T0 + timedelta(hours=1))
    assert out.runs == n and out.steps == 3 * n  # one batch: wait, if, the branch's do
    for i in range(n):
        assert ("had-form" if i % 3 == 0 else "no-form") in tagset(app, f"o{i}"), i
        assert kit.executed(app, f"o{i}")[1] == ("1", "no" if i % 3 == 0 else "yes")


def test_a_run_sees_what_its_batch_did_before_it_and_rules_fire(app):
    kit.load(app, BOOK)
    kit.follower(app, "o1")
    kit.start(app, "o1", "own", T0)  # the tag, its timeline entry and the rule's tag are all written at the end
    assert tagset(app, "o1") == {"vip", "rule-fired", "saw-own"}
    assert kit.executed(app, "o1") == [("0", "done"), ("1", "yes"), ("1.yes.0", "done")]
    for name in ("first", "second"):  # two runs of one follower, due together, in one batch
        kit.start(app, "o1", name, T0, key=f"{name}:o1")
    out = kit.step(app, T0 + timedelta(hours=1))
    assert out.runs == 2
    assert {"from-first", "saw-first"} <= tagset(app, "o1")


def test_a_score_cap_holds_across_the_runs_of_one_batch(app):
    kit.load(app, BOOK)
    kit.follower(app, "o1")
    kit.follower(app, "o2")
    for key in ("a", "b", "c"):  # reentry: always
        kit.start(app, "o1", "capped", T0, key=f"capped:o1:{key}")
    kit.start(app, "o2", "capped", T0, key="capped:o2")
    out = kit.step(app, T0 + timedelta(hours=1))
    assert out.runs == 4 and kit.count(app, JourneyRun, JourneyRun.state == "finished") == 4
    with kit.db(app).sessions() as session:
        rows = session.execute(select(ScoreEvent.follower_id, ScoreEvent.points).where(
            ScoreEvent.rule == "journey:capped")).all()  # fmt: skip
    assert sorted(p for _f, p in rows) == [7, 7]  # once per follower, not once per run
    assert len({f for f, _p in rows}) == 2
