"""`flask event staff add|list|remove`: the staff of an event (the same rules as the API: scrm.event_staff)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from foundation.services import services
from scrm import event_staff

staff_cli = AppGroup("staff", help="Staff of an event: who goes on duty at its booths and gets its leads.")


@staff_cli.command("add")
@click.argument("event")
@click.option("--name", default="", help="shown to colleagues and in exports")
@click.option("--openid", help="their OA openid (a scan of a staff code is matched by it)")
@click.option("--rep", "rep_id", type=int, help="a rep's id (WeCom notifications, round-robin among reps)")
@click.option("--userid", help="a WeCom member id, for notifications")
def add(event: str, name: str, openid: str | None, rep_id: int | None, userid: str | None) -> None:
    """Register (or update) a staff of EVENT."""
    body = {"name": name, "openid": openid, "rep_id": rep_id, "userid": userid}
    try:
        with services().db.transaction() as session:
            staff, created = event_staff.add(session, event, body)
    except event_staff.StaffError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'added' if created else 'updated'} staff {staff['id']}: {_line(staff)}")


@staff_cli.command("list")
@click.argument("event")
def list_(event: str) -> None:
    """The staff of EVENT, with the booth each is on duty at today."""
    try:
        with services().db.sessions() as session:
            rows = event_staff.listing(session, event)
    except event_staff.StaffError as exc:
        raise click.ClickException(str(exc)) from None
    for staff in rows:
        booth = staff["on_duty_booth_id"]
        click.echo(f"{staff['id']:>5}  {_line(staff)}  {'on duty at booth ' + str(booth) if booth else 'off duty'}")


@staff_cli.command("remove")
@click.argument("event")
@click.argument("staff_id", type=int)
def remove(event: str, staff_id: int) -> None:
    """Unregister staff STAFF_ID of EVENT (their leads stay)."""
    try:
        with services().db.transaction() as session:
            removed = event_staff.remove(session, event, staff_id)
    except event_staff.StaffError as exc:
        raise click.ClickException(str(exc)) from None
    if not removed:
        raise click.ClickException(f"no staff {staff_id} in event {event!r}")
    click.echo(f"removed staff {staff_id}")


def _line(staff: dict) -> str:
    ids = [f"{k} {staff[k]}" for k in ("openid", "rep_id", "userid") if staff.get(k)]
    return f"{staff['name'] or '-'} ({', '.join(ids)})"
