"""`flask apply`: the applier process, its status, and what to do with interactions whose effects failed."""

from __future__ import annotations

import json
import signal

import click
from flask.cli import AppGroup, with_appcontext

from foundation.db import Database
from foundation.services import services


@click.group("apply", cls=AppGroup, invoke_without_command=True)
@click.option("--batch", type=click.IntRange(1, 5000), help="Interactions per transaction [500; 100 on SQLite].")
@click.option("--drain", is_flag=True, help="Apply what is pending, print the counts and exit.")
@click.pass_context
@with_appcontext
def apply_cli(ctx: click.Context, batch: int | None, drain: bool) -> None:
    """Run the applier (the default), or one of the commands below."""
    if ctx.invoked_subcommand is not None:
        return
    from scrm.applier import APPLIER_NAME
    from tasks.applier import drain as drain_all
    from tasks.applier import serve

    svc = services()
    svc.db.dispose()
    svc.db = Database(svc.settings.database_url, name=APPLIER_NAME)  # peers on PostgreSQL count each other by it
    if drain:
        report = drain_all(svc, batch)
        click.echo(f"applied {report.applied}, failed {report.failed}")
        return
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))
    from scrm.applier import batch_size

    click.echo(f"applier: batches of {batch or batch_size(svc.db)}; SIGTERM stops after the current batch")
    serve(svc, lambda: bool(stop), batch)


@apply_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def apply_status(as_json: bool) -> None:
    """Backlog (not applied yet), lag (age of the oldest of them) and failures."""
    from welead.metrics import applier_status

    status = applier_status(services().db)
    if as_json:
        click.echo(json.dumps(status))
        return
    click.echo(f"backlog {status['backlog']}  lag {status['lag_seconds']:.3f}s  failed {status['failed']}")


@apply_cli.command("failed")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
def apply_failed(limit: int) -> None:
    """Interactions whose effects raised, with the error and the rule that was firing."""
    from scrm.applier import failures

    with services().db.sessions() as session:
        rows = failures(session, limit)
    if not rows:
        click.echo("no failed interactions")
    for row in rows:
        click.echo(f"{row['id']}\t{row['kind']}\t{row['openid']}\t{row['apply_error']}")


@apply_cli.command("retry")
@click.argument("interaction_id", type=int)
@click.option(
    "--active-playbook",
    is_flag=True,
    help="Apply it with the active playbook (after fixing a rule) instead of the version that decided its reply.",
)
def apply_retry(interaction_id: int, active_playbook: bool) -> None:
    """Queue a failed interaction again (after fixing the data, or the playbook with --active-playbook)."""
    from scrm.applier import retry

    with services().db.transaction() as session:
        if not retry(session, interaction_id, active_playbook=active_playbook):
            raise click.ClickException(f"interaction {interaction_id} is not a failed one")
    click.echo(f"interaction {interaction_id} queued again")
