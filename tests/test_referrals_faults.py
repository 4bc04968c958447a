"""Referral campaigns under bad input and faults: refused campaign fields, artwork uploads, the sandbox's media
rules, and the poster job when WeChat says no (outside the window, lost media)."""

from __future__ import annotations

import io
import threading
import uuid

import pytest
import requests
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.config import INSTANCE
from scrm import referral_models as referrals_model
from scrm.referral_effects import _bump
from scrm.referral_models import ReferralPoster
from tests.messaging_kit import sandbox, svc, with_messaging
from tests.referral_kit import ask, campaign, follow, follower_id, load_playbook, poster_image, sent, when, work
from wechat.sandbox_media import MEDIA


@pytest.fixture
def settings(settings):
    return with_messaging(settings)


def _png(color: str = "navy", size: tuple[int, int] = (600, 900), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"name": "Bad Name"}, 400, "name"),
        ({"ends_at": "yesterday"}, 400, "ends_at"),
        ({"ends_at": "2020-01-01T00:00:00Z"}, 400, "after starts_at"),
        ({"tiers": [{"invites": 3}, {"invites": 3}]}, 400, "same invites"),
        ({"tiers": [{"invites": 0}]}, 400, "tiers[0].invites"),
        ({"tiers": [{"invites": 2, "template": "no_such_template"}]}, 400, "no_such_template"),
        ({"tiers": [{"invites": 2, "colour": "red"}]}, 400, "tiers[0]"),
        ({"unfollow_hours": -1}, 400, "unfollow_hours"),
        ({"artwork": "../secret.png"}, 400, "artwork"),
        ({"surprise": 1}, 400, "unknown fields"),
    ],
)
def test_bad_campaign_fields_are_refused_by_name(client, auth_headers, change, status, says):
    body = {"name": "xmas", "starts_at": when(), "ends_at": "2099-01-01T00:00:00Z", **change}
    answer = client.post("/api/v1/campaigns", json=body, headers=auth_headers)
    assert answer.status_code == status and says in answer.json["message"], answer.json
    assert client.get("/api/v1/campaigns", headers=auth_headers).json["items"] == []


def test_duplicates_renames_and_unknown_campaigns(client, auth_headers):
    campaign(client, auth_headers)
    assert client.post("/api/v1/campaigns", json={"name": "xmas", "starts_at": when(), "ends_at": when()},
                       headers=auth_headers).status_code == 409  # fmt: skip
    renamed = client.patch("/api/v1/campaigns/xmas", json={"name": "other"}, headers=auth_headers)
    assert renamed.status_code == 400
    changed = client.patch("/api/v1/campaigns/xmas", json={"title": "圣诞", "unfollow_hours": 48}, headers=auth_headers)
    assert changed.status_code == 200 and (changed.json["title"], changed.json["unfollow_hours"]) == ("圣诞", 48)
    for path in ("/api/v1/campaigns/nope", "/api/v1/campaigns/nope/invites.csv"):
        assert client.get(path, headers=auth_headers).status_code == 404
    assert client.patch("/api/v1/campaigns/nope", json={}, headers=auth_headers).status_code == 404


@pytest.fixture
def artwork_name():
    """A campaign name of this test's own, its artwork file removed from instance/campaigns/ afterwards."""
    name = f"art-{uuid.uuid4().hex[:8]}"
    yield name
    (INSTANCE / "campaigns" / f"{name}.jpg").unlink(missing_ok=True)


def test_artwork_upload_is_used_for_posters(app, client, runner, live, auth_headers, tmp_path, artwork_name):
    load_playbook(runner, tmp_path)
    campaign(client, auth_headers)
    campaign(client, auth_headers, artwork_name)
    refused = client.put(f"/api/v1/campaigns/{artwork_name}/artwork", data=b"GIF89a no", headers=auth_headers)
    assert refused.status_code == 400
    stored = client.put(f"/api/v1/campaigns/{artwork_name}/artwork", data=_png(fmt="JPEG"), headers=auth_headers)
    assert stored.status_code == 200 and stored.json["artwork"] == f"campaigns/{artwork_name}.jpg"
    moved = client.patch("/api/v1/campaigns/xmas", json={"artwork": stored.json["artwork"]}, headers=auth_headers)
    assert moved.status_code == 200  # an artwork path under instance/
    follow(client, "o-alice")
    ask(client, "o-alice")
    work(app)
    (image,) = [c for c in sent(app, "message/custom/send") if "image" in c["body"]]
    poster = poster_image(app, image["body"]["image"]["media_id"]).convert("RGB")
    assert poster.getpixel((10, 10)) == pytest.approx((0, 0, 128), abs=6)  # the uploaded navy artwork


def test_the_sandbox_refuses_what_wechat_refuses(app, live):
    ctl = sandbox(app)
    token = requests.get(f"{live}/sandbox/oa/cgi-bin/token", params={"grant_type": "client_credential",
                         "appid": "wxsandbox0000000", "secret": "sandbox-secret"}, timeout=5).json()  # fmt: skip
    assert "access_token" in token, token

    def upload(kind: str, files: dict | None) -> dict:
        params = {"type": kind, "access_token": token["access_token"]}
        return requests.post(f"{live}/sandbox/oa/cgi-bin/media/upload", params=params, files=files, timeout=5).json()

    assert upload("poster", {"media": ("a.png", _png())})["errcode"] == 40004
    assert upload("image", {"other": ("a.png", _png())})["errcode"] == 41005
    assert upload("image", {"media": ("a.txt", b"hello")})["errcode"] == 40113
    good = upload("image", {"media": ("a.png", _png())})
    assert good["type"] == "image" and ctl.redis.exists(MEDIA + good["media_id"])
    body = {"touser": "o-x", "msgtype": "image", "image": {"media_id": "never-uploaded"}}
    params = {"access_token": token["access_token"]}
    answer = requests.post(f"{live}/sandbox/oa/cgi-bin/message/custom/send", params=params, json=body, timeout=5)
    assert answer.json()["errcode"] == 40007
    (record,) = [r for r in ctl.sent("oa/media/upload") if r["errcode"] == 0]
    assert record["body"]["media"]["size"] > 0 and "data" not in record["body"]["media"]  # no bytes in records


def test_outside_the_window_is_skipped_and_lost_media_is_uploaded_again(app, client, runner, live, auth_headers,
                                                                         tmp_path):  # fmt: skip
    load_playbook(runner, tmp_path)
    campaign(client, auth_headers)
    follow(client, "o-alice")
    ask(client, "o-alice")
    work(app)
    with svc(app).db.sessions() as s:
        first = s.scalar(select(ReferralPoster)).media_id
    sandbox(app).redis.delete(MEDIA + first)  # WeChat lost it before its 3 days were up
    ask(client, "o-alice")
    work(app)
    assert len(sent(app, "qrcode/create")) == 1 and len(sent(app, "media/upload")) == 2  # same code, new image
    with svc(app).db.sessions() as s:
        row = s.scalar(select(ReferralPoster))
        assert row.media_id != first and (row.sent, row.last_status) == (2, "sent")
    sandbox(app).unsubscribe("o-alice")  # the custom send now answers 45015
    ask(client, "o-alice")
    work(app)
    with svc(app).db.sessions() as s:
        assert s.scalar(select(ReferralPoster)).last_status == "skipped"
    timeline = client.get("/api/v1/followers/o-alice/timeline", headers=auth_headers).json
    statuses = [e["data"]["status"] for e in timeline if e["kind"] == "referral_poster"]
    assert statuses == ["skipped", "sent", "sent"]


def test_the_cli_adds_lists_and_refuses_like_the_api(runner):
    done = runner.invoke(args=["campaign", "add", "spring", "--title", "春季邀请", "--starts", "2026-03-01T00:00:00Z",
                               "--ends", "2026-03-31T00:00:00Z", "--tier", "3,tag=ref:silver,points=20",
                               "--tier", "10,tag=ref:gold,template=referral_reward,reward=一个月免费"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "spring" in done.output and "send_poster: spring" in done.output
    listed = runner.invoke(args=["campaign", "list"])
    assert "spring" in listed.output and "tiers 3, 10" in listed.output
    bad = runner.invoke(args=["campaign", "add", "autumn", "--starts", "2026-09-30T00:00:00Z",
                              "--ends", "2026-09-01T00:00:00Z"])  # fmt: skip
    assert bad.exit_code == 1 and "after starts_at" in bad.output
    assert runner.invoke(args=["campaign", "add", "x", "--starts", "a", "--ends", "b", "--tier", "lots"]).exit_code == 2
    assert runner.invoke(args=["campaign", "show", "nope"]).exit_code == 1


def test_two_appliers_crediting_one_inviter_never_lose_a_count(app, client, auth_headers):
    """PostgreSQL runs several appliers: the second credit waits for the first's commit, then counts on top of it."""
    db = svc(app).db
    if db.dialect != "postgresql":
        pytest.skip("one applier at a time on SQLite (its write lock)")
    made = campaign(client, auth_headers)
    follow(client, "o-alice")
    alice = follower_id(app, "o-alice")
    with db.sessions() as s:
        cid = s.scalar(select(referrals_model.Campaign.id).where(referrals_model.Campaign.name == made["name"]))
    got: list[int] = []
    first = db.engine.connect()
    tx = first.begin()
    with Session(bind=first) as session:  # joins the connection's transaction; closing it leaves that open
        assert _bump(session, cid, alice, 1, utcnow()) == 1
    second = threading.Thread(target=lambda: got.append(_second(db, cid, alice)))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting on the first's row lock, not counting from a stale 0
    tx.commit()
    first.close()
    second.join(10)
    assert got == [2]


def _second(db, campaign_id: int, inviter_id: int) -> int:
    with db.transaction() as session:
        return _bump(session, campaign_id, inviter_id, 1, utcnow())
