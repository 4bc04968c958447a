# ruff: noqa: RUF001  (follower text: full-width digits and punctuation on purpose)
"""Lead capture in the chat, end to end through signed callbacks: the offer after a booth reply, the questions,
validation and its three strikes, cancel and timeout, WeChat's retries, hostile answers, the applier's one lead
row and `form_submitted`, and a second web process continuing the same form."""

from __future__ import annotations

import json
import time

import pytest
import redis

from scrm import conversations, event_forms
from tests.event_forms_kit import content, fill, last_decision, leads, make_event, say, scan
from tests.helpers import drain, post
from welead.app import create_app

BOOK = """
name: forms
rules:
  - name: lead-tag
    when: {form_submitted: {form: "{event}"}}
    do: [{tag: "lead:{event}:{booth}"}, {score: 20}]
"""


@pytest.fixture
def book(client, auth_headers):
    r = client.put("/api/v1/playbook", data=BOOK, headers={**auth_headers, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.json


def test_booth_reply_offers_the_form_and_the_answers_become_one_lead(app, client, auth_headers, book):
    make_event(app)
    offer = content(scan(client, "o-visit", "booth:expo:A1", kind="subscribe"))
    assert "回复 1" in offer
    assert last_decision(app, "o-visit")["form"] == {"event": "expo", "booth": "A1", "start": "offer", "link": True}
    replies = fill(client, "o-visit", "1", "王小明", "Acme 科技", "+86 138-0013-8000")
    assert replies[:3] == [event_forms.PROMPTS["name"], event_forms.PROMPTS["company"], event_forms.PROMPTS["mobile"]]
    assert replies[3] == event_forms.LINES["done"]
    drain(app)
    (lead,) = leads(app)
    assert (lead["name"], lead["company"], lead["mobile"]) == ("王小明", "Acme 科技", "13800138000")
    assert lead["fields"] == {"name": "王小明", "company": "Acme 科技", "mobile": "13800138000"}
    follower = client.get("/api/v1/followers/o-visit", headers=auth_headers).json
    assert "lead:expo:A1" in follower["tags"] and follower["score"] == 20
    timeline = client.get("/api/v1/followers/o-visit/timeline", headers=auth_headers).json
    (captured,) = [e for e in timeline if e["kind"] == "lead_captured"]
    assert captured["data"]["via"] == "chat" and captured["data"]["told"] == "nobody"
    assert content(say(client, "o-visit", "13800138000")) != event_forms.LINES["done"]  # the form is over


def test_direct_start_and_a_configured_form(app, client):
    form = {"start": "direct", "fields": [{"name": "email", "kind": "email", "prompt": "邮箱？"},
                                          {"name": "phone", "kind": "mobile"}], "done": "收到，谢谢"}  # fmt: skip
    make_event(app, "fair", ("B1",), form=form)
    assert content(scan(client, "o-direct", "booth:fair:B1")).endswith("邮箱？")
    assert fill(client, "o-direct", "Li@Example.com", "１３９ ００１３ ８０００") == [
        event_forms.PROMPTS["mobile"],
        "收到，谢谢",
    ]
    drain(app)
    (lead,) = leads(app)
    assert lead["mobile"] == "13900138000" and lead["name"] is None
    assert lead["fields"] == {"email": "li@example.com", "phone": "13900138000"}


@pytest.mark.parametrize(
    "text, want",
    [("13800138000", "13800138000"), ("+8613800138000", "13800138000"), ("0086 138 0013 8000", "13800138000"),
     ("138-0013-8000", "13800138000"), ("１３８００１３８０００", "13800138000"), ("86 19912345678", "19912345678"),
     ("12800138000", None), ("1380013800", None), ("138001380001", None), ("+1 4155550100", None),
     ("١٣٨٠٠١٣٨٠٠٠", None), ("", None), ("电话13800138000", None)],
)  # fmt: skip
def test_mainland_mobile_numbers(text, want):
    assert event_forms.normalise_mobile(text) == want


def test_three_bad_mobile_numbers_end_the_form_politely(app, client):
    make_event(app)
    scan(client, "o-bad", "booth:expo:A1")
    fill(client, "o-bad", "1", "张三", "Acme")
    retries = fill(client, "o-bad", "123", "not a number")
    assert retries == [event_forms.RETRY["mobile"]] * 2
    assert content(say(client, "o-bad", "12800138000")) == event_forms.LINES["failed"]
    assert last_decision(app, "o-bad")["bot"]["failed"] is True
    drain(app)
    assert leads(app) == []
    assert content(say(client, "o-bad", "13800138000")) != event_forms.LINES["done"]


def test_a_bad_answer_then_a_good_one_resets_the_strikes(app, client):
    make_event(app)
    scan(client, "o-fix", "booth:expo:A1")
    fill(client, "o-fix", "1", "😀🎉", "张三", "Acme", "1234", "5678")  # 1 strike on the name, 2 on the mobile
    assert content(say(client, "o-fix", "13800138000")) == event_forms.LINES["done"]
    drain(app)
    assert [lead["mobile"] for lead in leads(app)] == ["13800138000"]


@pytest.mark.parametrize("word", ["退出", "取消", "cancel", " Cancel! "])
def test_cancel_words_end_the_form(app, client, word):
    make_event(app)
    scan(client, "o-cancel", "booth:expo:A1")
    fill(client, "o-cancel", "1", "张三")
    assert content(say(client, "o-cancel", word)) == event_forms.LINES["cancelled"]
    assert last_decision(app, "o-cancel")["bot"] == {**last_decision(app, "o-cancel")["bot"], "kind": "cancel",
                                                     "ended": "form"}  # fmt: skip
    say(client, "o-cancel", "13800138000")
    drain(app)
    assert leads(app) == []


def test_an_abandoned_form_expires_in_redis(app, client, redis_url):
    make_event(app)
    scan(client, "o-gone", "booth:expo:A1")
    fill(client, "o-gone", "1", "张三")
    fast = redis.Redis.from_url(redis_url)
    ttl = fast.ttl(conversations.key("o-gone"))
    assert 29 * 60 < ttl <= 30 * 60 + 1  # the form's 30 minutes
    fast.delete(conversations.key("o-gone"))  # what Redis does when they run out
    assert content(say(client, "o-gone", "Acme")) != event_forms.PROMPTS["mobile"]
    say(client, "o-gone", "13800138000")
    drain(app)
    assert leads(app) == []


def test_a_state_past_its_end_is_not_continued(app, client, redis_url):
    make_event(app)
    scan(client, "o-late", "booth:expo:A1")
    fill(client, "o-late", "1")
    fast = redis.Redis.from_url(redis_url)
    doc = json.loads(fast.get(conversations.key("o-late")))
    fast.set(conversations.key("o-late"), json.dumps({**doc, "until": time.time() - 1}))  # a worker's clock ahead
    assert content(say(client, "o-late", "张三")) != event_forms.PROMPTS["company"]
    assert (last_decision(app, "o-late") or {}).get("bot", {}).get("flow") is None


def test_a_retried_message_never_advances_the_form_twice(app, client):
    make_event(app)
    scan(client, "o-retry", "booth:expo:A1")
    fill(client, "o-retry", "1")
    first = content(say(client, "o-retry", "张三", msg_id=9_900_001))
    for _ in range(3):  # WeChat's retries of one MsgId get the same answer and move nothing
        assert content(say(client, "o-retry", "张三", msg_id=9_900_001)) == first == event_forms.PROMPTS["company"]
    assert content(say(client, "o-retry", "Acme")) == event_forms.PROMPTS["mobile"]
    done = content(say(client, "o-retry", "13800138000", msg_id=9_900_002))
    assert content(say(client, "o-retry", "13800138000", msg_id=9_900_002)) == done == event_forms.LINES["done"]
    drain(app)
    drain(app)
    assert len(leads(app)) == 1


def test_emoji_long_answers_and_cdata_breakers_are_handled_safely(app, client):
    make_event(app)
    scan(client, "o-hostile", "booth:expo:A1")
    fill(client, "o-hostile", "1")
    assert content(say(client, "o-hostile", "🙂🙂🙂")) == event_forms.RETRY["name"]  # no letters: asked again
    assert content(say(client, "o-hostile", "]]>")) == event_forms.RETRY["name"]
    xml = say(client, "o-hostile", "张]]><script>三🙂")
    assert content(xml) == event_forms.PROMPTS["company"]  # the answer is never echoed
    assert "<script>" not in xml
    long = "Acme]]></Content><MsgType>news</MsgType>" + "长" * 2000
    xml = say(client, "o-hostile", long)
    assert content(xml) == event_forms.PROMPTS["mobile"] and "news" not in xml
    say(client, "o-hostile", "13800138000")
    drain(app)
    (lead,) = leads(app)
    assert lead["name"] == "张]]><script>三🙂"  # stored as typed (an export escapes it, never a reply)
    assert len(lead["company"]) == event_forms.MAX_LEN["company"] and lead["company"].startswith("Acme]]>")


def test_a_second_web_process_continues_the_form(app, client, settings):
    make_event(app)
    scan(client, "o-two", "booth:expo:A1")
    fill(client, "o-two", "1", "张三")
    other = create_app(settings)  # another worker: nothing shared but the database and Redis
    try:
        other_client = other.test_client()
        assert content(say(other_client, "o-two", "Acme")) == event_forms.PROMPTS["mobile"]
        assert content(say(client, "o-two", "13800138000")) == event_forms.LINES["done"]
    finally:
        other.extensions["welead"].close()
    drain(app)
    assert len(leads(app)) == 1


def test_offer_steps_aside_for_other_messages_and_unknown_booths_get_none(app, client):
    make_event(app)
    scan(client, "o-aside", "booth:expo:A1")
    assert content(say(client, "o-aside", "你们几点关门")) != event_forms.PROMPTS["name"]
    assert content(say(client, "o-aside", "1")) == event_forms.PROMPTS["name"]  # the offer is still open
    scan(client, "o-nobooth", "booth:expo:ZZ")
    assert "form" not in (last_decision(app, "o-nobooth") or {})
    scan(client, "o-noevent", "booth:nosuch:A1")
    assert "form" not in (last_decision(app, "o-noevent") or {})


def test_start_none_offers_nothing(app, client):
    make_event(app, form={"start": "none"})
    scan(client, "o-none", "booth:expo:A1")
    assert "form" not in (last_decision(app, "o-none") or {})
    assert content(say(client, "o-none", "1")) != event_forms.PROMPTS["name"]


@pytest.mark.parametrize(
    "doc, error",
    [({"fields": [{"name": "x", "kind": "phone"}]}, "kind"), ({"start": "later"}, "start"),
     ({"fields": [{"name": "a"}, {"name": "a"}]}, "unique"), ({"minutes": 0}, "minutes"), ("name,mobile", "object")],
)  # fmt: skip
def test_bad_form_documents_are_refused(doc, error):
    with pytest.raises(event_forms.FormError, match=error):
        event_forms.parse_form(doc)


RULE_FORM = """
name: start-form
rules:
  - name: wants-demo
    when: {text: {keywords: ["预约演示"]}}
    do: [{reply: "好的，请留下联系方式。"}, {start_form: expo}, {tag: demo}]
  - name: menu-form
    when: {click: {key: "FORM_{event}"}}
    do: [{start_form: "{event}"}]
  - name: bye
    when: {form_submitted: {form: expo}}
    do: [{tag: "lead:{event}"}]
"""


def test_a_playbook_action_starts_the_form(app, client, auth_headers):
    make_event(app)
    r = client.put("/api/v1/playbook", data=RULE_FORM, headers={**auth_headers, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.json
    said = content(say(client, "o-rule", "我想预约演示"))
    assert said.startswith("好的，请留下联系方式。\n\n") and said.endswith(event_forms.PROMPTS["name"])
    assert "/forms/lead?t=" in said  # the same form as a page
    decided = last_decision(app, "o-rule")
    assert decided["rules"] == ["wants-demo"] and decided["form"]["start"] == "rule"
    assert "start_form" not in decided["reply"]
    fill(client, "o-rule", "张三", "Acme", "13800138000")
    (lead,) = leads(app)
    assert lead["booth_id"] is None and lead["staff_id"] is None and lead["mobile"] == "13800138000"
    follower = client.get("/api/v1/followers/o-rule", headers=auth_headers).json
    assert {"demo", "lead:expo"} <= set(follower["tags"])
    timeline = client.get("/api/v1/followers/o-rule/timeline", headers=auth_headers).json
    assert [e["data"] for e in timeline if e["kind"] == "form_started"] == [{"event": "expo", "rule": "wants-demo"}]
    r = post(client, "click", openid="o-menu", key="FORM_expo")
    assert content(r.get_data(as_text=True)).endswith(event_forms.PROMPTS["name"])
    r = post(client, "click", openid="o-menu2", key="FORM_nosuch")  # no such event: nothing to say, nothing kept
    assert content(r.get_data(as_text=True)) is None


@pytest.mark.parametrize(
    "when, error",
    [("{tag_added: {tag: x}}", "start_form: the passive reply is decided"), ("{inactive: {days: 3}}", "start_form")],
)
def test_start_form_only_where_a_reply_is_possible(client, auth_headers, when, error):
    book = f"name: b\nrules:\n  - name: r\n    when: {when}\n    do: [{{start_form: expo}}]\n"
    r = client.post("/api/v1/playbook/check", data=book, headers={**auth_headers, "Content-Type": "application/yaml"})
    assert error in str(r.json), r.json
