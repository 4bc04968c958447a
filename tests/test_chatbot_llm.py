# ruff: noqa: RUF001  (follower text and model answers: full-width punctuation on purpose)
"""Language-model answers against a fake OpenAI-compatible endpoint over real HTTP: the request answers "success"
and defers; the job asks the model from the FAQ's top entries and sends its answer as a customer-service message
through the sandbox; slow answers past the budget, 500s, refused connections, garbage JSON, empty, too long or
ungrounded answers send the FAQ's answer instead; exactly one message per interaction; off by default."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import yaml
from sqlalchemy import select

from foundation.clock import utcnow
from foundation.config import ConfigError, Settings
from scrm.delivery_models import Delivery
from scrm.faq_models import FaqMiss
from scrm.models import Outbox
from tasks.chatbot_answer import answer
from tasks.worker import run_worker
from tests.helpers import count, post
from tests.messaging_kit import drain as drain_sends
from tests.messaging_kit import sandbox, svc, with_messaging
from tests.test_chatbot_flow import content, decision, say

ROOT = Path(__file__).resolve().parents[1]
FAQ = ROOT / "playbooks" / "faq_demo.yaml"
ANSWERS = {e["id"]: e["answer"] for e in yaml.safe_load(FAQ.read_text(encoding="utf-8"))}
GOOD = "标准版每个账号每年 1980 元，专业版每个账号每年 3980 元，5 个账号起购，旗舰版按需报价。"
BUDGET = 1.0
_ids = itertools.count(9_100_000)


class FakeModel:
    """An OpenAI-compatible /chat/completions: `mode` says how it answers; every request is kept."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.reply = GOOD
        self.requests: list[dict] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body,
                                      "at": utcnow()})  # fmt: skip
                if fake.mode == "slow":
                    time.sleep(BUDGET * 3)
                status, text = fake.answer()
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fake.mode != "trickle":
                    self.wfile.write(data)
                    return
                for i in range(0, len(data), 16):  # headers at once, then the body a little at a time
                    try:
                        self.wfile.write(data[i : i + 16])
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):  # the job gave up on it: as it should
                        return
                    time.sleep(BUDGET / 5)

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def answer(self) -> tuple[int, str]:
        if self.mode == "500":
            return 500, '{"error": {"message": "overloaded"}}'
        if self.mode == "garbage":
            return 200, '{"choices": [{"message": '
        if self.mode == "no_choices":
            return 200, '{"object": "chat.completion", "choices": []}'
        reply = {"outside": "专业版现在只要 999 元，今天下单再送一年！", "long": GOOD * 20, "cannot": "NO_ANSWER",
                 "empty": "  "}.get(self.mode, self.reply)  # fmt: skip
        doc = {"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant",
               "content": reply}, "finish_reason": "stop"}]}  # fmt: skip
        return 200, json.dumps(doc, ensure_ascii=False)


@pytest.fixture
def model() -> Iterator[tuple[FakeModel, str]]:
    fake = FakeModel()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def settings(settings):
    return with_messaging(settings)


@pytest.fixture
def bot(runner):
    assert runner.invoke(args=["faq", "load", str(FAQ)]).exit_code == 0
    return runner


@pytest.fixture
def llm(app, live, bot, model) -> FakeModel:
    """Language-model answers on, against the fake (after `live`, which rewrites the settings too)."""
    fake, base = model
    s = svc(app).settings
    svc(app).settings = s.replace(llm_api_base=base, llm_model="fake-model", llm_api_key="sk-test",
                                  llm_timeout=BUDGET)  # fmt: skip
    return fake


def follower(client, openid: str) -> None:
    post(client, "subscribe", openid=openid)


def sent_texts(app) -> list[tuple[str, str]]:
    return [(c["body"]["touser"], c["body"]["text"]["content"]) for c in sandbox(app).sent("oa/message/custom/send")]


def ask(client, app, openid: str, text: str, msg_id: int | None = None) -> str:
    """The question through a real callback, applied, the outbox's jobs run and the deliveries settled (a send
    retried by the pump included): the passive reply."""
    xml = say(client, openid, text, msg_id=msg_id or next(_ids))
    run_worker(app, burst=True)
    drain_sends(app)
    with svc(app).db.sessions() as s:
        jobs = s.scalars(select(Outbox).where(Outbox.task == "chatbot.answer"))
        assert all(j.done_at and not j.last_error for j in jobs), [(j.id, j.done_at, j.last_error) for j in jobs]
    return xml


def delivery(app, openid: str) -> Delivery:
    with svc(app).db.sessions() as s:
        (row,) = s.scalars(select(Delivery).where(Delivery.openid == openid))
        return row


def test_the_model_answers_from_the_top_entries_as_a_customer_service_message(client, app, llm, auth_headers):
    follower(client, "o-llm")
    xml = ask(client, app, "o-llm", "你们怎么收费的？")
    assert xml == "success"  # nothing passive: the answer comes from the job
    bot = decision(app, "o-llm")["bot"]
    assert bot["kind"] == "answer" and bot["entry"] == "pricing"
    assert bot["defer"]["entries"][0] == "pricing" and bot["defer"]["fallback"] == ANSWERS["pricing"]
    assert sent_texts(app) == [("o-llm", GOOD)]
    (req,) = llm.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "fake-model"
    system, user = (m["content"] for m in req["body"]["messages"])
    assert "NO_ANSWER" in system and "不得使用资料以外" in system
    assert "你们怎么收费的？" in user and ANSWERS["pricing"] in user
    assert delivery(app, "o-llm").args["data"]["via"] == "llm"
    kinds = [e["kind"] for e in client.get("/api/v1/followers/o-llm/timeline", headers=auth_headers).json]
    assert kinds[0] == "message_sent" and "text" in kinds


@pytest.mark.parametrize(
    "mode, why",
    [("slow", "timeout"), ("trickle", "timeout"), ("500", "http_500"), ("garbage", "garbage"),
     ("no_choices", "garbage"), ("outside", "ungrounded"), ("long", "too_long"), ("cannot", "cannot_answer"),
     ("empty", "empty")],
)  # fmt: skip
def test_a_model_that_fails_sends_the_faq_answer_instead(client, app, llm, mode, why):
    llm.mode = mode
    follower(client, "o-fail")
    assert ask(client, app, "o-fail", "你们怎么收费的？") == "success"
    assert sent_texts(app) == [("o-fail", ANSWERS["pricing"])]
    row = delivery(app, "o-fail")
    assert (row.state, row.args["data"]["via"], row.args["data"]["why"]) == ("sent", "faq", why)
    waited = (row.created_at - llm.requests[0]["at"]).total_seconds()  # from the ask to the answer queued
    assert waited < BUDGET * 2.5  # the slow model answers after 3 budgets: the job did not wait for it


def test_a_refused_connection_sends_the_faq_answer(client, app, llm):
    s = svc(app).settings
    svc(app).settings = s.replace(llm_api_base="http://127.0.0.1:9/v1")  # nothing listens on the discard port
    follower(client, "o-refused")
    ask(client, app, "o-refused", "你们怎么收费的？")
    assert sent_texts(app) == [("o-refused", ANSWERS["pricing"])]
    assert delivery(app, "o-refused").args["data"]["why"] == "refused"


def test_one_message_per_interaction_whatever_runs_twice(client, app, llm):
    follower(client, "o-once")
    for _ in range(3):  # WeChat's retries of one MsgId: one interaction, one outbox row
        assert say(client, "o-once", "你们怎么收费的？", msg_id=9_000_777) == "success"
    run_worker(app, burst=True)
    with app.app_context():
        iid = decision_row_id(app, "o-once")
        answer(iid)  # the job again (a lease expired, a sweeper pushed it twice): no second message, no second ask
    assert sent_texts(app) == [("o-once", GOOD)] and len(llm.requests) == 1
    assert count(app, Outbox, Outbox.task == "chatbot.answer") == 1


def test_a_near_miss_goes_to_the_model_and_falls_back_to_the_offer_of_a_human(client, app, llm):
    svc(app).settings = svc(app).settings.replace(llm_consider=0.0)  # every question sharing words with an entry
    llm.mode = "cannot"
    follower(client, "o-near")
    assert ask(client, app, "o-near", "健身房年卡多少钱") == "success"
    bot = decision(app, "o-near")["bot"]
    assert bot["kind"] == "fallback" and bot["miss"] and bot["defer"]["entries"]
    ((_, text),) = sent_texts(app)
    assert "人工" in text  # the bot's fallback line, which offers a human
    assert count(app, FaqMiss) == 1  # the FAQ did not know it: still a miss for the marketer


def test_below_the_consider_line_the_fallback_is_the_passive_reply(client, app, llm):
    svc(app).settings = svc(app).settings.replace(llm_consider=1.0)
    follower(client, "o-far")
    fallback = content(ask(client, app, "o-far", "健身房年卡多少钱"))
    assert fallback and "人工" in fallback and "defer" not in decision(app, "o-far")["bot"]
    assert content(ask(client, app, "o-far", "你好"))  # greetings are never the model's
    assert llm.requests == [] and sent_texts(app) == []


def test_off_by_default_nothing_is_deferred(client, app, live, bot, model):
    follower(client, "o-off")
    assert "1980" in content(ask(client, app, "o-off", "你们怎么收费的？"))
    assert "defer" not in decision(app, "o-off")["bot"]
    assert model[0].requests == [] and count(app, Outbox, Outbox.task == "chatbot.answer") == 0


def test_settings_are_checked_at_start(monkeypatch):
    monkeypatch.setenv("LLM_API_BASE", "http://127.0.0.1:8000/v1/")
    with pytest.raises(ConfigError, match="LLM_MODEL"):
        Settings.from_env()
    monkeypatch.setenv("LLM_MODEL", "qwen2.5")
    monkeypatch.setenv("LLM_TIMEOUT", "120")
    with pytest.raises(ConfigError, match="LLM_TIMEOUT"):
        Settings.from_env()
    monkeypatch.setenv("LLM_TIMEOUT", "4.5")
    s = Settings.from_env()
    assert s.llm_on and s.llm_api_base == "http://127.0.0.1:8000/v1" and s.llm_timeout == 4.5
    monkeypatch.delenv("LLM_API_BASE")
    assert not Settings.from_env().llm_on


def decision_row_id(app, openid: str) -> int:
    from scrm.models import Interaction

    with svc(app).db.sessions() as s:
        return s.scalar(select(Interaction.id).where(Interaction.openid == openid, Interaction.kind == "text"))


def test_a_voice_question_is_asked_by_its_recognition(client, app, llm):
    follower(client, "o-voice")
    r = post(client, "voice", openid="o-voice", recognition="你们怎么收费", msg_id=next(_ids))
    assert r.get_data(as_text=True) == "success"
    run_worker(app, burst=True)
    assert sent_texts(app) == [("o-voice", GOOD)]
    assert "你们怎么收费" in llm.requests[0]["body"]["messages"][1]["content"]


@pytest.mark.parametrize("text", ["价格" * 1000, "怎么收费]]><xml>", "😀😀😀", "", "ｐｒｉｃｅ 多少钱？"])
def test_hostile_questions_with_the_model_on(client, app, llm, text):
    svc(app).settings = svc(app).settings.replace(llm_consider=0.0)  # whatever shares a word with an entry
    follower(client, "o-bad")
    xml = ask(client, app, "o-bad", text)
    assert xml == "success" or content(xml)
    if len(text) > 500:
        assert llm.requests
    for req in llm.requests:  # what reached the model: the question cut to what the bot matches
        question = req["body"]["messages"][1]["content"].split("用户的问题：", 1)[1]
        assert len(question) <= 500
    assert all(t for _, t in sent_texts(app))


def test_redis_down_in_the_request_still_defers_and_answers(client, app, llm):
    follower(client, "o-down")
    dead = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2)
    svc(app).__dict__["redis"] = dead  # the request's Redis (conversation state, hints); jobs use their own
    assert ask(client, app, "o-down", "你们怎么收费的？") == "success"
    assert decision(app, "o-down")["bot"]["stateless"] is True
    assert sent_texts(app) == [("o-down", GOOD)]
