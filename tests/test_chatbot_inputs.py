# ruff: noqa: RUF001  (follower text: full-width letters on purpose)
"""Bad input the chatbot must shrug off (what tests/test_chatbot_flow.py does not cover already): a voice message
without speech recognition or with a blank one, media and location messages, and hostile text while Redis is down.
Each gets a sensible reply or none, never an error, and its interaction is recorded."""

from __future__ import annotations

import pytest
import redis
import xmltodict
from sqlalchemy import select

from scrm.faq_models import FaqMiss
from scrm.models import Interaction
from tests.helpers import count, post
from tests.test_chatbot_flow import FAQ, content, is_transfer, say


@pytest.fixture
def bot(runner):
    assert runner.invoke(args=["faq", "load", str(FAQ)]).exit_code == 0
    return runner


def recorded(app, openid: str) -> list[tuple[str, dict | None]]:
    with app.extensions["welead"].db.sessions() as s:
        rows = s.scalars(select(Interaction).where(Interaction.openid == openid).order_by(Interaction.id))
        return [(r.kind, r.decision) for r in rows]


def test_voice_without_recognition_or_with_a_blank_one_gets_no_reply(client, app, bot):
    assert post(client, "voice", openid="o-mute").get_data(as_text=True) == "success"
    assert post(client, "voice", openid="o-mute", recognition="  ").get_data(as_text=True) == "success"
    (_, first), (_, second) = recorded(app, "o-mute")
    assert "bot" not in (first or {}) and second["bot"]["kind"] == "empty"
    assert count(app, FaqMiss) == 0  # nothing was asked: nothing was missed


@pytest.mark.parametrize("kind", ["video", "shortvideo", "location", "link", "image"])
def test_media_and_locations_are_left_to_the_playbook(client, app, bot, kind):
    assert post(client, kind, openid="o-media").get_data(as_text=True) == "success"
    ((got, decision),) = recorded(app, "o-media")
    assert got == kind and "bot" not in (decision or {})


@pytest.mark.parametrize("text", ["😀😀😀", "价格" * 1000, "怎么收费]]><xml>", "", "ａｐｉ　接口有调用限制吗 CRM?"])
def test_hostile_text_while_redis_is_down(client, app, bot, text):
    svc = app.extensions["welead"]
    svc.__dict__["redis"] = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2)
    xml = say(client, "o-down", text)
    assert xml == "success" or is_transfer(xml) or content(xml)
    if xml != "success":
        assert xmltodict.parse(xml)["xml"]["ToUserName"] == "o-down"  # well-formed, whatever the follower wrote
    ((_, decision),) = recorded(app, "o-down")
    assert decision["bot"]["stateless"] is True or decision["bot"]["kind"] == "empty"
