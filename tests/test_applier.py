"""The applier's promises (issue 7, "Bad input and faults" and "Tests"), against the real embedded Redis and the
test database (SQLite, or PostgreSQL with DATABASE_URL):

- exactly once: a `flask apply` process SIGKILLed mid-work and restarted leaves every effect once, the same as
  applying the events one by one; any interleaving of batch sizes and crashes gives the same followers;
- a batch rolled back (a poison interaction in it, a transient database error) is retried and keeps new tags;
- 200 concurrent first callbacks of one new openid make one follower and one subscribe effect;
- two appliers racing apply everything once, in each follower's order, within the caps;
- Redis down: answered in time, applied anyway, the outbox row waits for Redis;
(tests/test_applier_ops.py: poison interactions, retries, playbook versions, /healthz and /metrics.)

"Exactly once" is judged against a reference database that received the same events and applied them one
interaction per transaction (`apply_batch(db, limit=1)`): tests/applier_kit.py reads both into comparable state.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from foundation.db import Database
from scrm.applier import APPLIER_NAME, _apply, _claim, apply_batch, drain
from scrm.models import Follower, Interaction, Outbox
from scrm.playbook.models import ScoreEvent
from tasks import applier as applier_process
from tasks.worker import run_worker
from tests import applier_kit as kit
from tests.conftest import ENV_VARS
from tests.helpers import FlaskProcesses, pending_outbox, post, running_url
from tests.helpers import drain as drain_app
from wechat.simulate import build_callback, callback_path

PG = os.environ.get("DATABASE_URL", "").startswith("postgresql")


@pytest.fixture
def redis_url(killable_redis):
    """A Redis of this module's own, so the outage test can stop it; running and empty for every test."""
    return running_url(killable_redis)


@pytest.fixture
def dbs(database_template, tmp_path):
    found = kit.Databases(database_template, tmp_path)
    yield found
    found.close()


def applied_like_reference(db: Database, reference: Database) -> None:
    """`db` holds the same followers, score events, timeline entries, outbox rows and applied marks as
    `reference`; compared follower by follower first, so a failure names who differs."""
    got, want = kit.state(db), kit.state(reference)
    assert sorted(got["followers"]) == sorted(want["followers"])
    for openid, follower in want["followers"].items():
        assert got["followers"][openid] == follower, openid
    assert got == want


def reference_of(dbs: kit.Databases, script: kit.Script, book: str | None = None) -> Database:
    """The same events applied one interaction per transaction, in a database of their own."""
    ref = dbs.fresh("reference")
    kit.load(ref, book)
    kit.record(ref, script.events)
    drain(ref, limit=1)
    assert kit.pending(ref) == 0
    return ref


def busy_script(followers: int, rounds: int) -> kit.Script:
    """Every rule of kit.BOOK, for each follower: follow via a rep code, clicks (capped, and a switch toggled
    both ways), demo requests that cross the hot threshold and reach mql, chat, an unfollow and a re-follow."""
    s = kit.Script()
    for r in range(rounds):
        for f in range(followers):
            o = f"o{f}"
            s.subscribe(o, scene=f"rep:{f % 5}") if r % 4 == 0 else s.click(o, "PRICING")
            s.click(o, "ON" if (r + f) % 3 else "OFF")
            s.text(o, f"demo p{(r + f) % 4}" if r % 2 else f"msg {r}")
            if r == rounds // 2 and f % 3 == 0:
                s.unsubscribe(o)
    return s


# --- 1. exactly once: the applier process SIGKILLed mid-work ------------------------------------------------------


class ApplierProcess(FlaskProcesses):
    """`flask --app wsgi apply` as its own process, on this test's database and Redis."""

    def __init__(self, database_url: str, redis_url: str, log_dir, batch: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and not k.startswith("WELEAD_")}
        env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
        super().__init__(env, log_dir, "applier", "apply", "--batch", str(batch))


def test_sigkilled_applier_applies_every_effect_exactly_once(dbs, redis_url, tmp_path):
    """Killed twice after batches started committing, restarted each time: the state equals one-by-one
    application, and at each kill the applied count was a whole number of batches (the batch that was open
    when the process died left nothing behind)."""
    script, batch = busy_script(followers=30, rounds=10), 10
    db = dbs.fresh("subject")
    kit.load(db)
    kit.record(db, script.events)
    total = len(script.events)
    appliers = ApplierProcess(db.url, redis_url, tmp_path, batch)
    try:
        for _ in range(2):
            before = kit.pending(db)
            proc = appliers.start()
            kit.wait_until(lambda b=before: kit.pending(db) < b, 30, "the applier made no progress", 0.002)
            proc.kill()
            proc.wait(5)
            left = kit.pending(db)
            assert 0 < left < before, "killed too late to be mid-work: make the script longer"
            assert (total - left) % batch == 0, "a batch was applied in part"
        appliers.start()
        kit.wait_until(lambda: kit.pending(db) == 0, 60, "the backlog was not drained", 0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- applier logs ---\n{appliers.logs()}") from None
    finally:
        appliers.stop()
    applied_like_reference(db, reference_of(dbs, script))


# --- 2. property: batch sizes and crashes in any order -----------------------------------------------------------

OPENIDS = ("oa", "ob", "oc")
_STEPS = st.sampled_from([
    ("subscribe", None), ("subscribe", "rep:1"), ("subscribe", "rep:2"), ("scan", "rep:3"), ("unsubscribe", None),
    ("click", "PRICING"), ("click", "ON"), ("click", "OFF"), ("text", "demo x"), ("text", "demo y"), ("text", "msg"),
])  # fmt: skip
events_strategy = st.lists(st.tuples(st.sampled_from(OPENIDS), _STEPS), min_size=1, max_size=24)
# (interactions per batch, crash before commit?)
schedule_strategy = st.lists(st.tuples(st.integers(1, 9), st.booleans()), min_size=1, max_size=12)


class Crash(Exception):
    """The applier process dies between applying a batch and committing it."""


def script_of(events: list[tuple[str, tuple[str, str | None]]]) -> kit.Script:
    s = kit.Script()
    for openid, (kind, arg) in events:
        if kind in ("subscribe", "unsubscribe"):
            getattr(s, kind)(openid, *([arg] if arg else []))
        else:
            getattr(s, kind)(openid, arg)
    return s


def crash_mid_batch(db: Database, limit: int) -> None:
    """A batch claimed and applied in full, then the process dies before COMMIT: the transaction rolls back."""
    with pytest.raises(Crash), db.transaction() as session:
        _apply(session, _claim(session, limit))
        raise Crash


@settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events_strategy, schedule=schedule_strategy)
def test_any_batches_and_crashes_equal_one_by_one(dbs, events, schedule):
    """A crash is a rollback followed by a new process: a new `Database` (nothing the dead process held in
    memory survives), as a SIGKILLed applier restarted by its supervisor would be."""
    script = script_of(events)
    reference = reference_of(dbs, script)
    db = dbs.fresh("subject")
    kit.load(db)
    kit.record(db, script.events)
    for limit, crash in schedule:
        if crash:
            crash_mid_batch(db, limit)
            db.dispose()
            db = Database(db.url)
        else:
            apply_batch(db, limit)
    drain(db, limit=schedule[-1][0])
    applied_like_reference(db, reference)
    db.dispose()


@pytest.mark.parametrize("rollback", ["poison in the batch", "transient database error"])
def test_a_rolled_back_batch_retried_in_process_keeps_new_tags(dbs, rollback, refuse_tags):
    """The applier retries a rolled-back batch in the same process in two cases: a poison interaction (the batch
    is applied again one interaction at a time) and a transient database error (serve() backs off and retries).
    Tags first created in the rolled-back transaction must still be added on the retry: scrm.tags remembers tag
    names per engine, and must not remember one from a transaction that did not commit."""
    s = kit.Script()
    s.subscribe("o-new", scene="rep:1")  # tags fan (new): created, then rolled back
    s.click("o-new", "PRICING")  # interest:pricing (new)
    if rollback == "poison in the batch":
        s.text("o-poison", kit.POISON_TEXT)
    db = dbs.fresh("subject")
    kit.load(db, kit.POISON_BOOK)
    refuse_tags(db, kit.POISON_TAG)
    kit.record(db, s.events)
    if rollback == "poison in the batch":
        assert drain(db).failed == 1
    else:
        with pytest.raises(OperationalError), db.transaction() as session:
            _apply(session, _claim(session, 10))
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        drain(db)
    assert kit.state(db)["followers"]["o-new"]["tags"] == ["fan", "interest:pricing"]


# --- 3. a poison interaction --------------------------------------------------------------------------------------


# The rule tags what the follower asks for; the database refuses that one tag (kit.refuse_tags), so applying
# "take poison" raises inside the rule, on both databases.
def test_200_concurrent_first_callbacks_of_one_new_openid(app, live):
    """The same subscribe delivered 200 times and 200 distinct texts, all at once over real HTTP: one follower,
    one subscribe interaction and effect (one `cap: once` award, one profile.fetch row), 200 texts applied in id
    order."""
    svc = app.extensions["welead"]
    kit.load(svc.db)
    openid, now = "oConcurrent200", int(time.time())
    subscribe = build_callback("subscribe", svc.settings, openid=openid, create_time=now)
    texts = [build_callback("text", svc.settings, openid=openid, content=f"msg {i}") for i in range(200)]
    url = live + callback_path("text")

    def deliver(callback) -> tuple[int, bytes]:
        query, body = callback
        r = requests.post(url, params=query, data=body, timeout=10)
        return r.status_code, r.content

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(deliver, [subscribe] * 200 + texts))
    assert Counter(answers) == {(200, b"success"): 400}
    drain_app(app)
    assert kit.pending(svc.db) == 0

    with svc.db.sessions() as s:
        kinds = Counter(s.scalars(select(Interaction.kind).where(Interaction.applied_at.is_not(None))))
        assert kinds == {"subscribe": 1, "text": 200}
        assert s.scalar(select(Interaction.id).where(Interaction.apply_error.is_not(None))) is None
        assert list(s.scalars(select(Follower.openid))) == [openid]
        rules = Counter(s.scalars(select(ScoreEvent.rule)))
        assert rules == {"welcome": 1, "chat": 200}
        assert Counter(s.scalars(select(Outbox.task))) == {"profile.fetch": 1, "journey.start": 1}  # mql once
        chat = list(s.scalars(select(ScoreEvent.interaction_id).where(ScoreEvent.rule == "chat").order_by("id")))
    assert chat == sorted(chat) and len(set(chat)) == 200
    follower = kit.state(svc.db)["followers"][openid]
    assert follower["subscribed"] and follower["scores"] == {"engagement": 205} and "fan" in follower["tags"]


# --- 5. two appliers racing ----------------------------------------------------------------------------------------


def racing_script(followers: int, per_follower: int) -> tuple[kit.Script, dict[str, dict]]:
    """Interleaved events of many followers, and what each follower must end with (computed here, not by the
    product): `welcome` once, `pricing` 10 a click up to 30, `chat` 1 a message, the switch as the last toggle."""
    s, want = kit.Script(), {}
    for f in range(followers):
        want[f"r{f}"] = {"subscribes": 0, "pricing": 0, "msgs": 0, "switch": None, "events": 0}
    for i in range(per_follower):
        for f in range(followers):
            o, w = f"r{f}", want[f"r{f}"]
            step = (i * 7 + f * 3) % 5
            if step == 0 or i == 0:
                s.subscribe(o)
                w["subscribes"] += 1
            elif step == 1:
                s.click(o, "PRICING")
                w["pricing"] += 1
            elif step in (2, 3):
                s.click(o, "ON" if step == 2 else "OFF")
                w["switch"] = step == 2
            else:
                s.text(o, f"msg {i}")
                w["msgs"] += 1
            w["events"] += 1
    return s, want


def test_two_appliers_racing_apply_once_in_order_within_caps(dbs):
    """Two appliers (each its own `Database`, named as applier processes are, so on PostgreSQL they count each
    other and split the follower partitions) drain thousands of interactions together."""
    followers, per_follower = (150, 14) if PG else (200, 15)
    script, want = racing_script(followers, per_follower)
    db = dbs.fresh("subject")
    kit.load(db)
    kit.record(db, script.events)
    start, done = threading.Barrier(2), Counter()
    errors: list[BaseException] = []

    def run(name: str) -> None:
        mine = Database(db.url, name=APPLIER_NAME)
        try:
            start.wait()
            while True:
                report = apply_batch(mine, 40)
                done[name] += report.applied + report.failed
                if not (report.applied or report.failed):
                    if kit.pending(mine) == 0:
                        return
                    time.sleep(0.005)  # the peer holds what is left
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            mine.dispose()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sum(done.values()) == len(script.events) and kit.pending(db) == 0
    if PG:
        assert min(done.values()) > 0, f"one applier did everything: {dict(done)}"

    got = kit.state(db)
    assert all(applied and error is None for _, applied, error in got["interactions"])
    order = kit.timeline_order(db)
    for openid, w in want.items():
        f = got["followers"][openid]
        points = 5 + min(10 * w["pricing"], 30) + w["msgs"]
        assert f["scores"] == {"engagement": points}, openid
        awards = Counter(rule for _, rule, _, _ in f["score_events"])
        assert (awards["welcome"], awards["pricing"]) == (1, min(w["pricing"], 3)), openid
        assert ("switch" in f["tags"]) == bool(w["switch"]), openid
        assert ("hot" in f["tags"]) == (points >= 40), openid
        assert order[openid] == sorted(order[openid]), f"{openid}: timeline written out of id order"


# --- 6. Redis down ------------------------------------------------------------------------------------------------


def test_redis_down_callback_answered_applied_and_outbox_waits(app, client, live, killable_redis):
    svc = app.extensions["welead"]
    kit.load(svc.db)
    killable_redis.kill()
    started = time.monotonic()
    r = post(client, "subscribe", apply=False, openid="o-redis-down")
    assert r.status_code == 200 and time.monotonic() - started < 2.0
    assert kit.pending(svc.db) == 1

    stop = threading.Event()

    def serve() -> None:
        with app.app_context():
            applier_process.serve(svc, stop.is_set, poll=0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        kit.wait_until(lambda: kit.pending(svc.db) == 0, 10, "the applier did not apply with Redis down")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    follower = kit.state(svc.db)["followers"]["o-redis-down"]
    assert follower["subscribed"] and follower["tags"] == ["fan"]
    assert pending_outbox(app) == 1  # profile.fetch: committed, not announced

    killable_redis.start()
    run_worker(app, burst=True)  # sweeps the outbox on start, then runs the job
    assert pending_outbox(app) == 0


# --- 7. the playbook version that decided the reply -------------------------------------------------------------
