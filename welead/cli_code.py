"""`flask code ...`: team live codes (渠道活码): add, list, show, make what is missing, sync the contact way now.

The same rules as the API (scrm.team_codes); a refusal exits 1 with the reason, nothing else changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

from foundation.services import services
from scrm import qr_image, team_codes
from scrm.code_rules import CodeRuleError
from welead import code_making
from welead.rep_codes import CodeFailure

code_cli = AppGroup("code", help="Team live codes: one QR code for several reps.")


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except (team_codes.TeamCodeError, CodeRuleError, qr_image.ImageError) as exc:
        raise click.ClickException(str(exc)) from None
    except CodeFailure as exc:
        code = exc.detail.get("errcode")
        raise click.ClickException(exc.message + (f" (errcode {code})" if code is not None else "")) from None


def _member(text: str) -> dict[str, Any]:
    """--member 3 or --member 3:2 (rep id, weight)."""
    rep, _, weight = text.partition(":")
    if not rep.isdigit() or (weight and not weight.isdigit()):
        raise click.BadParameter(f"{text!r}: REP_ID or REP_ID:WEIGHT")
    return {"rep_id": int(rep), **({"weight": int(weight)} if weight else {})}


def _line(code: dict[str, Any]) -> str:
    members = ", ".join(f"{m['rep_id']}" + (f"x{m['weight']}" if m.get("weight") else "") for m in code["members"])
    users = code["wecom"]["users"] if code["wecom"] else []
    state = "active" if code["active"] else "inactive"
    done = "" if code["complete"] else "  INCOMPLETE (flask code make)"
    return f"{code['id']:>5}  {state:<8} {code['scene']:<12} {code['name']:<24} members {members}  lists {users}{done}"


@code_cli.command("add")
@click.argument("name")
@click.option("--member", "members", multiple=True, required=True, help="REP_ID or REP_ID:WEIGHT (repeat)")
@click.option("--backup", "backup_rep_id", type=int, help="the rep who gets leads when no member is eligible")
@click.option("--tag", "tags", multiple=True, help="tag applied to everyone who comes through (repeat)")
@click.option("--welcome", help="WeCom welcome text for new contacts")
def add(name: str, members: tuple[str, ...], backup_rep_id: int | None, tags: tuple[str, ...],
        welcome: str | None) -> None:  # fmt: skip
    """Create the team code NAME and make its OA QR code and WeCom contact way."""
    body: dict[str, Any] = {"name": name, "members": [_member(m) for m in members], "tags": list(tags)}
    if backup_rep_id is not None:
        body["backup_rep_id"] = backup_rep_id
    if welcome is not None:
        body["welcome"] = welcome
    with _refusals():
        click.echo(_line(code_making.create(body)))


@code_cli.command("list")
def list_codes() -> None:
    """Every team code, one line each."""
    after = 0
    while True:
        with services().db.sessions() as session:
            rows, nxt = team_codes.page(session, after=after, limit=500)
            for code in rows:
                click.echo(_line(team_codes.describe(code)))
        if nxt is None:
            return
        after = nxt


@code_cli.command("show")
@click.argument("code_id", type=int)
def show(code_id: int) -> None:
    """The code as JSON (what GET /api/v1/codes/<id> answers)."""
    with _refusals():
        click.echo(json.dumps(code_making.read(code_id), ensure_ascii=False, indent=2))


@code_cli.command("make")
@click.argument("code_id", type=int)
def make(code_id: int) -> None:
    """Make a half WeChat failed to make at creation (the OA QR code or the WeCom contact way)."""
    with _refusals():
        made = code_making.make(code_id)
        click.echo(_line(code_making.read(code_id)) + ("" if made else "  (nothing was missing)"))


@code_cli.command("sync")
@click.argument("code_id", type=int)
def sync(code_id: int) -> None:
    """Re-list the WeCom contact way now (what the codes.sync job does at boundaries)."""
    from tasks.codes import sync as run_sync
    from tasks.registry import GiveUp, RetryLater

    try:
        click.echo(json.dumps(run_sync(code_id), ensure_ascii=False))
    except (GiveUp, RetryLater) as exc:
        raise click.ClickException(str(exc)) from None


@code_cli.command("qrcode")
@click.argument("code_id", type=int)
@click.option("--kind", type=click.Choice(team_codes.KINDS), default="oa", show_default=True)
@click.option("--size", type=int, default=qr_image.SIZE_DEFAULT, show_default=True, help="pixels wide")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file to write")
def qrcode(code_id: int, kind: str, size: int, out: Path) -> None:
    """Write the printable code (the code's name under it) to --out."""
    with _refusals(), services().db.sessions() as session:
        code = team_codes.get(session, code_id)
        content, name = team_codes.content(code, kind), code.name
        if content is None:
            raise click.ClickException(f"team code {code_id} has no {kind} code yet: flask code make {code_id}")
        out.write_bytes(qr_image.render(content, name, size))
    click.echo(f"wrote {out}")
