"""The applier's promises seen from the app (issue 7): a poison interaction is marked failed with its error (and
rule, when inside one), listed, retried on request, and blocks nobody; the reply and the effects come from the
playbook version (and the follower state) the request decided with; /healthz and /metrics report the backlog.
tests/test_applier.py has the exactly-once, crash and race promises.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from scrm import applier, effects
from scrm.applier import drain
from scrm.ingest import Visit
from scrm.models import Interaction
from tests import applier_kit as kit
from tests.helpers import drain as drain_app
from tests.helpers import post
from wechat.simulate import read_reply


def flask(app, runner, *args: str):
    """`flask <args>` in-process; the app context is pushed as the `flask` command itself pushes it."""
    with app.app_context():
        return runner.invoke(args=list(args))


def test_poison_interaction_is_marked_failed_and_blocks_nobody(app, client, runner, auth_headers, refuse_tags):
    db = app.extensions["welead"].db
    kit.load(db, kit.POISON_BOOK)
    refuse_tags(db, kit.POISON_TAG)
    warm = kit.Script()  # followers and tags that exist before the poison batch
    for o in ("o-warm", "o-other", "o-later"):
        warm.subscribe(o)
    warm.click("o-warm", "PRICING")
    warm.click("o-warm", "ON")
    kit.record(db, warm.events)
    drain(db)

    s, first = warm, len(warm.events)
    s.click("o-other", "PRICING")
    s.text("o-other", "msg before")
    poison = s.text("o-poison", kit.POISON_TEXT)
    s.click("o-poison", "PRICING")  # the poison follower's later event
    s.click("o-later", "ON")  # later events of other followers
    s.click("o-later", "PRICING")
    kit.record(db, s.events[first:])
    report = drain(db)  # one batch: rolled back, then applied one interaction at a time
    assert (report.applied, report.failed) == (5, 1)
    assert kit.pending(db) == 0

    with db.sessions() as session:
        row = session.scalar(select(Interaction).where(Interaction.dedup_key == poison.dedup_key))
        failed = applier.failures(session)
    # The tag is written with the batch, after the rules ran, so the error names no rule (one raising inside a rule
    # is prefixed "rule <name>: ").
    assert row.applied_at is not None and kit.REFUSED in row.apply_error
    assert [(f["id"], f["openid"], f["apply_error"]) for f in failed] == [(row.id, "o-poison", row.apply_error)]
    followers = kit.state(db)["followers"]
    assert followers["o-other"]["tags"] == ["fan", "interest:pricing"]
    assert followers["o-other"]["scores"] == {"engagement": 5 + 10 + 1}
    assert followers["o-later"]["tags"] == ["fan", "interest:pricing", "switch"]
    assert followers["o-poison"]["tags"] == ["interest:pricing"] and followers["o-poison"]["owner"] is None

    listed = client.get("/api/v1/interactions/failed", headers=auth_headers).json["items"]
    assert [(i["id"], i["apply_error"]) for i in listed] == [(row.id, row.apply_error)]
    out = flask(app, runner, "apply", "failed")
    assert out.exit_code == 0 and f"{row.id}\ttext\to-poison\t" in out.output and kit.REFUSED in out.output
    assert "backlog 0  lag 0.000s  failed 1" in flask(app, runner, "apply", "status").output

    out = flask(app, runner, "apply", "retry", str(row.id))
    assert out.exit_code == 0 and f"interaction {row.id} queued again" in out.output
    assert kit.pending(db) == 1 and flask(app, runner, "apply", "retry", str(row.id)).exit_code != 0
    # The retried interaction is applied with the version that decided it, which still has the rule: it fails again.
    assert drain(db).failed == 1 and kit.pending(db) == 0

    # The marketer changes the rule (a tag the database takes) and retries with the active playbook.
    kit.load(db, kit.POISON_BOOK.replace('"wants:{what}"', '"asks:{what}"'))
    url = f"/api/v1/interactions/{row.id}/retry"
    assert client.post(url + "?playbook=nope", headers=auth_headers).status_code in (400, 422)
    assert client.post(url + "?playbook=active", headers=auth_headers).status_code == 202
    assert (drain(db).applied, kit.pending(db)) == (1, 0)
    with db.sessions() as session:
        assert applier.failures(session) == []
    assert client.post(url, headers=auth_headers).status_code == 404  # no longer a failed one


def test_retry_applies_a_failed_interaction_once_the_cause_is_fixed(app, runner):
    """An effect registered for a kind of its own (through the product's registry, removed afterwards) raises
    while its data is broken; after the fix `flask apply retry` applies it, once."""
    db = app.extensions["welead"].db
    broken = [True]
    seen: list[int] = []

    def fragile(visit: Visit) -> None:
        if broken[0]:
            raise ValueError("profile service said no")
        seen.append(visit.interaction_id)

    effects.OA["x-fragile"] = fragile
    try:
        s = kit.Script()
        fragile_event = s.add("x-fragile", "o-frag")
        s.click("o-frag", "ON")
        kit.record(db, s.events)
        assert drain(db).failed == 1
        with db.sessions() as session:
            (failed,) = applier.failures(session)
        assert failed["apply_error"] == "ValueError: profile service said no"  # no rule was firing
        broken[0] = False
        assert flask(app, runner, "apply", "retry", str(failed["id"])).exit_code == 0
        assert (drain(db).applied, seen) == (1, [failed["id"]])
        assert drain(db).applied == 0 and seen == [failed["id"]]
        with db.sessions() as session:
            assert applier.failures(session) == []
            assert session.scalar(select(Interaction.apply_error).where(
                Interaction.dedup_key == fragile_event.dedup_key)) is None  # fmt: skip
    finally:
        del effects.OA["x-fragile"]


# --- 4. 200 concurrent first callbacks of one new openid ----------------------------------------------------------


def version_book(n: int) -> str:
    return f"""
name: v{n}
rules:
  - name: menu-v{n}
    when: {{click: MENU}}
    do: [{{tag: from-v{n}}}, {{reply: "answered by v{n}"}}]
"""


def put_playbook(client, headers, text: str) -> int:
    r = client.put("/api/v1/playbook", data=text, headers={**headers, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.json
    return r.json["version"]


def test_effects_come_from_the_version_that_decided_the_reply(app, client, auth_headers):
    settings_ = app.extensions["welead"].settings
    assert put_playbook(client, auth_headers, version_book(1)) == 1
    first = post(client, "click", apply=False, openid="o-ver", key="MENU", create_time=int(time.time()) - 10)
    assert "answered by v1" in read_reply(first.data, settings_, "oa")
    assert put_playbook(client, auth_headers, version_book(2)) == 2  # loaded before the applier ran
    drain_app(app)
    assert kit.state(app.extensions["welead"].db)["followers"]["o-ver"]["tags"] == ["from-v1"]

    second = post(client, "click", openid="o-ver", key="MENU", create_time=int(time.time()))
    assert "answered by v2" in read_reply(second.data, settings_, "oa")
    assert kit.state(app.extensions["welead"].db)["followers"]["o-ver"]["tags"] == ["from-v1", "from-v2"]
    with app.extensions["welead"].db.sessions() as s:
        rows = s.execute(select(Interaction.playbook_version, Interaction.decision).order_by(Interaction.id)).all()
    assert [(v, d["rules"]) for v, d in rows] == [(1, ["menu-v1"]), (2, ["menu-v2"])]


# --- 8. a reply rule with `if`: decided by the request, honoured by the applier ----------------------------------

IF_BOOK = """
name: vip
rules:
  - name: vip-on
    when: {click: VIP}
    do: [{tag: vip}]
  - name: vip-off
    when: {click: UNVIP}
    do: [{untag: vip}]
  - name: vip-hello
    when: {text: {keywords: [hello]}}
    if: {tagged: [vip]}
    do: [{reply: "Hello, VIP"}, {tag: told-vip}]
"""


def test_reply_rule_condition_is_judged_once_by_the_request(app, client, auth_headers):
    """The request sees the follower as of the last applied event; a change recorded before it but not applied
    yet does not change what the follower was told, and the applier fires the reply rule iff the request did."""
    db, settings_ = app.extensions["welead"].db, app.extensions["welead"].settings
    put_playbook(client, auth_headers, IF_BOOK)
    t = int(time.time()) - 100
    post(client, "click", openid="o-was-vip", key="VIP", create_time=t)  # applied: a VIP

    post(client, "click", apply=False, openid="o-was-vip", key="UNVIP", create_time=t + 1)  # recorded only
    told = post(client, "text", apply=False, openid="o-was-vip", content="hello", create_time=t + 2)
    post(client, "click", apply=False, openid="o-not-vip", key="VIP", create_time=t + 3)  # recorded only
    untold = post(client, "text", apply=False, openid="o-not-vip", content="hello", create_time=t + 4)
    assert "Hello, VIP" in read_reply(told.data, settings_, "oa")
    assert untold.data == b"success"
    drain_app(app)

    followers = kit.state(db)["followers"]
    assert followers["o-was-vip"]["tags"] == ["told-vip"]  # no longer a VIP, but told as one: recorded as told
    assert followers["o-not-vip"]["tags"] == ["vip"]  # a VIP now, but not told: the rule did not fire
    with db.sessions() as s:
        decided = s.execute(select(Interaction.openid, Interaction.decision).where(Interaction.kind == "text")).all()
    assert dict(decided) == {"o-was-vip": {"rules": ["vip-hello"], "reply": {"text": "Hello, VIP"}}, "o-not-vip": None}


# --- 9. operability: /healthz and /metrics --------------------------------------------------------------------------


def metric(text: str, name: str) -> float:
    (line,) = [x for x in text.splitlines() if x.startswith(name + " ") or x.startswith(name + "{")]
    return float(line.rsplit(" ", 1)[1])


def test_healthz_and_metrics_report_the_backlog(app, client):
    kit.load(app.extensions["welead"].db)
    post(client, "subscribe", apply=False, openid="o-metrics")
    post(client, "text", apply=False, openid="o-metrics", content="msg 1")
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json["backlog"] == 2 and health.json["lag_seconds"] >= 0
    text = client.get("/metrics").get_data(as_text=True)
    assert "welead_callbacks_total{" in text and "welead_callback_seconds_bucket{" in text
    assert metric(text, "welead_apply_backlog") == 2 and "welead_outbox_depth " in text

    applied_before = metric(text, 'welead_applied_total{outcome="applied"}') if "welead_applied_total{" in text else 0
    assert drain_app(app).applied == 2
    assert client.get("/healthz").json["backlog"] == 0
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "welead_apply_backlog") == 0
    assert metric(text, 'welead_applied_total{outcome="applied"}') == applied_before + 2
    assert metric(text, "welead_outbox_depth") == 1  # the profile fetch, not run yet
