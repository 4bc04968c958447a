"""Campaign changes shared by the API and `flask campaign`: the domain's checks (scrm.referrals) plus the one the
domain cannot make, that each tier's template is in the message library (tasks.send reads it), and artwork uploads
saved under instance/campaigns/."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, UnidentifiedImageError

from foundation.config import INSTANCE
from foundation.services import services
from scrm import referral_reports, referrals
from scrm.message_templates import TemplateError
from scrm.referral_models import Campaign
from tasks.send import message_library

ARTWORK_MAX = 10 * 1024 * 1024
FORMATS = {"PNG": ".png", "JPEG": ".jpg"}


def _templates(body: Any) -> None:
    tiers = body.get("tiers") if isinstance(body, dict) else None
    lib = message_library() if isinstance(tiers, list) else None
    for i, tier in enumerate(tiers or []):
        name = tier.get("template") if isinstance(tier, dict) else None
        if isinstance(name, str) and lib is not None:
            try:
                lib.get(name)
            except TemplateError as exc:
                raise referrals.CampaignError(f"tiers[{i}].template: {exc}") from None


def create(body: Any) -> dict[str, Any]:
    _templates(body)
    with services().db.transaction() as session:
        return referrals.describe(referrals.create(session, body))


def update(name: str, body: Any) -> dict[str, Any]:
    _templates(body)
    with services().db.transaction() as session:
        return referrals.describe(referrals.update(session, name, body))


def show(name: str) -> dict[str, Any]:
    with services().db.sessions() as session:
        return referral_reports.summary(session, referrals.get(session, name))


def listing() -> list[dict[str, Any]]:
    with services().db.sessions() as session:
        return [referrals.describe(c) for c in referrals.listing(session)]


def save_artwork(name: str, data: bytes) -> dict[str, Any]:
    """Store an uploaded PNG or JPEG as the campaign's artwork (instance/campaigns/<name>.<ext>)."""
    if not data or len(data) > ARTWORK_MAX:
        raise referrals.CampaignError("send a PNG or JPEG of at most 10 MB as the request body")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise referrals.CampaignError("the body is not a PNG or JPEG image") from None
    if kind not in FORMATS:
        raise referrals.CampaignError(f"the artwork is {kind}: send a PNG or JPEG")
    with services().db.transaction() as session:
        campaign: Campaign = referrals.get(session, name)
        relative = f"campaigns/{campaign.name}{FORMATS[kind]}"
        (INSTANCE / "campaigns").mkdir(parents=True, exist_ok=True)
        (INSTANCE / relative).write_bytes(data)
        return referrals.describe(referrals.update(session, name, {"artwork": relative}))
