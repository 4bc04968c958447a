"""`flask broadcast ...` (send with progress bars, status, pause, resume, cancel) and `flask messages ...`.

`send` fans out in this process (so the enqueue time and memory are the CLI's, visible in the first bar), then
follows the workers in a second bar. Ctrl-C only stops watching: the broadcast carries on, and if the fan-out was
cut short the scheduler's pump resumes it from its cursor.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask.cli import AppGroup
from tqdm import tqdm

from foundation.clock import utcnow
from foundation.services import services
from scrm import audience, broadcasts, deliveries, segments
from scrm.delivery_models import PAUSED, RUNNING
from scrm.guards import SendRules, quiet_until
from tasks import broadcast as broadcast_tasks
from tasks import pump, send

broadcast_cli = AppGroup("broadcast", help="Broadcast a library message to a segment.")
messages_cli = AppGroup("messages", help="The message library and the delivery pump.")

POLL = 0.5


def _segment(raw: str) -> Any:
    """A query string, a JSON filter or a saved segment's name: the forms `flask segment count` takes."""
    try:
        return audience.normalise(raw)
    except audience.SegmentError as exc:
        raise click.BadParameter(str(exc), param_hint="--segment") from None


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


class _Lines:
    """Progress for a log or a pipe: a plain line now and then instead of a bar redrawn with carriage returns."""

    EVERY = 5.0

    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self.note, self.printed, self.last = 0, "", None, 0.0

    def update(self, k: int = 1) -> None:
        self.show(self.n + k, self.note)

    def show(self, n: int, note: str = "") -> None:
        self.n, self.note = n, note
        if time.monotonic() - self.last >= self.EVERY:
            self.flush()

    def flush(self) -> None:
        line = f"{self.desc}: {self.n}/{self.total} {self.unit}" + (f" ({self.note})" if self.note else "")
        if line != self.printed:
            click.echo(line)
        self.printed, self.last = line, time.monotonic()


class _Bar(tqdm):
    def show(self, n: int, note: str = "") -> None:
        self.n = n
        self.set_postfix_str(note, refresh=False)
        self.refresh()


@contextmanager
def _bar(total: int, desc: str, unit: str) -> Iterator[Any]:
    """A tqdm bar on a terminal; elsewhere (a pipe, a log file) lines that do not run together."""
    if sys.stdout.isatty() and sys.stderr.isatty():
        with _Bar(total=total, desc=desc, unit=unit) as bar:
            yield bar
        return
    lines = _Lines(total, desc, unit)
    yield lines
    lines.flush()


def _quiet_now(rules: SendRules) -> str | None:
    """Said when a broadcast starts inside quiet hours: nothing goes out until they end."""
    until = quiet_until(rules, utcnow())
    if until is None:
        return None
    local = broadcasts.local_time(until, rules)
    return f"waiting until {local} (quiet hours, {rules.quiet_hours}; WELEAD_QUIET_HOURS=off turns them off)"


def _status(broadcast_id: int) -> dict[str, Any]:
    with services().db.sessions() as session:
        try:
            return broadcasts.status(session, broadcast_id)
        except deliveries.NotFound as exc:
            raise click.ClickException(str(exc)) from None


def _watch(broadcast_id: int, total: int) -> dict[str, Any]:
    """Follow the workers until the broadcast is done, paused, cancelled, or waits for hours (quiet hours, quota)."""
    status = _status(broadcast_id)
    with _bar(total, "send", "msg") as bar:
        while True:
            bar.show(status["finished"], f"{status['state']}, sent {status['counts'].get('sent', 0)}")
            if status["state"] != RUNNING or broadcasts.deferred(status):
                return status
            time.sleep(POLL)
            status = _status(broadcast_id)


def _summary(status: dict[str, Any]) -> None:
    click.echo(f"broadcast {status['id']}: {status['state']}  {json.dumps(status['counts'], sort_keys=True)}")
    if status["reasons"]:
        click.echo(f"  by reason: {json.dumps(status['reasons'], sort_keys=True)}")
    if status["retries"]:
        click.echo(f"  retries: {status['retries']}")
    if status["pause_reason"]:
        click.echo(f"  paused: {status['pause_reason']}")
    clicks = status.get("clicks") or {}
    if clicks.get("clicks"):
        click.echo(f"  clicks: {clicks['clicks']} by {clicks['clickers']} of {clicks['delivered']} delivered"
                   f" (click-through {clicks['click_through']:.1%})")  # fmt: skip
    line = broadcasts.waiting_note(status, send.rules())
    if line:
        click.echo(f"  {line}")


def _create(segment: Any, template: str, data: dict[str, Any], **options: Any) -> tuple[int, bool]:
    """Create (or find by key) the broadcast; print what is wrong, or worth knowing, before anything is sent."""
    r = send.rules()
    try:
        with services().db.transaction() as session:
            b, created, warnings = broadcasts.create(
                session, send.message_library(), template=template, segment=segment, data=data, created_by="cli",
                error_budget=r.error_budget, breaker_window=r.breaker_window, **options,
            )  # fmt: skip
            bid = b.id
    except broadcasts.InvalidBroadcast as exc:
        hint = "; give the template's fields with --data '{...}'" if not data and "does not render" in str(exc) else ""
        raise click.ClickException(f"{exc}{hint}") from None
    click.echo(f"broadcast {bid} {'created' if created else 'exists (same key): resuming'}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    return bid, created


@broadcast_cli.command("send", epilog=segments.SYNTAX)
@click.option("--segment", required=True, help="Who: a query string, a JSON filter, or a saved segment (below).")
@click.option("--template", required=True, help="The library entry (templates/messages/<name>.yml).")
@click.option("--data", help='The template\'s data fields, as a JSON object: \'{"event_name": "Expo"}\'.')
@click.option("--channel", type=click.Choice(["template", "custom", "mass"]), help="Default: the entry's first.")
@click.option("--key", help="Idempotency key: sending the same key again resumes that broadcast, never sends twice.")
@click.option("--name", default="", help="A label for humans.")
@click.option("--wait/--no-wait", default=True, help="Follow the sending with a second progress bar.")
def send_cmd(
    segment: str, template: str, data: str | None, channel: str | None, key: str | None, name: str, wait: bool
) -> None:
    """Create a broadcast, fan it out here with a progress bar, then follow the workers."""
    bid, _ = _create(_segment(segment), template, _json(data, "--data"), channel=channel, key=key, name=name)
    with services().db.transaction() as session:
        size = broadcasts.count_audience(session, bid)
    started = time.monotonic()
    with _bar(size, "enqueue", "follower") as bar:
        new = broadcast_tasks.fan_out(bid, progress=bar.update)
    click.echo(f"enqueued {new} deliveries in {time.monotonic() - started:.1f}s")
    quiet = _quiet_now(send.rules())
    if quiet:
        click.echo(quiet)
    status = _watch(bid, _status(bid)["total"]) if wait and not quiet else _status(bid)
    _summary(status)
    if status["state"] == RUNNING:
        click.echo(f"  it carries on without this command: `flask broadcast status {bid}` follows it")


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
        rows = broadcasts.listing(session)
    if not rows:
        click.echo("no broadcasts yet")
        return
    click.echo(f"{'id':>6}  {'state':<9} {'channel':<8} {'total':>8}  {'created (UTC)':<20}  name")
    for b in rows:
        click.echo(
            f"{b['id']:>6}  {b['state']:<9} {b['channel']:<8} {b['total']:>8}  {b['created_at'] or '':<20}  {b['name']}"
        )


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
