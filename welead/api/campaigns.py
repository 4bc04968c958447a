"""Referral poster campaigns (分享有礼 / 任务宝): create, list, read with the inviters ranked, change, upload the
artwork, export the invites. Admins and marketers manage them; the rules are scrm.referrals'."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from apiflask import Schema, abort
from apiflask.fields import DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, Range, Regexp
from flask import Response, request, stream_with_context

from foundation.services import services
from scrm import referral_reports, referrals
from welead import campaign_admin
from welead.api import bp
from welead.api.access import allow, answers, raw_body
from welead.api.schemas import opt, req

MANAGERS = ("marketer",)
ABOUT = (
    "Fields: name (1-40 of a-z 0-9 _ -; the scene is `ref:<name>:<follower id>`), title, artwork (a .png/.jpg path"
    " under instance/, or PUT .../artwork; none: the built-in artwork), starts_at and ends_at (ISO 8601, UTC),"
    " tiers [{invites, tag?, points?, template?, reward?}], unfollow_hours (an invitee who unfollows sooner is taken"
    " back off the count; default 24), message (a customer-service text sent after the poster). What asks for the"
    " poster is a playbook rule's `send_poster: <name>` (docs/referrals.md)."
)


class TierIn(Schema):
    invites = Integer(required=True, validate=Range(1, referrals.MAX_INVITES))
    tag = String(validate=Length(1, 64), metadata={"description": "given to the inviter at this count"})
    points = Integer(validate=Range(-referrals.MAX_POINTS, referrals.MAX_POINTS),
                     metadata={"description": "score points (the stage model)"})  # fmt: skip
    template = String(validate=Length(1, 64), metadata={"description": "a message library template, for the inviter"})
    reward = String(validate=Length(1, 200), metadata={"description": "what the reward is: the template's data.reward"})


class CampaignIn(Schema):
    """Documented here, checked by scrm.referrals (the API and `flask campaign` refuse the same things)."""

    name = String(validate=Regexp(referrals.NAME.pattern), metadata={"description": "required to create; fixed"})
    title = String(validate=Length(1, 128))
    artwork = String(allow_none=True, validate=Length(max=255), metadata={"description": "a path under instance/"})
    starts_at = DateTime(metadata={"description": "UTC, e.g. 2026-12-01T00:00:00Z; required to create"})
    ends_at = DateTime(metadata={"description": "after starts_at; required to create"})
    tiers = List(Nested(TierIn), validate=Length(max=referrals.MAX_TIERS))
    unfollow_hours = Integer(validate=Range(0, referrals.MAX_WINDOW_HOURS))
    message = String(allow_none=True, validate=Length(1, 600))


class CampaignOut(Schema):
    name = req(String())
    title = req(String())
    artwork = opt(String)
    starts_at = req(String())
    ends_at = req(String())
    state = req(String(metadata={"description": "scheduled, running or ended"}))
    tiers = req(List(Dict()))
    unfollow_hours = req(Integer())
    message = opt(String)
    scene = req(String())
    created_at = opt(String)
    updated_at = opt(String)


class CampaignPage(Schema):
    items = req(List(Nested(CampaignOut)))


class CampaignReport(CampaignOut):
    totals = req(Dict(metadata={"description": "counted (live), retracted, refused (by reason), inviters, rewards"}))
    inviters = req(List(Dict(), metadata={"description": "ranked: rank, openid, invites, rewards (tiers)"}))
    rewards = req(List(Dict(), metadata={"description": "openid, tier, at, applied, note (count fell below)"}))


@contextmanager
def _rules() -> Iterator[None]:
    try:
        yield
    except referrals.CampaignError as exc:
        abort(exc.status, str(exc))


@bp.post("/campaigns")
@allow(*MANAGERS)
@bp.input(CampaignIn, arg_name="body", validation=False)
@bp.doc(summary="Create a poster campaign", description=ABOUT, responses=answers(CampaignOut, 409, status=201))
def create_campaign(body: Any):
    with _rules():
        return campaign_admin.create(request.get_json(silent=True)), 201


@bp.get("/campaigns")
@allow(*MANAGERS)
@bp.doc(summary="List poster campaigns", responses=answers(CampaignPage))
def list_campaigns():
    return {"items": campaign_admin.listing()}


@bp.get("/campaigns/<name>")
@allow(*MANAGERS)
@bp.doc(
    summary="One campaign, its inviters ranked",
    description="Inviters by live count (counted invites minus those who unfollowed within the window), the"
    " totals by outcome, and the rewards given (a reward stays when its inviter's count later falls; `note` says so).",
    responses=answers(CampaignReport, 404),
)
def get_campaign(name: str):
    with _rules():
        return campaign_admin.show(name)


@bp.patch("/campaigns/<name>")
@allow(*MANAGERS)
@bp.input(CampaignIn, arg_name="body", validation=False)
@bp.doc(summary="Change a campaign", description="Any subset of the fields but name. " + ABOUT,
        responses=answers(CampaignOut, 404, 409))  # fmt: skip
def patch_campaign(name: str, body: Any):
    payload = request.get_json(silent=True)
    with _rules():
        if isinstance(payload, dict) and "name" in payload and payload["name"] != name:
            abort(400, "name: a campaign's name cannot change (its posters' codes carry it)")
        return campaign_admin.update(name, {k: v for k, v in (payload or {}).items() if k != "name"}
                                     if isinstance(payload, dict) else payload)  # fmt: skip


@bp.put("/campaigns/<name>/artwork")
@allow(*MANAGERS)
@raw_body(("image/png", "image/jpeg"), "the artwork image (PNG or JPEG, at most 10 MB)", {"type": "string",
          "format": "binary"})  # fmt: skip
@bp.doc(summary="Upload a campaign's artwork", description="Saved as instance/campaigns/<name>.png|jpg; posters"
        " made from now on use it (cached posters keep theirs until their media expires).",
        responses=answers(CampaignOut, 404))  # fmt: skip
def put_artwork(name: str):
    with _rules():
        return campaign_admin.save_artwork(name, request.get_data())


@bp.get("/campaigns/<name>/invites.csv")
@allow(*MANAGERS)
@bp.doc(
    summary="A campaign's invites as CSV",
    description="One line per subscribe or scan through a poster: " + ", ".join(referral_reports.CSV_COLUMNS) + ".",
    responses={200: {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
               **{k: v for k, v in answers(None, 404).items() if k != 200}},
)  # fmt: skip
def invites_csv(name: str):
    with _rules(), services().db.sessions() as session:
        campaign_id = referrals.get(session, name).id

    def lines() -> Iterator[str]:
        with services().db.sessions() as session:
            campaign = session.get(referrals.Campaign, campaign_id)
            yield from referral_reports.invites_csv(session, campaign)

    headers = {"Content-Disposition": f'attachment; filename="{name}-invites.csv"'}
    return Response(stream_with_context(lines()), mimetype="text/csv", headers=headers)
