"""`flask broadcast ...` (send with progress bars, status, pause, resume, cancel) and `flask messages ...`.

`send` fans out in this process (so the enqueue time and memory are the CLI's, visible in the first bar), then
follows the workers in a second bar. Ctrl-C only stops watching: the broadcast carries on, and if the fan-out was
cut short the scheduler's pump resumes it from its cursor.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from flask.cli import AppGroup
from tqdm import tqdm

from foundation.services import services
from scrm import broadcasts, deliveries
from scrm.delivery_models import PAUSED, RUNNING
from tasks import broadcast as broadcast_tasks
from tasks import pump, send

broadcast_cli = AppGroup("broadcast", help="Broadcast a library message to a segment.")
messages_cli = AppGroup("messages", help="The message library and the delivery pump.")

POLL = 0.5


def _segment(raw: str) -> Any:
    """A JSON filter, or a saved segment's name."""
    if raw.lstrip().startswith("{"):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--segment") from None
    return raw


def _json(raw: str | None, name: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None
    if not isinstance(value, dict):
        raise click.BadParameter("expected a JSON object", param_hint=name)
    return value


def _status(broadcast_id: int) -> dict[str, Any]:
    with services().db.sessions() as session:
        try:
            return broadcasts.status(session, broadcast_id)
        except deliveries.NotFound as exc:
            raise click.ClickException(str(exc)) from None


def _watch(broadcast_id: int, total: int) -> dict[str, Any]:
    """Follow the workers until the broadcast is done, paused or cancelled."""
    status = _status(broadcast_id)
    with tqdm(total=total, desc="send", unit="msg") as bar:
        while True:
            bar.n = status["finished"]
            bar.set_postfix(state=status["state"], sent=status["counts"].get("sent", 0), refresh=False)
            bar.refresh()
            if status["state"] != RUNNING:
                return status
            time.sleep(POLL)
            status = _status(broadcast_id)


def _summary(status: dict[str, Any]) -> None:
    click.echo(f"broadcast {status['id']}: {status['state']}  {json.dumps(status['counts'], sort_keys=True)}")
    if status["reasons"]:
        click.echo(f"  not sent, by reason: {json.dumps(status['reasons'], sort_keys=True)}")
    if status["retries"]:
        click.echo(f"  retries: {status['retries']}")
    if status["pause_reason"]:
        click.echo(f"  paused: {status['pause_reason']}")


@broadcast_cli.command("send")
@click.option("--segment", required=True, help='A saved segment\'s name, or a filter as JSON: \'{"tag": "vip"}\'.')
@click.option("--template", required=True, help="The library entry (templates/messages/<name>.yml).")
@click.option("--data", help="Extra data for the template, as a JSON object.")
@click.option("--channel", type=click.Choice(["template", "custom", "mass"]), help="Default: the entry's first.")
@click.option("--key", help="Idempotency key: sending the same key again resumes that broadcast, never sends twice.")
@click.option("--name", default="", help="A label for humans.")
@click.option("--wait/--no-wait", default=True, help="Follow the sending with a second progress bar.")
def send_cmd(
    segment: str, template: str, data: str | None, channel: str | None, key: str | None, name: str, wait: bool
) -> None:
    """Create a broadcast, fan it out here with a progress bar, then follow the workers."""
    r = send.rules()
    try:
        with services().db.transaction() as session:
            b, created = broadcasts.create(
                session,
                send.message_library(),
                template=template,
                segment=_segment(segment),
                data=_json(data, "--data"),
                channel=channel,
                key=key,
                name=name,
                created_by="cli",
                error_budget=r.error_budget,
                breaker_window=r.breaker_window,
            )
            bid = b.id
    except broadcasts.InvalidBroadcast as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"broadcast {bid} {'created' if created else 'exists (same key): resuming'}")
    with services().db.transaction() as session:
        audience = broadcasts.count_audience(session, bid)
    started = time.monotonic()
    with tqdm(total=audience, desc="enqueue", unit="follower") as bar:
        new = broadcast_tasks.fan_out(bid, progress=bar.update)
    click.echo(f"enqueued {new} deliveries in {time.monotonic() - started:.1f}s")
    status = _watch(bid, _status(bid)["total"]) if wait else _status(bid)
    _summary(status)


@broadcast_cli.command("status")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="The full status document.")
def status_cmd(broadcast_id: int, as_json: bool) -> None:
    """Counts per state, progress, skip reasons, pause reason."""
    status = _status(broadcast_id)
    if as_json:
        click.echo(json.dumps(status, indent=2, ensure_ascii=False))
    else:
        _summary(status)


@broadcast_cli.command("list")
def list_cmd() -> None:
    """The most recent broadcasts."""
    with services().db.sessions() as session:
        for b in broadcasts.listing(session):
            click.echo(f"{b['id']:>6}  {b['state']:<9} {b['channel']:<8} {b['total']:>8}  {b['name']}")


@broadcast_cli.command("pause")
@click.argument("broadcast_id", type=int)
@click.option("--reason", default="paused from the CLI")
def pause_cmd(broadcast_id: int, reason: str) -> None:
    """Stop sending; queued deliveries wait."""
    with services().db.transaction() as session:
        changed = broadcasts.pause(session, broadcast_id, reason)
    _changed(broadcast_id, changed, PAUSED)


@broadcast_cli.command("resume")
@click.argument("broadcast_id", type=int)
def resume_cmd(broadcast_id: int) -> None:
    """Carry on after a pause (an operator's or the circuit breaker's)."""
    _changed(broadcast_id, broadcast_tasks.resume(broadcast_id), RUNNING)


@broadcast_cli.command("cancel")
@click.argument("broadcast_id", type=int)
def cancel_cmd(broadcast_id: int) -> None:
    """Cancel: queued deliveries become cancelled."""
    with services().db.transaction() as session:
        changed = broadcasts.cancel(session, broadcast_id) is not None
    _changed(broadcast_id, changed, "cancelled")


def _changed(broadcast_id: int, changed: bool, wanted: str) -> None:
    status = _status(broadcast_id)
    _summary(status)
    if not changed and status["state"] != wanted:
        raise click.ClickException(f"broadcast {broadcast_id} is {status['state']}")


@messages_cli.command("check")
def check_cmd() -> None:
    """Validate every file of the message library; exit 1 when one is invalid."""
    lib = send.message_library()
    for name, tpl in sorted(lib.entries.items()):
        click.echo(f"ok       {name}  ({tpl.kind}; {', '.join(tpl.channels)})")
    for name, error in sorted(lib.errors.items()):
        click.echo(f"invalid  {name}: {error}", err=True)
    if lib.errors:
        raise SystemExit(1)


@messages_cli.command("pump")
def pump_cmd() -> None:
    """Run the delivery pump once (what the scheduler does every few seconds)."""
    click.echo(json.dumps(pump.pump()))
