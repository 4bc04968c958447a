"""`flask event ...`: events and booths from the command line: add, list, make the codes (and print them), export
the leads. The same rules as the API (scrm.events); a refusal exits 1 with the reason, nothing else changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from foundation.services import services
from scrm import booth_replies, event_stats, events
from scrm.event_models import Event
from welead import event_codes
from welead.rep_codes import CodeFailure

event = AppGroup("event", help="Events and booths: codes to print, check-ins, leads.")


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except events.EventError as exc:
        raise click.ClickException(str(exc)) from None
    except CodeFailure as exc:
        code = exc.detail.get("errcode")
        raise click.ClickException(exc.message + (f" (errcode {code})" if code is not None else "")) from None


def _booth(text: str) -> dict[str, str]:
    """--booth A1 or --booth "A1=Hall 1, stand A1" (slug, name)."""
    slug, _, name = text.partition("=")
    return {"slug": slug, **({"name": name} if name else {})}


@event.command("add")
@click.argument("slug")
@click.option("--name", help="shown in replies and on the printed codes (default: the slug)")
@click.option("--starts", "starts_at", required=True, help="ISO date-time, e.g. 2026-05-20T09:00+08:00")
@click.option("--ends", "ends_at", required=True, help="ISO date-time, after --starts")
@click.option("--codes", "code_kind", type=click.Choice(events.CODE_KINDS), default="temporary", show_default=True,
              help="temporary codes expire at the end (≤ 30 days); permanent ones count against 100,000")  # fmt: skip
@click.option("--booth", "booths", multiple=True, help='SLUG or "SLUG=Name" (repeat)')
def add(slug: str, name: str | None, starts_at: str, ends_at: str, code_kind: str, booths: tuple[str, ...]) -> None:
    """Create an event with its booths, and make their codes when WeChat allows it now."""
    body = {"slug": slug, "starts_at": starts_at, "ends_at": ends_at, "code_kind": code_kind,
            "booths": [_booth(b) for b in booths], **({"name": name} if name else {})}  # fmt: skip
    svc = services()
    with _refusals():
        with svc.db.transaction() as session:
            events.create(session, body)
        event_codes.try_make(slug)
    _announce()
    _show(event_codes.describe(slug))


def _announce() -> None:
    svc = services()
    with svc.db.sessions() as session:
        booth_replies.announce(session.connection(), svc.redis_slow)


def _show(found: dict) -> None:
    click.echo(f"{found['slug']}  {found['name']}  {found['starts_at']} → {found['ends_at']}  ({found['code_kind']})")
    for booth in found["booths"]:
        codes = booth["codes"]
        state = "codes ready" if codes["complete"] else f"NO CODES: {codes['error'] or 'flask event codes'}"
        click.echo(f"  {booth['scene']:<40} {booth['name']:<24} {state}")


@event.command("list")
@click.option("--json", "as_json", is_flag=True, help="the API's JSON")
def list_events(as_json: bool) -> None:
    """Every event, newest first, with its booths."""
    with services().db.sessions() as session:
        found = [events.describe(session, e) for e in session.scalars(select(Event).order_by(Event.starts_at.desc()))]
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    for item in found:
        _show(item)


@event.command("codes")
@click.argument("slug")
@click.option("--renew", is_flag=True, help="make every code again (after the end moved, or codes expired)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="also write the PDF here")
@click.option("--layout", type=click.Choice(["page", "sheet"]), default="page", show_default=True)
def codes(slug: str, renew: bool, output: Path | None, layout: str) -> None:
    """Make the booths' missing codes; with -o, write the printable PDF."""
    with _refusals():
        made = event_codes.make(slug, renew=renew)
        click.echo(f"{made} code(s) made")
        if output is not None:
            output.write_bytes(event_codes.pdf(slug, layout))
            click.echo(f"wrote {output}")
    _show(event_codes.describe(slug))


@event.command("export")
@click.argument("slug")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--masked", is_flag=True, help="mask phone numbers (138****1234), as marketers see them")
def export(slug: str, fmt: str, output: Path, masked: bool) -> None:
    """Write the event's leads (the CLI runs as an admin: numbers in full unless --masked)."""
    with _refusals(), services().db.sessions() as session:
        found = events.get(session, slug)
        rows = event_stats.lead_rows(session, found, unmasked=not masked)
    output.write_bytes(event_stats.to_csv(rows) if fmt == "csv" else event_stats.to_xlsx(rows, slug))
    click.echo(f"{len(rows)} lead(s) written to {output}")


@event.command("stats")
@click.argument("slug")
def stats(slug: str) -> None:
    """The staff figures as JSON (what GET /api/v1/events/<slug>/stats answers)."""
    with _refusals(), services().db.sessions() as session:
        click.echo(json.dumps(event_stats.stats(session, events.get(session, slug)), ensure_ascii=False, indent=2))


@event.command("live-link")
@click.argument("slug")
def live_link(slug: str) -> None:
    """Print a signed link to the event's live page for the staff's phones (valid 30 days)."""
    from welead.event_pages import link

    with _refusals(), services().db.sessions() as session:
        events.get(session, slug)
    click.echo(link(slug))
