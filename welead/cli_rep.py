"""`flask rep ...`: add, list, show, confirm, deactivate and activate reps; make and print their personal codes.

The same rules as the API (scrm.reps): a refusal exits 1 with the reason, nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import yaml
from flask.cli import AppGroup

from foundation.services import services
from scrm import personal_codes, qr_image, reps
from scrm.code_rules import CodeRuleError
from scrm.models import Rep

rep_cli = AppGroup("rep", help="Sales reps and their personal QR codes.")


@contextmanager
def _refusals() -> Iterator[None]:
    from welead.rep_codes import CodeFailure

    try:
        yield
    except (reps.RepError, CodeRuleError, qr_image.ImageError) as exc:
        raise click.ClickException(str(exc)) from None
    except CodeFailure as exc:
        code = exc.detail.get("errcode")
        raise click.ClickException(exc.message + (f" (errcode {code})" if code is not None else "")) from None


def _hours(value: str | None) -> Any:
    """--hours: a JSON/YAML file, or the schedule written inline; "none" clears it."""
    if value is None or value.lower() in ("none", "null"):
        return None
    text = Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise click.ClickException(f"--hours: not JSON or YAML: {exc}") from None


def _line(rep: dict[str, Any]) -> str:
    caps = f"daily {rep['daily_cap'] if rep['daily_cap'] is not None else '-'}"
    caps += f", open {rep['open_cap'] if rep['open_cap'] is not None else '-'}"
    manager = f" manager {rep['manager_id']}" if rep["manager_id"] else ""
    return (
        f"{rep['id']:>5}  {rep['status']:<11} {rep['userid']:<20} {rep['name']:<20} weight {rep['weight']:<3}"
        f" caps {caps}  leads {rep['open_leads']} (+{rep['assigned_today']} today){manager}"
    )


def _change(rep_id: int, change: Callable[[Any, Rep], bool]) -> tuple[dict[str, Any], bool]:
    """Apply one of scrm.reps' changes; the rep's JSON after it, and whether anything changed."""
    with _refusals(), services().db.transaction() as session:
        rep = reps.get(session, rep_id)
        changed = change(session, rep)
        session.flush()
        return reps.serialize(session, [rep])[0], changed


@rep_cli.command("add")
@click.argument("userid")
@click.option("--name", help="shown on codes and notifications (default: the userid)")
@click.option("--weight", type=int, help="1-100, share of round-robin assignment (default 1)")
@click.option("--manager", "manager_id", type=int, help="the manager's rep id")
@click.option("--daily-cap", type=int, help="new leads per local day")
@click.option("--open-cap", type=int, help="open leads held at once")
@click.option("--hours", help="working hours: a JSON/YAML file or inline, e.g. '{weekly: {mon: [09:00-18:00]}}'")
def add(userid: str, hours: str | None, **options: Any) -> None:
    """Add the rep whose WeCom member id is USERID (confirmed: an admin added it)."""
    fields = {"userid": userid, **{k: v for k, v in options.items() if v is not None}}
    if hours is not None:
        fields["hours"] = _hours(hours)
    with _refusals(), services().db.transaction() as session:
        rep = reps.serialize(session, [reps.create(session, fields)])[0]
    click.echo(f"rep {rep['id']} added: {rep['userid']} ({rep['name']})")


@rep_cli.command("list")
@click.option("--status", type=click.Choice(reps.STATUSES), help="only active, unconfirmed or inactive reps")
def list_reps(status: str | None) -> None:
    """Every rep: status (unconfirmed = first seen in a WeCom callback, awaiting confirmation), caps, leads."""
    after, shown = 0, 0
    with services().db.sessions() as session:
        while True:
            rows, after = reps.page(session, status=status, after=after, limit=500)
            for rep in reps.serialize(session, rows):
                click.echo(_line(rep))
            shown += len(rows)
            if after is None:
                break
    if not shown:
        click.echo("no reps" + (f" with status {status}" if status else ""))


@rep_cli.command("show")
@click.argument("rep_id", type=int)
def show(rep_id: int) -> None:
    """One rep, as the API serves it, with its personal codes."""
    with _refusals(), services().db.sessions() as session:
        rep = reps.get(session, rep_id)
        codes = personal_codes.describe(personal_codes.find(session, rep_id), rep_id)
        out = {**reps.serialize(session, [rep])[0], "codes": codes}
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))


@rep_cli.command("confirm")
@click.argument("rep_id", type=int)
def confirm(rep_id: int) -> None:
    """Accept a rep first seen in a WeCom callback: it takes assignments from now on."""
    rep, changed = _change(rep_id, lambda _s, r: reps.confirm(r))
    click.echo(f"rep {rep_id} ({rep['userid']}) is {rep['status']}" + ("" if changed else " (confirmed already)"))


@rep_cli.command("deactivate")
@click.argument("rep_id", type=int)
def deactivate(rep_id: int) -> None:
    """No new leads for REP_ID; its open leads are queued for reassignment."""
    rep, changed = _change(rep_id, reps.deactivate)
    if not changed:
        click.echo(f"rep {rep_id} ({rep['userid']}) was inactive already (since {rep['deactivated_at']})")
        return
    click.echo(f"rep {rep_id} ({rep['userid']}) deactivated at {rep['deactivated_at']}")
    click.echo(f"its {rep['open_leads']} open lead(s) are queued for reassignment")


@rep_cli.command("activate")
@click.argument("rep_id", type=int)
def activate(rep_id: int) -> None:
    """Take REP_ID back into assignment."""
    rep, changed = _change(rep_id, lambda _s, r: reps.activate(r))
    click.echo(f"rep {rep_id} ({rep['userid']}) is {rep['status']}" + ("" if changed else " (active already)"))


@rep_cli.command("codes")
@click.argument("rep_id", type=int)
def codes(rep_id: int) -> None:
    """Make REP_ID's personal codes (OA QR code and WeCom contact way) if missing, and print them."""
    from welead.rep_codes import ensure

    with _refusals():
        out, made = ensure(rep_id)
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    click.echo("codes made" if made else "codes existed already")


@rep_cli.command("qrcode")
@click.argument("rep_id", type=int)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file")
@click.option("--kind", type=click.Choice(personal_codes.KINDS), default="oa", show_default=True)
@click.option("--size", type=int, default=qr_image.SIZE_DEFAULT, show_default=True, help="width in pixels")
def qrcode(rep_id: int, out: Path, kind: str, size: int) -> None:
    """Write REP_ID's printable QR code (its name under the code) to OUT."""
    with _refusals():
        with services().db.sessions() as session:
            rep = reps.get(session, rep_id)
            content = personal_codes.content(personal_codes.find(session, rep_id), kind)
        if content is None:
            raise click.ClickException(f"rep {rep_id} has no {kind} code yet: `flask rep codes {rep_id}` makes it")
        out.write_bytes(qr_image.render(content, rep.name or rep.userid, size))
    click.echo(f"wrote {out} ({kind} code of rep {rep_id}, {size} px wide)")
