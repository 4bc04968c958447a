# ruff: noqa: RUF001  (follower text: full-width punctuation on purpose)
"""WeChat's customer-service session events and the bot's handoff, through real callbacks: a rep closing the session
(kf_close_session) ends the handoff and the bot answers again; retries change nothing twice; a close for a follower
not in handoff is harmless; taking or passing on a session keeps the bot quiet; Redis down; the simulator and the
timeline."""

from __future__ import annotations

import time

import pytest
import redis

from tests.helpers import drain, post
from tests.test_chatbot_flow import FAQ, content, decision, is_transfer, rep_owner, say

KF = "kf2001@gh_welead"


@pytest.fixture
def bot(runner):
    assert runner.invoke(args=["faq", "load", str(FAQ)]).exit_code == 0
    return runner


def kf(client, kind: str, openid: str, **options) -> str:
    r = post(client, kind, openid=openid, **options)
    assert r.status_code == 200
    return r.get_data(as_text=True)


def timeline(client, headers, openid: str) -> list[dict]:
    r = client.get(f"/api/v1/followers/{openid}/timeline", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def conversation(client, headers, openid: str) -> dict:
    return client.get(f"/api/v1/conversations/{openid}", headers=headers).json


def test_a_closed_session_ends_the_handoff_and_the_bot_answers_again(client, app, bot, auth_headers):
    rep_owner(app, "o-kf")
    assert is_transfer(say(client, "o-kf", "转人工"))
    assert is_transfer(say(client, "o-kf", "你们怎么收费的？"))  # a human has it: the bot stays quiet
    assert kf(client, "kf-close", "o-kf", kf_account=KF) == "success"
    assert decision(app, "o-kf")["bot"] == {"kind": "kf_close_session", "kf_account": KF, "ended": "handoff"}
    assert conversation(client, auth_headers, "o-kf")["flow"] is None
    assert "1980" in content(say(client, "o-kf", "你们怎么收费的？"))
    drain(app)
    entries = timeline(client, auth_headers, "o-kf")
    (close,) = [e for e in entries if e["kind"] == "kf_close_session"]  # the event, as WeChat named it
    assert close["data"]["KfAccount"] == KF
    (ended,) = [e for e in entries if e["kind"] == "handoff_ended"]  # what it did
    assert ended["data"] == {"kf_account": KF, "by": "kf_close_session"}


def test_a_retried_close_does_not_end_a_handoff_that_started_after_it(client, app, bot, auth_headers):
    created = int(time.time()) - 5
    assert is_transfer(say(client, "o-dup", "人工"))
    kf(client, "kf-close", "o-dup", kf_account=KF, create_time=created)
    assert is_transfer(say(client, "o-dup", "转人工"))  # a new handoff
    for _ in range(2):  # WeChat's retries of the first close: same sender, CreateTime and Event
        kf(client, "kf-close", "o-dup", kf_account=KF, create_time=created)
    assert is_transfer(say(client, "o-dup", "你们怎么收费的？"))
    drain(app)
    kinds = [e["kind"] for e in timeline(client, auth_headers, "o-dup")]
    assert kinds.count("kf_close_session") == 1 and kinds.count("handoff_ended") == 1


def test_a_close_for_a_follower_not_in_handoff_is_harmless(client, app, bot, auth_headers):
    say(client, "o-free", "火星上能用吗")  # one miss
    assert kf(client, "kf-close", "o-free") == "success"
    assert decision(app, "o-free")["bot"]["ended"] is None
    assert conversation(client, auth_headers, "o-free")["misses"] == 1  # nothing else of the state touched
    assert "1980" in content(say(client, "o-free", "你们怎么收费的？"))
    drain(app)
    assert "handoff_ended" not in [e["kind"] for e in timeline(client, auth_headers, "o-free")]


def test_a_session_a_rep_takes_keeps_the_bot_quiet_and_a_switch_renews_it(client, app, bot, auth_headers):
    assert kf(client, "kf-create", "o-take", kf_account=KF) == "success"
    first = decision(app, "o-take")["bot"]
    assert first["started"] is True and first["kf_account"] == KF
    assert is_transfer(say(client, "o-take", "你们怎么收费的？"))
    kf(client, "kf-switch", "o-take", kf_account=KF, to_kf_account="kf2002@gh_welead")
    switched = decision(app, "o-take")["bot"]
    assert switched["kf_account"] == "kf2002@gh_welead" and switched["started"] is False
    assert switched["until"] >= first["until"]
    drain(app)
    handoffs = [e for e in timeline(client, auth_headers, "o-take") if e["kind"] == "handoff"]
    assert len(handoffs) == 1 and handoffs[0]["data"]["why"] == "kf_session"  # the switch started nothing new
    kf(client, "kf-close", "o-take", kf_account="kf2002@gh_welead")
    assert "1980" in content(say(client, "o-take", "你们怎么收费的？"))


def test_redis_down_a_close_is_recorded_and_answered(client, app, bot):
    svc = app.extensions["welead"]
    svc.__dict__["redis"] = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2)
    assert kf(client, "kf-close", "o-down") == "success"
    assert decision(app, "o-down")["bot"]["stateless"] is True


def test_cli_simulate_kf_close(runner, live, client, app, bot, auth_headers):
    assert is_transfer(say(client, "o-cli", "人工"))
    result = runner.invoke(args=["wechat", "simulate", "kf-close", "--openid", "o-cli", "--url", live])
    assert result.exit_code == 0, result.output
    assert "<- 200" in result.output and "success" in result.output
    assert "1980" in content(say(client, "o-cli", "你们怎么收费的？"))


@pytest.mark.parametrize("how", ["api", "cli", "cancel_word"])
def test_every_way_a_rep_or_follower_ends_a_handoff_is_on_the_timeline(client, app, bot, runner, auth_headers, how):
    rep_owner(app, "o-end")
    assert is_transfer(say(client, "o-end", "人工"))
    if how == "api":
        assert client.delete("/api/v1/conversations/o-end", headers=auth_headers).json["ended"] is True
    elif how == "cli":
        assert "ended" in runner.invoke(args=["faq", "end", "o-end"]).output
    else:
        assert "结束" in content(say(client, "o-end", "退出"))
    drain(app)
    (ended,) = [e for e in timeline(client, auth_headers, "o-end") if e["kind"] == "handoff_ended"]
    assert ended["data"]["by"] == how
    assert client.delete("/api/v1/conversations/o-end", headers=auth_headers).json["ended"] is False
    assert len([e for e in timeline(client, auth_headers, "o-end") if e["kind"] == "handoff_ended"]) == 1
