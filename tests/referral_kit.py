"""Shared by the referral tests: a campaign, a playbook that asks for posters, posting and draining, reading back."""

from __future__ import annotations

import io
import itertools
import time
from datetime import timedelta
from typing import Any

from PIL import Image
from sqlalchemy import func, select

from foundation.clock import utcnow
from scrm.models import Follower, Outbox
from scrm.referral_models import ReferralInvite
from tasks.outbox import sweep
from tasks.worker import run_worker
from tests.helpers import post
from tests.messaging_kit import drain as drain_messages
from tests.messaging_kit import sandbox, svc
from wechat.sandbox_media import media

PLAYBOOK = """
name: referrals-test
rules:
  - name: welcome
    when: subscribe
    do:
      - reply: "欢迎关注!"
  - name: poster-keyword
    when: {text: {keywords: [海报, poster], exact: true}}
    do:
      - send_poster: xmas
  - name: poster-menu
    when: {click: MENU_POSTER}
    do:
      - send_poster: xmas
      - reply: "海报马上到"
  - name: old-poster
    when: {text: 旧海报}
    do:
      - send_poster: old
"""
_clock = itertools.count(int(time.time()) - 100_000, 7)


def when(offset: timedelta = timedelta(0)) -> str:
    return (utcnow() + offset).replace(microsecond=0).isoformat() + "Z"


def campaign(client, headers, name: str = "xmas", **fields: Any) -> dict:
    body = {"name": name, "title": "双十二分享有礼", "starts_at": when(-timedelta(days=3)),
            "ends_at": when(timedelta(days=7)), "unfollow_hours": 24,
            "tiers": [{"invites": 2, "tag": "ref:silver", "points": 10, "template": "referral_reward",
                       "reward": "九折优惠券"}, {"invites": 3, "tag": "ref:gold", "points": 20}], **fields}  # fmt: skip
    answer = client.post("/api/v1/campaigns", json=body, headers=headers)
    assert answer.status_code == 201, answer.json
    return answer.json


def load_playbook(runner, tmp_path) -> None:
    path = tmp_path / "referrals.yml"
    path.write_text(PLAYBOOK, encoding="utf-8")
    done = runner.invoke(args=["playbook", "load", str(path)])
    assert done.exit_code == 0, done.output


def follow(client, openid: str, scene: str | None = None, at: int | None = None):
    """A subscribe (through a QR code with `scene`), applied; `at` is its CreateTime (default: a fresh past one)."""
    options = {"scene": scene} if scene else {}
    return post(client, "subscribe", openid=openid, create_time=at or next(_clock), **options)


def unfollow(client, openid: str, at: int | None = None):
    return post(client, "unsubscribe", openid=openid, create_time=at or next(_clock))


def ask(client, openid: str, text: str = "海报"):
    return post(client, "text", openid=openid, content=text, create_time=next(_clock))


def work(app, timeout: float = 30.0) -> None:
    """Run the queued jobs (posters, rewards) and the deliveries they queue. A job that asked to run again later
    (RetryLater: the sandbox answered too slowly on a loaded machine) is waited for and pushed, as the sweeper would."""
    deadline = time.monotonic() + timeout
    while True:
        run_worker(app, burst=True)
        drain_messages(app)
        if not _retrying(app) or time.monotonic() > deadline:
            return
        time.sleep(0.2)
        with app.app_context():
            sweep(stale_seconds=0)


def _retrying(app) -> int:
    """Referral jobs that ran, failed transiently and wait for their next try."""
    with svc(app).db.sessions() as s:
        return s.scalar(select(func.count()).select_from(Outbox).where(
            Outbox.done_at.is_(None), Outbox.attempts > 0, Outbox.task.startswith("referral.")))  # fmt: skip


def follower_id(app, openid: str) -> int:
    with svc(app).db.sessions() as s:
        found = s.scalar(select(Follower.id).where(Follower.openid == openid))
    assert found is not None
    return found


def invites(app) -> list[tuple[str, str | None]]:
    """(status, reason) of every invite, in order."""
    with svc(app).db.sessions() as s:
        return [(r.status, r.reason) for r in s.scalars(select(ReferralInvite).order_by(ReferralInvite.id))]


def report(client, headers, name: str = "xmas") -> dict:
    answer = client.get(f"/api/v1/campaigns/{name}", headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


def sent(app, endpoint: str) -> list[dict]:
    return sandbox(app).sent(f"oa/{endpoint}")


def poster_image(app, media_id: str) -> Image.Image:
    data = media(sandbox(app), media_id)
    assert data is not None and data.startswith(b"\x89PNG")
    return Image.open(io.BytesIO(data))
