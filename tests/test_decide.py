"""The passive reply decided in the request: which rule's reply wins, what replies may hang on, what is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from scrm.models import Interaction
from scrm.playbook import PlaybookError, parse, store
from tests.helpers import post
from wechat.simulate import read_reply

BOOK = """
rules:
  - name: booth
    when: {scene: "booth:{event}:{booth}"}
    do: [{tag: "visited:{booth}"}, {reply: "Booth {booth} says hi"}]
  - name: welcome
    when: subscribe
    do: [{tag: welcomed}, {reply: "Welcome!"}]
  - name: vip-only
    when: {text: {keywords: [hello]}}
    if: {tagged: [vip]}
    do: [{reply: "Hello, VIP"}]
  - name: everyone
    when: {text: {keywords: [hello]}}
    do: [{tag: greeted}, {reply: "Hello"}]
  - name: make-vip
    when: {click: VIP}
    do: [{tag: vip}]
"""


@pytest.fixture
def book(app):
    with app.extensions["welead"].db.transaction() as session:
        store.load(session, BOOK)


def _reply(app, response) -> str:
    return read_reply(response.data, app.extensions["welead"].settings, "oa")


def _decision(app, openid: str) -> dict:
    with app.extensions["welead"].db.sessions() as session:
        query = select(Interaction.decision).where(Interaction.openid == openid).order_by(Interaction.id.desc())
        return session.scalar(query.limit(1))


def test_first_reply_in_playbook_order_wins_whichever_signal_matched(app, client, book):
    r = post(client, "subscribe", openid="o-order", scene="booth:expo:A1")
    assert "Booth A1 says hi" in _reply(app, r)
    assert _decision(app, "o-order") == {"rules": ["booth", "welcome"], "reply": {"text": "Booth A1 says hi"}}
    tags = client.get("/api/v1/followers/o-order", headers={"Authorization": "Bearer test-admin-token"}).json["tags"]
    assert set(tags) == {"visited:A1", "welcomed"}  # both reply rules fired: their other actions apply


def test_a_reply_rules_if_reads_the_follower_once(app, client, book):
    r = post(client, "text", openid="o-plain", content="hello")
    assert "Hello" in _reply(app, r) and "VIP" not in _reply(app, r)
    assert _decision(app, "o-plain")["rules"] == ["everyone"]
    post(client, "click", openid="o-plain", key="VIP")  # applied before the next message arrives
    r = post(client, "text", openid="o-plain", content="hello")
    assert "Hello, VIP" in _reply(app, r)
    assert _decision(app, "o-plain") == {"rules": ["vip-only", "everyone"], "reply": {"text": "Hello, VIP"}}


def test_no_reply_rule_matches_stores_no_decision(app, client, book):
    r = post(client, "text", openid="o-quiet", content="nothing to see")
    assert r.data == b"success" and _decision(app, "o-quiet") is None


@pytest.mark.parametrize("trigger", ["{tag_added: vip}", "{stage_changed: mql}", "{score_crossed: 50}",
                                     "{checked_in: expo}", "{form_submitted: demo}"])  # fmt: skip
def test_replies_on_triggers_that_happen_after_the_answer_are_refused(trigger):
    text = f"rules: [{{name: late, when: {trigger}, do: [{{reply: hi}}]}}]"
    if "stage_changed" in trigger:
        text += "\nstages: {order: [{name: new, at: 0}, {name: mql, at: 40}]}"
    with pytest.raises(PlaybookError) as err:
        parse(text)
    assert "decided when the message arrives" in str(err.value)
