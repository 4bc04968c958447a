"""Referral poster campaigns: what a campaign is (checked the same way for the API and `flask campaign`), its scene
codes, and reading one for the applier and the jobs.

A campaign has a `name` (the scene's middle part: `ref:<name>:<follower id>`), a title, an artwork (a PNG/JPEG
under instance/, or the built-in one), `starts_at`/`ends_at`, tiers (`[{invites: 3, tag: ..., points: ...,
template: ..., reward: ...}]`), an unfollow window in hours (an invitee who unfollows sooner is taken back off the
count) and an optional `message`, a customer-service text sent after the poster. What asks for the poster is the
playbook: a rule's `send_poster: <campaign>` (a keyword, a menu CLICK, any trigger), decided in the request like a
reply, so the follower is answered at once and the poster follows from a job (tasks.referrals).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from foundation.config import INSTANCE
from foundation.numbers import ascii_int
from scrm import tags
from scrm.referral_models import Campaign

SCENE = "ref"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # scene_str ≤ 64: "ref:" + 40 + ":" + a 19-digit id
QR_MAX = timedelta(days=30)  # WeChat's longest temporary QR code
MAX_TIERS, MAX_INVITES, MAX_POINTS, MAX_WINDOW_HOURS = 10, 100_000, 10_000, 24 * 90
ARTWORK_TYPES = (".png", ".jpg", ".jpeg")
DEFAULT_REPLY = "你的专属海报正在生成, 稍等几秒就到"
FIELDS = ("title", "artwork", "starts_at", "ends_at", "tiers", "unfollow_hours", "message")


class CampaignError(ValueError):
    """A campaign the rules refuse; `status` is the HTTP status the API answers."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def scene(campaign: str, follower_id: int) -> str:
    return f"{SCENE}:{campaign}:{follower_id}"


def parse_scene(value: str | None) -> tuple[str, int | None] | None:
    """(campaign name, inviter id) of a `ref:<campaign>:<id>` scene; the id is None when it is not a number.
    None for any other scene."""
    parts = (value or "").split(":")
    if len(parts) != 3 or parts[0] != SCENE or not parts[1]:
        return None
    return parts[1], ascii_int(parts[2], 1)


def find(session: Session, name: str) -> Campaign | None:
    return session.scalar(select(Campaign).where(Campaign.name == name))


def get(session: Session, name: str) -> Campaign:
    found = find(session, name) if isinstance(name, str) else None
    if found is None:
        raise CampaignError(f"no campaign {name!r}", 404)
    return found


def state(campaign: Campaign, now: datetime | None = None) -> str:
    """scheduled, running or ended."""
    now = now or utcnow()
    return "scheduled" if now < campaign.starts_at else "ended" if now >= campaign.ends_at else "running"


def qr_seconds(campaign: Campaign, now: datetime) -> int:
    """How long a poster's temporary code may live: until the campaign ends, at most WeChat's 30 days."""
    return int(min(campaign.ends_at - now, QR_MAX).total_seconds())


def artwork_path(campaign: Campaign) -> Path | None:
    """The campaign's artwork file, None for the built-in artwork."""
    return INSTANCE / campaign.artwork if campaign.artwork else None


def create(session: Session, body: Any) -> Campaign:
    """A new campaign from the API's or the CLI's fields (name, starts_at and ends_at required)."""
    data = _mapping(body)
    name = data.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise CampaignError("name: 1-40 lower-case letters, digits, _ or -, starting with a letter or digit")
    if find(session, name) is not None:
        raise CampaignError(f"campaign {name!r} exists already", 409)
    for needed in ("starts_at", "ends_at"):
        if needed not in data:
            raise CampaignError(f"{needed}: required")
    now = utcnow()
    campaign = Campaign(name=name, title=name, tiers=[], unfollow_hours=24, created_at=now, updated_at=now)
    _apply(session, campaign, data)
    session.add(campaign)
    session.flush()
    return campaign


def update(session: Session, name: str, body: Any) -> Campaign:
    campaign = get(session, name)
    _apply(session, campaign, _mapping(body))
    campaign.updated_at = utcnow()
    session.flush()
    return campaign


def _mapping(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise CampaignError("a JSON object is expected")
    unknown = set(body) - {"name", *FIELDS}
    if unknown:
        raise CampaignError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
    return body


def _apply(session: Session, campaign: Campaign, data: dict[str, Any]) -> None:
    for field in FIELDS:
        if field in data:
            setattr(campaign, field, CHECKS[field](data[field]))
    if campaign.ends_at <= campaign.starts_at:
        raise CampaignError("ends_at: must be after starts_at")


def _text(limit: int, field: str, empty: bool = True) -> Any:
    def check(value: Any) -> str | None:
        if value is None and empty:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise CampaignError(f"{field}: text of 1-{limit} characters")
        return value

    return check


def _when(field: str) -> Any:
    def check(value: Any) -> datetime:
        if not isinstance(value, str):
            raise CampaignError(f"{field}: an ISO 8601 date-time (UTC), e.g. 2026-12-31T23:59:00Z")
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CampaignError(f"{field}: an ISO 8601 date-time (UTC), e.g. 2026-12-31T23:59:00Z") from None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        if not 2000 <= parsed.year <= 2999:
            raise CampaignError(f"{field}: a year from 2000 to 2999")
        return parsed

    return check


def _hours(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WINDOW_HOURS:
        raise CampaignError(f"unfollow_hours: a whole number of hours from 0 to {MAX_WINDOW_HOURS}")
    return value


def _artwork(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 255:
        raise CampaignError("artwork: a path under instance/ (PNG or JPEG)")
    path = (INSTANCE / value).resolve()
    if not path.is_relative_to(INSTANCE.resolve()) or path.suffix.lower() not in ARTWORK_TYPES:
        raise CampaignError("artwork: a .png or .jpg path under instance/")
    if not path.is_file():
        raise CampaignError(f"artwork: no file instance/{value}")
    return str(path.relative_to(INSTANCE.resolve()))


def _tiers(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_TIERS:
        raise CampaignError(f"tiers: a list of at most {MAX_TIERS} tiers")
    out = [_tier(i, t) for i, t in enumerate(value)]
    counts = [t["invites"] for t in out]
    if len(set(counts)) != len(counts):
        raise CampaignError("tiers: two tiers with the same invites")
    return sorted(out, key=lambda t: t["invites"])


def _tier(i: int, tier: Any) -> dict[str, Any]:
    where = f"tiers[{i}]"
    if not isinstance(tier, dict) or set(tier) - {"invites", "tag", "points", "template", "reward"}:
        raise CampaignError(f"{where}: {{invites, tag?, points?, template?, reward?}}")
    invites = tier.get("invites")
    if isinstance(invites, bool) or not isinstance(invites, int) or not 1 <= invites <= MAX_INVITES:
        raise CampaignError(f"{where}.invites: a whole number from 1 to {MAX_INVITES}")
    out: dict[str, Any] = {"invites": invites}
    points = tier.get("points")
    if points is not None:
        if isinstance(points, bool) or not isinstance(points, int) or not -MAX_POINTS <= points <= MAX_POINTS:
            raise CampaignError(f"{where}.points: a whole number from -{MAX_POINTS} to {MAX_POINTS}")
        out["points"] = points
    limits = {"tag": tags.MAX_NAME, "template": 64, "reward": 200}
    for field, limit in limits.items():
        if tier.get(field) is not None:
            out[field] = _text(limit, f"{where}.{field}", empty=False)(tier[field])
    return out


CHECKS = {
    "title": _text(128, "title", empty=False),
    "artwork": _artwork,
    "starts_at": _when("starts_at"),
    "ends_at": _when("ends_at"),
    "tiers": _tiers,
    "unfollow_hours": _hours,
    "message": _text(600, "message"),
}


def describe(campaign: Campaign, now: datetime | None = None) -> dict[str, Any]:
    return {
        "name": campaign.name, "title": campaign.title, "artwork": campaign.artwork,
        "starts_at": iso(campaign.starts_at), "ends_at": iso(campaign.ends_at), "state": state(campaign, now),
        "tiers": campaign.tiers, "unfollow_hours": campaign.unfollow_hours, "message": campaign.message,
        "scene": scene(campaign.name, 0).rsplit(":", 1)[0] + ":<follower id>",
        "created_at": iso(campaign.created_at), "updated_at": iso(campaign.updated_at),
    }  # fmt: skip


def listing(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.id)))
