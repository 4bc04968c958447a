"""`flask report NAME [--from --to --bucket --limit --csv]`: the API's reports, unscoped (the CLI is an admin's)."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from foundation.clock import utcnow
from foundation.services import services
from scrm import reports
from scrm.report_sql import BUCKETS, ReportError, window


@click.command("report")
@click.argument("name")
@click.option("--from", "first", help="first local day (Asia/Shanghai), YYYY-MM-DD; default 29 days before --to")
@click.option("--to", "last", help="last local day, included; default today")
@click.option("--bucket", help=f"{' or '.join(BUCKETS)} (sources)")
@click.option("--limit", type=click.IntRange(1, reports.MAX_TAGS), default=reports.TOP_TAGS, help="tags: how many")
@click.option("--csv", "as_csv", is_flag=True, help="print the rows as CSV instead of the JSON document")
@with_appcontext
def report(name: str, first: str | None, last: str | None, bucket: str | None, limit: int, as_csv: bool) -> None:
    """Print report NAME: sources, funnel, deliveries, tags, reps or journeys (docs/reports.md)."""
    if name not in reports.NAMES:
        raise click.UsageError(f"unknown report {name!r}: one of {', '.join(reports.NAMES)}")
    try:
        win = window(first, last, bucket, utcnow())
    except ReportError as exc:
        raise click.UsageError(str(exc)) from None
    with services().db.sessions() as session:
        found = reports.run(session, name, win, limit=limit)
    click.echo(reports.csv_text(found) if as_csv else json.dumps(found, ensure_ascii=False, indent=2), nl=not as_csv)
