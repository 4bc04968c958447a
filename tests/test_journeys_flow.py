"""Journey grammar at work, on chosen clocks: yes/no branches, event waits with timeouts, waits until a local time,
the goal, exits, re-entry, entry by segment, quiet hours, a runner stopped for an hour, and the per-step numbers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from scrm import guards, journey_entry, journeys, segments
from scrm.journey_models import JourneyRun
from scrm.models import Activity, Follower
from scrm.playbook import PlaybookError, parse
from tests import journeys_kit as kit

T0 = datetime(2026, 3, 2, 2, 0)  # 10:00 in Asia/Shanghai
BOOK = """
name: flow
rules:
  - {name: noop, when: {click: NOOP}, do: [{tag: noop}]}
journeys:
  nurture:
    reentry: {days: 7}
    goal: {stage_at_least: sql}
    exit_on: [unsubscribed, opted_out]
    steps:
      - do: [{send_template: booth_welcome}]
      - wait: {event: form_submitted, timeout: 1d}
      - if: {not_happened: form_submitted}
        yes:
          - do: [{send_template: booth_reminder}]
      - wait: 3d
      - if: {score: {max: 29.99}}
        yes: [{do: [{tag: cold}]}]
        no: [{do: [{notify_owner: "booth visitor warmed up"}]}]
  morning:
    reentry: once
    steps:
      - wait: {until: "09:30"}
      - do: [{send_template: morning}]
"""


@pytest.fixture
def book(app):
    kit.load(app, BOOK)
    return app


def test_the_no_form_branch_then_cold(book):
    kit.follower(book, "o1")
    kit.start(book, "o1", "nurture", T0)
    assert kit.templates(book, "o1") == ["booth_welcome"]
    assert kit.step(book, T0 + timedelta(hours=2)).steps == 0  # polled: no form yet, before the timeout
    kit.step(book, T0 + timedelta(days=1, minutes=1))
    assert kit.templates(book, "o1") == ["booth_welcome", "booth_reminder"]
    kit.step(book, T0 + timedelta(days=4, minutes=2))
    assert kit.executed(book, "o1") == [("0", "done"), ("1", "timeout"), ("2", "yes"), ("2.yes.0", "done"),
                                        ("3", "done"), ("4", "yes"), ("4.yes.0", "done")]  # fmt: skip
    run = kit.run_of(book, "o1")
    assert (run.state, run.reason) == ("finished", "completed")


def test_a_form_ends_the_wait_early_and_skips_the_reminder(book):
    fid = kit.follower(book, "o2")
    kit.start(book, "o2", "nurture", T0)
    with kit.db(book).transaction() as session:
        session.add(Activity(follower_id=fid, kind="lead_captured", at=T0 + timedelta(hours=3), data={}))  # a form
    kit.step(book, T0 + timedelta(hours=3, minutes=1, seconds=1))  # the next poll sees it
    assert kit.executed(book, "o2")[1:3] == [("1", "happened"), ("2", "no")]
    assert kit.templates(book, "o2") == ["booth_welcome"]
    run = kit.run_of(book, "o2")
    assert run.position == "3" and run.due_at == T0 + timedelta(hours=3, minutes=1, seconds=1) + timedelta(days=3)


def test_goal_converts_and_exits_end_runs(book):
    for openid in ("o-goal", "o-unsub", "o-out"):
        kit.follower(book, openid)
        kit.start(book, openid, "nurture", T0)
    with kit.db(book).transaction() as session:
        session.execute(update(Follower).where(Follower.openid == "o-goal").values(stage="sql"))
        session.execute(
            update(Follower).where(Follower.openid == "o-unsub").values(subscribed=False, unsubscribed_at=T0)
        )
    kit.tag(book, "o-out", "opted-out")
    kit.step(book, T0 + timedelta(days=1, minutes=1))
    got = {o: (kit.run_of(book, o).state, kit.run_of(book, o).reason) for o in ("o-goal", "o-unsub", "o-out")}
    assert got == {"o-goal": ("converted", "goal"), "o-unsub": ("exited", "unsubscribed"),
                   "o-out": ("exited", "opted_out")}  # fmt: skip
    assert kit.templates(book) == ["booth_welcome"] * 3


def test_reentry_once_and_per_days(book):
    kit.follower(book, "o-re")
    kit.start(book, "o-re", "nurture", T0, key="a")
    assert kit.start(book, "o-re", "nurture", T0 + timedelta(days=2), key="b").state == "refused"
    assert kit.start(book, "o-re", "nurture", T0 + timedelta(days=8), key="c").state == "running"
    kit.start(book, "o-re", "morning", T0, key="m1")
    assert kit.start(book, "o-re", "morning", T0 + timedelta(days=30), key="m2").state == "refused"
    assert kit.count(book, JourneyRun) == 3


def test_wait_until_a_local_time_and_quiet_hours(book):
    kit.follower(book, "o-am")
    kit.start(book, "o-am", "morning", T0)  # 10:00 local: the next 09:30 is tomorrow's
    run = kit.run_of(book, "o-am")
    assert run.due_at == datetime(2026, 3, 3, 1, 30)
    quiet = guards.SendRules.load(environ={}, overrides={"quiet_hours": "09:00-10:00"})
    kit.step(book, run.due_at + timedelta(minutes=5), rules=quiet)  # the send step is due in quiet hours
    assert kit.templates(book, "o-am") == []
    assert kit.run_of(book, "o-am").due_at == datetime(2026, 3, 3, 2, 0)  # 10:00 local: they end
    kit.step(book, datetime(2026, 3, 3, 2, 0), rules=quiet)
    assert kit.templates(book, "o-am") == ["morning"]


def test_a_runner_stopped_for_an_hour_runs_late_steps_in_order(app):
    kit.load(app, BOOK.replace("morning:\n    reentry: once", "ticks:\n    reentry: always").replace(
        '      - wait: {until: "09:30"}\n      - do: [{send_template: morning}]',
        "      - do: [{tag: t1}]\n      - wait: 10m\n      - do: [{tag: t2}]\n      - wait: 10m\n"
        "      - do: [{tag: t3}]\n      - wait: 10m\n      - do: [{tag: t4}]"))  # fmt: skip
    for i in range(20):
        kit.follower(app, f"o{i}")
        kit.start(app, f"o{i}", "ticks", T0 + timedelta(seconds=i))
    out = kit.step(app, T0 + timedelta(hours=1))  # nothing ran for an hour: every due step, none skipped
    assert out.runs == 20 and out.steps == 20 * 6
    with kit.db(app).sessions() as session:
        added = session.execute(
            Activity.__table__.select().where(Activity.kind == "tag_added").order_by(Activity.id)
        ).all()
    order: dict[int, list[str]] = {}
    for row in added:
        order.setdefault(row.follower_id, []).append(row.data["tag"])
    assert all(v == ["t1", "t2", "t3", "t4"] for v in order.values()) and len(order) == 20
    assert {kit.run_of(app, f"o{i}").state for i in range(20)} == {"finished"}


def test_entry_by_segment_and_the_numbers(app, client, auth_headers, runner):
    kit.load(app, BOOK.replace("    reentry: {days: 7}\n", "    entry: {segment: booth}\n    reentry: once\n"))
    for i in range(6):
        kit.follower(app, f"s{i}", "booth" if i < 4 else "other")
    with kit.db(app).transaction() as session:
        segments.save(session, "booth", {"tags_all": ["booth"]})
        assert journey_entry.enter_segments(session, now=T0) == 4
        assert journey_entry.enter_segments(session, now=T0 + timedelta(days=9)) == 0  # once
    assert kit.count(app, Activity, Activity.kind == "journey_started") == 4  # on each member's timeline
    timeline = client.get("/api/v1/followers/s1/timeline", headers=auth_headers).json
    started = [
        e for e in (timeline["items"] if isinstance(timeline, dict) else timeline) if e["kind"] == "journey_started"
    ]
    assert started[0]["data"]["journey"] == "nurture" and started[0]["data"]["segment"] == "booth"
    kit.step(app, T0)
    with kit.db(app).transaction() as session:
        session.execute(update(Follower).where(Follower.openid == "s0").values(stage="sql"))
    kit.step(app, T0 + timedelta(days=1, minutes=1))
    r = client.get("/api/v1/journeys/nurture", headers=auth_headers)
    assert r.status_code == 200, r.json
    (v1,) = r.json["versions"]
    assert v1["runs"]["entered"] == 4 and v1["runs"]["converted"] == 1 and v1["conversion"] == 0.25
    steps = {s["path"]: s for s in v1["steps"]}
    assert steps["0"]["entered"] == 4 and steps["0"]["ways"] == {"done": 4}
    assert steps["1"]["ways"] == {"timeout": 3} and steps["1"]["converted_here"] == 1
    assert steps["2"]["ways"] == {"yes": 3} and steps["4.no.0"]["entered"] == 0
    assert steps["3"]["waiting"] == 3 and steps["3"]["entered"] == 3
    listed = client.get("/api/v1/journeys", headers=auth_headers).json["items"]
    assert {i["journey"]: i["runs"]["entered"] for i in listed} == {"nurture": 4, "morning": 0}
    assert client.get("/api/v1/journeys/nope", headers=auth_headers).status_code == 404
    text = runner.invoke(args=["journey", "status", "nurture"]).output
    assert "entered 4" in text and "converted 1 (25.0%)" in text and "timeout=3" in text


def test_stop_and_migrate_old_versions(app, client, auth_headers, runner):
    kit.load(app, BOOK)
    for o in ("m1", "m2", "m3"):
        kit.follower(app, o)
        kit.start(app, o, "nurture", T0)
    kit.load(app, BOOK.replace("booth_reminder", "booth_reminder_v2"))
    kit.follower(app, "m4")
    kit.start(app, "m4", "nurture", T0)
    assert [kit.run_of(app, o).version for o in ("m1", "m4")] == [1, 2]
    r = client.post("/api/v1/journeys/nurture/migrate", json={"from": 1, "to": 2}, headers=auth_headers)
    assert r.status_code == 200 and r.json["moved"] == 3, r.json
    kit.step(app, T0 + timedelta(days=1, minutes=1))
    assert kit.templates(app, "m1") == ["booth_welcome", "booth_reminder_v2"]
    out = runner.invoke(args=["journey", "stop", "nurture", "--version", "2"]).output
    assert "stopped 4 runs" in out
    assert {kit.run_of(app, o).state for o in ("m1", "m2", "m3", "m4")} == {"stopped"}
    assert client.post("/api/v1/journeys/nurture/stop", json={"version": 9}, headers=auth_headers).status_code == 404


@pytest.mark.parametrize(
    ("yaml", "error"),
    [
        ("steps: [{wait: {event: form_submitted}}]", "an event wait needs a timeout"),
        ("steps: [{wait: {for: 1d, until: '10:00'}}]", "a wait has one of"),
        ("steps: [{wait: {until: '25:00'}}]", "until"),
        ("steps: [{if: {tagged: x}, yes: [{wait: 2x}]}]", "steps[0].yes[0].wait"),
        ("steps: [{yes: [{do: [{tag: x}]}]}]", "yes/no branches need an if"),
        ("steps: [{if: {happened: nonsense}, yes: [{do: [{tag: x}]}]}]", "happened"),
        ("{reentry: sometimes, steps: [{wait: 1d}]}", "reentry"),
        ("{goal: {stage: [nowhere]}, steps: [{wait: 1d}]}", "goal.stage"),
        ("steps: [{if: {tagged: x}, no: [{do: [{reply: hi}]}]}]", "no[0].do[0].reply: a journey step cannot reply"),
    ],
)
def test_bad_journeys_are_refused_at_load(yaml, error):
    text = "journeys:\n  j: " + (yaml if yaml.startswith("{") else "{" + yaml + "}")
    with pytest.raises(PlaybookError) as exc:
        parse(text)
    assert any(error in e for e in exc.value.errors), exc.value.errors


def test_old_journey_yaml_still_loads():
    book = parse("journeys:\n  j:\n    exit_if: {tagged: [x]}\n    steps:\n      - wait: 1d\n"
                 "      - if: {not_tagged: [y]}\n        do: [{tag: z}]\n")  # fmt: skip
    j = book.journeys["j"]
    assert j.steps[0].wait.for_ == 86400 and j.steps[1].do[0].tag == ["z"] and j.reentry == "always"


def test_the_demo_booth_nurture_journey_loads():
    from foundation.config import ROOT

    book = parse((ROOT / "playbooks" / "demo.yml").read_text())
    assert "booth_nurture" in book.journeys and journeys.RUNNING == "running"


HANDED = """
name: handed
journeys:
  nurture:
    exit_on: [handed_over]
    steps:
      - wait: 1d
      - do: [{tag: nurtured}]
"""


def test_a_chatbot_handoff_after_the_start_is_a_handover_exit(app):
    kit.load(app, HANDED)
    ids = {openid: kit.follower(app, openid) for openid in ("o-bot", "o-before", "o-none")}
    with kit.db(app).transaction() as session:  # o-before asked for a human the day before the run began
        session.add(Activity(follower_id=ids["o-before"], kind="handoff", at=T0 - timedelta(days=1), data={}))
    for openid in ids:
        kit.start(app, openid, "nurture", T0)
    with kit.db(app).transaction() as session:
        session.add(Activity(follower_id=ids["o-bot"], kind="handoff", at=T0 + timedelta(hours=2), data={}))
    kit.step(app, T0 + timedelta(days=1, minutes=1))
    got = {o: (kit.run_of(app, o).state, kit.run_of(app, o).reason) for o in ids}
    assert got == {"o-bot": ("exited", "handed_over"), "o-before": ("finished", "completed"),
                   "o-none": ("finished", "completed")}  # fmt: skip
