"""`flask ...` commands: migrations, the worker and scheduler, the outbox (tokens: cli_tokens; applier: cli_apply)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from foundation.services import services

db_cli = AppGroup("db", help="Database schema (Alembic).")
outbox_cli = AppGroup("outbox", help="The outbox of follow-up work.")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    from welead.migrate import upgrade

    upgrade(services().settings.database_url, revision)
    click.echo(f"database at {revision}")


@outbox_cli.command("sweep")
def outbox_sweep() -> None:
    """Push outbox rows whose jobs are missing (what the scheduler does every 10 s)."""
    from tasks.outbox import sweep

    click.echo(f"pushed {sweep(stale_seconds=0)} rows")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker that survives Redis outages."""
    from tasks.worker import run_worker

    run_worker(current_app._get_current_object(), burst=burst)


@click.command("scheduler")
def scheduler() -> None:
    """Run the periodic jobs (outbox sweeper, ...) through RQ's cron scheduler."""
    from tasks.worker import run_scheduler

    run_scheduler(current_app._get_current_object())


def register_cli(app: Flask) -> None:
    from welead.cli_apply import apply_cli
    from welead.cli_broadcast import broadcast_cli, messages_cli
    from welead.cli_code import code_cli
    from welead.cli_contact import contact_cli
    from welead.cli_faq import faq_cli
    from welead.cli_journey import journey_cli
    from welead.cli_playbook import playbook_cli, segment_cli
    from welead.cli_rep import rep_cli
    from welead.cli_rep_pages import link as rep_link
    from welead.cli_report import report
    from welead.cli_tokens import tokens_cli
    from welead.cli_wechat import wechat_cli

    rep_cli.add_command(rep_link)
    app.cli.add_command(report)
    commands = (db_cli, tokens_cli, outbox_cli, worker, scheduler, wechat_cli, broadcast_cli, messages_cli)
    for command in (*commands, apply_cli, playbook_cli, segment_cli, rep_cli, contact_cli, code_cli, faq_cli):
        app.cli.add_command(command)
    app.cli.add_command(journey_cli)
