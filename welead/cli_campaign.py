"""`flask campaign ...`: referral poster campaigns: add, list, show (inviters ranked), export the invites as CSV.

The same rules as the API (scrm.referrals); a refusal exits 1 with the reason, nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

from foundation.clock import utcnow
from foundation.services import services
from scrm import referral_reports, referrals
from welead import campaign_admin

TIER = "INVITES[,tag=X][,points=N][,template=T][,reward=TEXT]"
campaign_cli = AppGroup("campaign", help="Referral poster campaigns (分享有礼 / 任务宝).")


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except referrals.CampaignError as exc:
        raise click.ClickException(str(exc)) from None


def _tier(text: str) -> dict[str, Any]:
    """INVITES[,tag=X][,points=N][,template=T][,reward=TEXT], e.g. 3,tag=ref:gold,points=20,template=referral_reward"""
    head, *parts = text.split(",")
    if not head.isdigit():
        raise click.BadParameter(f"{text!r}: {TIER}")
    tier: dict[str, Any] = {"invites": int(head)}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in ("tag", "points", "template", "reward"):
            raise click.BadParameter(f"{part!r}: one of tag=, points=, template=, reward=")
        tier[key] = int(value) if key == "points" and value.lstrip("-").isdigit() else value
    return tier


def _line(c: dict[str, Any]) -> str:
    tiers = ", ".join(str(t["invites"]) for t in c["tiers"]) or "-"
    return f"{c['name']:<20} {c['state']:<9} {c['starts_at']} → {c['ends_at']}  tiers {tiers}  {c['title']}"


@campaign_cli.command("add")
@click.argument("name")
@click.option("--title", help="shown on the built-in artwork and in reward messages")
@click.option("--starts", "starts_at", required=True, help="ISO 8601 UTC, e.g. 2026-12-01T00:00:00Z")
@click.option("--ends", "ends_at", required=True, help="ISO 8601 UTC (posters' codes expire then, ≤ 30 days each)")
@click.option("--tier", "tiers", multiple=True, help=f"{TIER} (repeat)")
@click.option("--unfollow-hours", type=int, default=24, show_default=True,
              help="an invitee who unfollows sooner is taken back off the count")  # fmt: skip
@click.option("--artwork", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PNG or JPEG (copied under instance/campaigns/); default: the built-in artwork")  # fmt: skip
@click.option("--message", help="customer-service text sent after the poster")
def add(name: str, title: str | None, starts_at: str, ends_at: str, tiers: tuple[str, ...], unfollow_hours: int,
        artwork: Path | None, message: str | None) -> None:  # fmt: skip
    """Create a campaign; ask for its poster with a playbook rule's `send_poster: NAME`."""
    body: dict[str, Any] = {"name": name, "starts_at": starts_at, "ends_at": ends_at, "unfollow_hours": unfollow_hours,
                            "tiers": [_tier(t) for t in tiers]}  # fmt: skip
    body.update({k: v for k, v in (("title", title), ("message", message)) if v})
    with _refusals():
        made = campaign_admin.create(body)
        if artwork is not None:
            made = campaign_admin.save_artwork(name, artwork.read_bytes())
    click.echo(_line(made))
    click.echo(f"scene {made['scene']}; playbook: - send_poster: {name}")


@campaign_cli.command("list")
def list_() -> None:
    for campaign in campaign_admin.listing():
        click.echo(_line(campaign))


@campaign_cli.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="the API's JSON")
def show(name: str, as_json: bool) -> None:
    """The campaign, its totals, inviters ranked and rewards given."""
    with _refusals():
        report = campaign_admin.show(name)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    click.echo(_line(report))
    t = report["totals"]
    click.echo(f"invites {t['invites']} live, {t['retracted']} retracted, {t['refused']} refused "
               f"{t['refused_by_reason'] or ''}; inviters {t['inviters']}, rewards {t['rewards']}")  # fmt: skip
    for row in report["inviters"]:
        click.echo(f"  #{row['rank']:<3} {row['openid']:<32} {row['invites']:>5}  rewarded at {row['rewards'] or '-'}")


@campaign_cli.command("export")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="default: stdout")
def export(name: str, output: Path | None) -> None:
    """Every invite as CSV: at, inviter, invitee, status, reason, retracted_at."""
    with _refusals(), services().db.sessions() as session:
        lines = referral_reports.invites_csv(session, referrals.get(session, name))
        if output is None:
            for line in lines:
                click.echo(line, nl=False)
            return
        with output.open("w", encoding="utf-8", newline="") as out:
            out.writelines(lines)
    click.echo(f"wrote {output}", err=True)


DEMO_TIERS = [
    {"invites": 3, "tag": "referral:3", "points": 10, "template": "referral_reward", "reward": "九折优惠券"},
    {"invites": 10, "tag": "referral:10", "points": 30, "reward": "免费试用一个月"},
]
DEMO = {"name": "demo-invite", "title": "邀请好友 赢好礼", "unfollow_hours": 24, "tiers": DEMO_TIERS}


@campaign_cli.command("load-demo-if-empty")
def load_demo_if_empty() -> None:
    """Create the demo playbook's poster campaign (30 days from now, built-in artwork) when there is no campaign."""
    if campaign_admin.listing():
        click.echo("a campaign exists already; demo campaign not created")
        return
    now = utcnow().replace(microsecond=0)
    dates = {"starts_at": now.isoformat() + "Z", "ends_at": (now + timedelta(days=30)).isoformat() + "Z"}
    with _refusals():
        click.echo(_line(campaign_admin.create({**DEMO, **dates})))
