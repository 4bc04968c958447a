"""`flask journey ...`: list, status (per version and step), stop and migrate runs of a version, and `run`, a step
runner (what the scheduler's journey.tick does every 5 s, in a loop: run several for more throughput)."""

from __future__ import annotations

import gc
import json
import time

import click
from flask.cli import AppGroup

from foundation.services import services
from scrm import journey_admin, journey_stats

journey_cli = AppGroup("journey", help="Journeys: numbers per step, stop or migrate runs of a version, run steps.")


@journey_cli.command("list")
def list_journeys() -> None:
    """Each journey: newest version, runs by state, conversion."""
    with services().db.sessions() as session:
        for row in journey_stats.listing(session):
            runs = row["runs"]
            counts = "  ".join(f"{k} {runs[k]}" for k in ("entered", "running", "converted", "exited"))
            click.echo(f"{row['journey']}  v{row['version']}  {counts}  conversion {_pct(row['conversion'])}")


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


@journey_cli.command("status")
@click.argument("name")
@click.option("--version", type=int, default=None, help="Only this version.")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON instead of a table.")
def status(name: str, version: int | None, as_json: bool) -> None:
    """Per version and step: entered, waiting, which way runs went, converted and exited there."""
    with services().db.sessions() as session:
        found = journey_stats.status(session, name, version)
    if as_json:
        click.echo(json.dumps(found, indent=2, default=str))
        return
    if not found["versions"]:
        raise click.ClickException(f"journey {name!r} has no runs")
    for v in found["versions"]:
        runs = v["runs"]
        click.echo(f"{name} v{v['version']}: entered {runs['entered']}, running {runs['running']}, finished "
                   f"{runs['finished']}, converted {runs['converted']} ({_pct(v['conversion'])}), exited "
                   f"{runs['exited']}, stopped {runs['stopped']}")  # fmt: skip
        for s in v["steps"]:
            ways = " ".join(f"{k}={n}" for k, n in sorted(s["ways"].items()))
            click.echo(f"  {s['path']:<12} {s['kind']:<5} entered {s['entered']:<6} waiting {s['waiting']:<6} "
                       f"converted {s['converted_here']:<5} exited {s['exited_here']:<5} {ways}")  # fmt: skip


@journey_cli.command("stop")
@click.argument("name")
@click.option("--version", type=int, required=True, help="The version whose running runs end.")
def stop(name: str, version: int) -> None:
    """End every running run of one version of a journey."""
    try:
        with services().db.transaction() as session:
            click.echo(f"stopped {journey_admin.stop(session, name, version, by='cli')} runs")
    except journey_admin.JourneyAdminError as exc:
        raise click.ClickException(str(exc)) from None


@journey_cli.command("migrate")
@click.argument("name")
@click.option("--from", "source", type=int, required=True, help="The version runs are on.")
@click.option("--to", "target", type=int, required=True, help="The version they continue on.")
def migrate(name: str, source: int, target: int) -> None:
    """Move running runs to another version, at the same step path (a run whose step is gone there exits)."""
    try:
        with services().db.transaction() as session:
            done = journey_admin.migrate(session, name, source, target)
    except journey_admin.JourneyAdminError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"moved {done['moved']} runs, exited {done['exited']} {done['exited_at'] or ''}".rstrip())


@journey_cli.command("run")
@click.option("--batch", type=int, default=500, show_default=True, help="Runs per transaction.")
@click.option("--once", is_flag=True, help="Run what is due now, then stop.")
@click.option("--idle", type=float, default=1.0, show_default=True, help="Seconds to sleep when nothing is due.")
def run(batch: int, once: bool, idle: float) -> None:
    """A step runner: due runs in batches of one transaction each (several runners share the work)."""
    from tasks.journey import recheck_waiting, run_batch

    # What the app loaded (models, playbook grammar, SQLAlchemy's metadata) lives as long as the process: out of
    # the collector's sight, its full collections stop walking it after every few batches (~20% more steps/s).
    gc.freeze()
    while True:
        out = run_batch(batch)
        if out.runs:
            click.echo(f"{out.runs} runs, {out.steps} steps")
        elif once:
            return
        elif not recheck_waiting(batch):  # nothing due: waiting runs' goals and exits (at most every minute)
            time.sleep(idle)
