# ruff: noqa: RUF001  (follower text: full-width punctuation and letters on purpose)
"""The chatbot through real callbacks: the reply order, greetings, handoff and its quiet, cancel words, misses and
their streak, retries of one MsgId, the applier's effects (misses, faq_answered, tags/points, handoff notices)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from scrm.faq_models import FaqMiss
from scrm.models import Follower, Interaction, Outbox, Rep
from tests.helpers import count, drain, post

ROOT = Path(__file__).resolve().parents[1]
FAQ = ROOT / "playbooks" / "faq_demo.yaml"
DEMO = ROOT / "playbooks" / "demo.yml"
_msg = itertools.count(8_000_000)


@pytest.fixture
def bot(runner):
    r = runner.invoke(args=["faq", "load", str(FAQ)])
    assert r.exit_code == 0, r.output
    return runner


def say(client, openid: str, text: str, msg_id: int | None = None, **options):
    r = post(client, "text", openid=openid, content=text, msg_id=msg_id or next(_msg), **options)
    assert r.status_code == 200
    return r.get_data(as_text=True)


def content(xml: str) -> str | None:
    found = re.search(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", xml, re.S)
    return found.group(1) if found else None


def is_transfer(xml: str) -> bool:
    return "<MsgType><![CDATA[transfer_customer_service]]></MsgType>" in xml


def decision(app, openid: str) -> dict:
    with app.extensions["welead"].db.sessions() as s:
        row = s.scalars(select(Interaction).where(Interaction.openid == openid).order_by(Interaction.id.desc())).first()
        return row.decision


def test_faq_answer_greeting_and_fallback(client, app, bot):
    assert "1980" in content(say(client, "o-ans", "你们怎么收费的？"))
    assert decision(app, "o-ans")["bot"]["entry"] == "pricing"
    greeting = content(say(client, "o-ans", "你好"))
    assert greeting and "人工" in greeting
    fallback = content(say(client, "o-ans", "今天北京天气怎么样"))
    assert fallback and "人工" in fallback
    assert decision(app, "o-ans")["bot"]["kind"] == "fallback"


def test_playbook_reply_rules_come_before_the_faq(client, app, bot):
    bot.invoke(args=["playbook", "load", str(DEMO)])
    assert content(say(client, "o-rule", "价格")).startswith("标准版 1980 元")  # the demo playbook's keyword rule
    d = decision(app, "o-rule")
    assert d["bot"]["kind"] == "rule" and d["rules"] == ["asks-price"]


def test_handoff_word_then_quiet_then_cancel(client, app, bot):
    rep_owner(app, "o-human")
    assert is_transfer(say(client, "o-human", "转人工"))
    assert is_transfer(say(client, "o-human", "你们怎么收费的？"))  # a human has it: passed on, the bot says nothing
    assert decision(app, "o-human")["bot"] == {**decision(app, "o-human")["bot"], "kind": "flow", "flow": "handoff"}
    assert "结束" in content(say(client, "o-human", "退出"))
    assert "1980" in content(say(client, "o-human", "你们怎么收费的？"))
    notices = outbox(app, "rep.notify")
    assert [n["kind"] for n in notices] == ["handoff"] and "转人工" in notices[0]["reason"]


def test_question_containing_a_handoff_word_is_not_a_handoff(client, bot):
    assert not is_transfer(say(client, "o-ai", "人工智能客服机器人能接入吗"))


def test_three_misses_hand_over_and_are_recorded(client, app, bot):
    for text in ("火星上能用吗", "你们老板是谁呀", "给我讲个笑话"):
        last = say(client, "o-miss", text)
    assert is_transfer(last)
    bot_part = decision(app, "o-miss")["bot"]
    assert bot_part["kind"] == "handoff" and bot_part["why"] == "misses" and bot_part["misses"] == 3
    drain(app)
    assert count(app, FaqMiss) == 3


def test_an_answer_resets_the_miss_streak(client, app, bot):
    say(client, "o-reset", "火星上能用吗")
    say(client, "o-reset", "火星上能用吗？？")
    say(client, "o-reset", "可以免费试用吗")
    assert not is_transfer(say(client, "o-reset", "给我讲个笑话"))


def test_a_retried_message_gets_the_same_reply_and_advances_nothing(client, app, bot):
    first = say(client, "o-retry", "火星上能用吗", msg_id=7_000_001)
    for _ in range(3):  # WeChat's retries of the same MsgId
        again = say(client, "o-retry", "火星上能用吗", msg_id=7_000_001)
        assert content(again) == content(first)
    assert decision(app, "o-retry")["bot"]["misses"] == 1
    say(client, "o-retry", "你们老板是谁呀")
    assert decision(app, "o-retry")["bot"]["misses"] == 2  # not 4: the retries counted nothing
    drain(app)
    assert count(app, FaqMiss) == 2


def test_handoff_retry_keeps_the_handoff_reply(client, app, bot):
    assert is_transfer(say(client, "o-hr", "人工客服", msg_id=7_100_001))
    assert is_transfer(say(client, "o-hr", "人工客服", msg_id=7_100_001))
    drain(app)
    assert len(outbox(app, "rep.notify")) <= 1  # no owner and no rep on duty: nobody; never twice


@pytest.mark.parametrize(
    "text",
    ["😀😀😀", "价格" * 1000, "怎么收费]]><xml>", "", "   ", "ａｐｉ　接口有调用限制吗", "What is the price of CRM?"],
)
def test_hostile_text_gets_a_sensible_reply_never_an_error(client, bot, text):
    xml = say(client, "o-bad", text)
    assert xml == "success" or content(xml) is not None or is_transfer(xml)
    if "]]>" in text:
        assert "]]><xml>" not in xml.replace("]]]]><![CDATA[>", "")


def test_voice_recognition_is_answered_and_images_are_not(client, bot):
    r = post(client, "voice", openid="o-voice", recognition="怎么收费", msg_id=next(_msg))
    assert "1980" in content(r.get_data(as_text=True))
    r = post(client, "image", openid="o-voice", msg_id=next(_msg))
    assert r.get_data(as_text=True) == "success"


def test_redis_down_answers_without_state(client, app, bot):
    svc = app.extensions["welead"]
    svc.__dict__["redis"] = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2)
    assert "1980" in content(say(client, "o-down", "你们怎么收费的？"))
    assert is_transfer(say(client, "o-down", "转人工"))
    assert decision(app, "o-down")["bot"]["stateless"] is True
    assert "1980" in content(say(client, "o-down", "你们怎么收费的？"))  # no state: nobody remembers the handoff


def test_faq_answered_trigger_and_the_entrys_tags_and_points(client, app, bot, auth_headers, tmp_path):
    book = tmp_path / "book.yml"
    book.write_text(
        "name: faq\nrules:\n  - name: price-interest\n    when: {faq_answered: {entry: [pricing, discount]}}\n"
        "    do:\n      - score: 12\n      - tag: asked-price\n"
    )
    assert bot.invoke(args=["playbook", "load", str(book)]).exit_code == 0
    faq = tmp_path / "faq.yaml"
    faq.write_text(FAQ.read_text().replace("tags: [interest:pricing]", "tags: [interest:pricing]\n  points: 3", 1))
    assert bot.invoke(args=["faq", "load", str(faq)]).exit_code == 0
    say(client, "o-trig", "你们怎么收费的？")
    say(client, "o-trig", "营业时间是几点")
    drain(app)
    f = client.get("/api/v1/followers/o-trig", headers=auth_headers).json
    assert {"asked-price", "interest:pricing"} <= set(f["tags"])
    assert f["score"] == pytest.approx(15, abs=0.1)
    rules = {e["rule"] for e in client.get("/api/v1/followers/o-trig/score", headers=auth_headers).json["events"]}
    assert rules == {"price-interest", "faq:pricing"}


def test_misses_are_clustered_and_ranked(client, app, bot, auth_headers):
    for i, text in enumerate(["火星上能用吗", "火星上能用吗？", "火星上 能用吗!!", "你们老板是谁", "给我讲个笑话"]):
        say(client, f"o-m{i}", text)
    drain(app)
    r = client.get("/api/v1/faq/misses", headers=auth_headers)
    assert r.status_code == 200, r.json
    items = r.json["items"]
    assert items[0]["count"] == 3 and items[0]["followers"] == 3 and "火星" in items[0]["text"]
    assert sorted(i["count"] for i in items) == [1, 1, 3]


def test_a_rep_ends_the_handoff(client, app, bot, auth_headers):
    rep_owner(app, "o-end")
    assert is_transfer(say(client, "o-end", "人工"))
    r = client.delete("/api/v1/conversations/o-end", headers=auth_headers)
    assert r.status_code == 200 and r.json["ended"] is True
    assert "1980" in content(say(client, "o-end", "你们怎么收费的？"))


# --- helpers ------------------------------------------------------------------------------------------------


def rep_owner(app, openid: str) -> None:
    """`openid` exists (a subscribe applied) and is owned by rep 5."""
    from flask import current_app  # noqa: F401  (the test client runs in the app)

    client = app.test_client()
    post(client, "subscribe", openid=openid)
    with app.extensions["welead"].db.transaction() as s:
        if s.get(Rep, 5) is None:
            s.add(Rep(id=5, userid="lin.h", name="Lin"))
            s.flush()
        s.scalar(select(Follower).where(Follower.openid == openid)).owner_id = 5


def outbox(app, task: str) -> list[dict]:
    drain(app)
    with app.extensions["welead"].db.sessions() as s:
        return [o.args for o in s.scalars(select(Outbox).where(Outbox.task == task).order_by(Outbox.id))]
