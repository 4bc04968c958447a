"""Referral posters end to end: the simulator's callbacks → the request's reply → the applier → the poster and reward
jobs against the sandbox (qrcode/create, media/upload, message/custom/send, template send) → the campaign report."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import zxingcpp
from sqlalchemy import select

from scrm import referrals
from scrm.delivery_models import Delivery
from scrm.referral_models import ReferralPoster, ReferralReward
from tests.helpers import post
from tests.messaging_kit import svc, with_messaging
from tests.referral_kit import (
    ask,
    campaign,
    follow,
    follower_id,
    invites,
    load_playbook,
    poster_image,
    report,
    sent,
    unfollow,
    when,
    work,
)


@pytest.fixture
def settings(settings):
    return with_messaging(settings)


@pytest.fixture
def ready(app, client, runner, live, auth_headers, tmp_path):
    load_playbook(runner, tmp_path)
    campaign(client, auth_headers)
    follow(client, "o-alice")
    return follower_id(app, "o-alice")


def test_asking_answers_at_once_and_the_poster_follows_with_its_own_code(app, client, ready):
    answer = ask(client, "o-alice")
    assert referrals.DEFAULT_REPLY in answer.get_data(as_text=True)
    assert sent(app, "qrcode/create") == []  # nothing outbound in the request
    work(app)
    (made,) = sent(app, "qrcode/create")
    assert made["body"]["action_name"] == "QR_STR_SCENE"
    assert made["body"]["action_info"]["scene"]["scene_str"] == f"ref:xmas:{ready}"
    assert 0 < made["body"]["expire_seconds"] <= 2_592_000
    (upload,) = sent(app, "media/upload")
    assert upload["query"]["type"] == "image" and upload["errcode"] == 0
    (image,) = [c for c in sent(app, "message/custom/send") if c["body"]["msgtype"] == "image"]
    assert image["body"]["touser"] == "o-alice" and image["errcode"] == 0
    poster = poster_image(app, image["body"]["image"]["media_id"])
    assert poster.size == (750, 1334)
    assert [code.text for code in zxingcpp.read_barcodes(poster)] == [made["answer"]["url"]]


def test_asking_twice_sends_the_cached_poster(app, client, ready):
    ask(client, "o-alice")
    work(app)
    answer = post(client, "click", openid="o-alice", key="MENU_POSTER", create_time=int(time.time()) - 50)
    assert "海报马上到" in answer.get_data(as_text=True)
    work(app)
    assert len(sent(app, "qrcode/create")) == 1 and len(sent(app, "media/upload")) == 1
    images = [c["body"]["image"]["media_id"] for c in sent(app, "message/custom/send") if "image" in c["body"]]
    assert len(images) == 2 and images[0] == images[1]
    with svc(app).db.sessions() as s:
        row = s.scalar(select(ReferralPoster))
        assert (row.sent, row.last_status, row.media_id) == (2, "sent", images[0])


def test_invites_count_reach_a_tier_and_reward_once(app, client, auth_headers, ready):
    scene = f"ref:xmas:{ready}"
    follow(client, "o-bob", scene)
    for _ in range(2):  # WeChat retries the callback: one invite
        follow(client, "o-carol", scene, at=int(time.time()) - 90_000)
    work(app)
    assert invites(app) == [("counted", None), ("counted", None)]
    alice = client.get("/api/v1/followers/o-alice", headers=auth_headers).json
    assert "ref:silver" in alice["tags"] and "ref:gold" not in alice["tags"]
    assert alice["scores"]["engagement"] == pytest.approx(10, abs=0.5)
    with svc(app).db.sessions() as s:
        (delivery,) = s.scalars(select(Delivery).where(Delivery.template == "referral_reward")).all()
        assert delivery.openid == "o-alice" and delivery.state == "sent"
        (reward,) = s.scalars(select(ReferralReward)).all()
        assert (reward.tier, reward.applied_at is not None) == (2, True)
    (template,) = sent(app, "message/template/send")
    assert template["body"]["touser"] == "o-alice" and template["body"]["data"]["thing3"]["value"] == "九折优惠券"
    timeline = client.get("/api/v1/followers/o-alice/timeline", headers=auth_headers).json
    assert {"referral_credited", "referral_reward", "tag_added"} <= {e["kind"] for e in timeline}
    ranked = report(client, auth_headers)
    assert ranked["inviters"][0]["openid"] == "o-alice" and ranked["inviters"][0]["invites"] == 2
    assert ranked["inviters"][0]["rewards"] == [2] and ranked["totals"]["invites"] == 2


def test_unfollow_within_the_window_is_taken_back_and_the_reward_noted(app, client, auth_headers, ready):
    scene = f"ref:xmas:{ready}"
    follow(client, "o-bob", scene)
    follow(client, "o-carol", scene)
    work(app)
    unfollow(client, "o-carol")  # seconds after the invite: inside the 24 h window
    work(app)
    assert invites(app) == [("counted", None), ("retracted", None)]
    got = report(client, auth_headers)
    assert got["inviters"][0]["invites"] == 1 and got["totals"]["retracted"] == 1
    (reward,) = got["rewards"]
    assert reward["tier"] == 2 and "o-carol unfollowed within the window" in reward["note"]
    alice = client.get("/api/v1/followers/o-alice", headers=auth_headers).json
    assert "ref:silver" in alice["tags"]  # given, and kept
    follow(client, "o-carol", scene)  # coming back is not new
    assert invites(app)[-1] == ("refused", "not_new")
    follow(client, "o-dan", scene)  # back at 2: the tier was rewarded already, once is all
    work(app)
    again = report(client, auth_headers)
    assert again["inviters"][0]["invites"] == 2 and len(again["rewards"]) == 1
    assert len(sent(app, "message/template/send")) == 1


def test_unfollow_after_the_window_keeps_the_invite(app, client, auth_headers, ready):
    follow(client, "o-bob", f"ref:xmas:{ready}", at=int(time.time()) - 30 * 3600)
    unfollow(client, "o-bob", at=int(time.time()) - 60)  # 30 hours later: outside the 24 h window
    assert invites(app) == [("counted", None)]
    assert report(client, auth_headers)["inviters"][0]["invites"] == 1
    timeline = client.get("/api/v1/followers/o-bob/timeline", headers=auth_headers).json
    assert any(e["kind"] == "referral_kept" for e in timeline)


def test_self_invites_loops_and_old_followers_count_nothing(app, client, auth_headers, ready):
    follow(client, "o-bob", f"ref:xmas:{ready}")
    bob = follower_id(app, "o-bob")
    unfollow(client, "o-alice")
    follow(client, "o-alice", f"ref:xmas:{ready}")  # her own poster
    unfollow(client, "o-alice")
    follow(client, "o-alice", f"ref:xmas:{bob}")  # Bob's poster bringing back the one who invited him
    follow(client, "o-dave")
    unfollow(client, "o-dave")
    follow(client, "o-dave", f"ref:xmas:{ready}")  # followed before: not new
    assert invites(app) == [("counted", None), ("refused", "self"), ("refused", "loop"), ("refused", "not_new")]
    totals = report(client, auth_headers)["totals"]
    assert totals["invites"] == 1 and totals["refused_by_reason"] == {"self": 1, "loop": 1, "not_new": 1}


def test_ended_unknown_and_malformed_campaign_scenes_are_friendly(app, client, auth_headers, ready):
    campaign(client, auth_headers, "old", starts_at=when(-timedelta(days=9)), ends_at=when(-timedelta(days=2)))
    for openid, scene in (("o-erin", f"ref:old:{ready}"), ("o-fay", f"ref:nope:{ready}"),
                          ("o-gus", "ref:xmas:abc"), ("o-hal", "ref:xmas:99999999999999999999")):  # fmt: skip
        answer = follow(client, openid, scene)
        assert answer.status_code == 200 and "欢迎关注" in answer.get_data(as_text=True)
        assert client.get(f"/api/v1/followers/{openid}", headers=auth_headers).json["subscribed"] is True
    assert invites(app) == [("refused", "ended"), ("refused", "unknown_inviter"), ("refused", "unknown_inviter")]
    timeline = client.get("/api/v1/followers/o-fay/timeline", headers=auth_headers).json
    assert any(e["kind"] == "referral_refused" and e["data"]["reason"] == "unknown_campaign" for e in timeline)
    ask(client, "o-alice", "旧海报")  # a poster of an ended campaign: a friendly line, no code made
    work(app)
    assert sent(app, "qrcode/create") == []
    (line,) = sent(app, "message/custom/send")
    assert line["body"]["msgtype"] == "text" and "结束" in line["body"]["text"]["content"]


def test_the_invites_export_lists_every_outcome(app, client, auth_headers, ready, runner):
    follow(client, "o-bob", f"ref:xmas:{ready}")
    unfollow(client, "o-alice")
    follow(client, "o-alice", f"ref:xmas:{ready}")
    answer = client.get("/api/v1/campaigns/xmas/invites.csv", headers=auth_headers)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    lines = answer.get_data(as_text=True).splitlines()
    assert lines[0] == "at,inviter,invitee,status,reason,retracted_at"
    assert [line.split(",")[1:5] for line in lines[1:]] == [["o-alice", "o-bob", "counted", ""],
                                                             ["o-alice", "o-alice", "refused", "self"]]  # fmt: skip
    done = runner.invoke(args=["campaign", "export", "xmas"])
    assert done.exit_code == 0 and done.output.splitlines() == lines
    shown = runner.invoke(args=["campaign", "show", "xmas"])
    assert shown.exit_code == 0 and "#1" in shown.output and "o-alice" in shown.output


def test_the_demo_campaign_and_playbook_work_together(app, client, runner, live, auth_headers):
    from tests.test_perf_invariants import DEMO

    assert client.put("/api/v1/playbook", data=DEMO.read_text(), headers=auth_headers).status_code == 201
    made = runner.invoke(args=["campaign", "load-demo-if-empty"])
    assert made.exit_code == 0 and "demo-invite" in made.output
    assert "exists already" in runner.invoke(args=["campaign", "load-demo-if-empty"]).output
    follow(client, "o-demo")
    assert "poster is on its way" in ask(client, "o-demo", "海报").get_data(as_text=True)
    work(app)
    (image,) = [c for c in sent(app, "message/custom/send") if "image" in c["body"]]
    poster = poster_image(app, image["body"]["image"]["media_id"])
    (made_code,) = sent(app, "qrcode/create")
    assert [c.text for c in zxingcpp.read_barcodes(poster)] == [made_code["answer"]["url"]]
    assert made_code["body"]["action_info"]["scene"]["scene_str"] == f"ref:demo-invite:{follower_id(app, 'o-demo')}"


def test_a_long_campaigns_codes_live_30_days_and_are_remade_after(app, client, auth_headers, ready):
    client.patch("/api/v1/campaigns/xmas", json={"ends_at": when(timedelta(days=60))}, headers=auth_headers)
    ask(client, "o-alice")
    work(app)
    (made,) = sent(app, "qrcode/create")
    assert made["body"]["expire_seconds"] == 2_592_000  # WeChat's longest; the campaign lasts longer
    with svc(app).db.transaction() as s:  # 30 days later: the code has expired, so has its image
        row = s.scalar(select(ReferralPoster))
        row.qr_expires_at = row.media_expires_at = row.updated_at
    ask(client, "o-alice")
    work(app)
    assert len(sent(app, "qrcode/create")) == 2 and len(sent(app, "media/upload")) == 2
