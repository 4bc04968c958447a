"""`flask contact ...`: one person, one contact. List merges, merge two identities by hand, undo a merge."""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import AppGroup

from foundation.services import services
from scrm import merge, merge_reads
from scrm.merge_models import MERGED, UNDONE

contact_cli = AppGroup("contact", help="Contacts: an OA follower and a WeCom contact of one person, merged.")
BY = "cli"


def _line(m: dict[str, Any]) -> str:
    primary, secondary = m["primary"] or {}, m["secondary"] or {}
    moved = ", ".join(f"{k} {v}" for k, v in sorted((m["moved"] or {}).items()))
    return (
        f"{m['id']}  {m['state']:<6}  {secondary.get('openid')} ({secondary.get('channel')}) -> "
        f"{primary.get('openid')} ({primary.get('channel')})  {m['reason']}  {m['created_at']}  moved: {moved or '-'}"
    )


@contact_cli.command("merges")
@click.option("--state", type=click.Choice([MERGED, UNDONE]), help="Only merges in this state.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The API's JSON, one merge a line.")
def list_merges(state: str | None, limit: int, as_json: bool) -> None:
    """Merges, newest first: ID, state, secondary -> primary, why, when, what moved."""
    with services().db.sessions() as session:
        items, _ = merge_reads.listing(session, limit=limit, state=state)
    if not items:
        click.echo("no merges")
    for m in items:
        click.echo(json.dumps(m, ensure_ascii=False) if as_json else _line(m))


@contact_cli.command("merge")
@click.argument("primary")
@click.argument("secondary")
def merge_by_hand(primary: str, secondary: str) -> None:
    """Merge SECONDARY (an external_userid or openid) into PRIMARY (the OA openid)."""
    try:
        with services().db.transaction() as session:
            row = merge.merge_openids(session, primary, secondary, by=BY)
            shown = merge_reads.describe(session, [row])[0]
    except merge.MergeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"merged: {_line(shown)}")


@contact_cli.command("unmerge")
@click.argument("merge_id", type=int)
def unmerge(merge_id: int) -> None:
    """Undo merge MERGE_ID: both identities as before; the pair is not merged again automatically."""
    try:
        with services().db.transaction() as session:
            row = merge.undo(session, merge_id, by=BY)
            shown = merge_reads.describe(session, [row])[0]
    except merge.MergeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"undone: {_line(shown)}")
