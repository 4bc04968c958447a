"""`flask playbook ...` (check, load, show, versions, load-demo-if-empty, tick); `flask segment ...` (count, export,
delete)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import click
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from foundation.config import ROOT
from foundation.services import services
from scrm import segments
from scrm.playbook import PlaybookError, parse, store

DEMO = ROOT / "playbooks" / "demo.yml"

playbook_cli = AppGroup("playbook", help="The marketer's rules: check, load (a new version), show.")
segment_cli = AppGroup(
    "segment",
    help="Segments of followers: count and export by filter. A SEGMENT is a query string "
    "('tags_all=vip&stage=mql+'), a JSON filter or a saved segment's name; see `flask segment count --help`.",
)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None


def _fail(exc: PlaybookError) -> click.ClickException:
    for line in exc.errors:
        click.echo(f"  {line}", err=True)
    return click.ClickException(f"invalid playbook: {len(exc.errors)} problem(s); nothing loaded")


def _load(source: str, by: str) -> None:
    try:
        book = parse(source)  # outside the transaction: callbacks never wait behind the parse
        with services().db.transaction() as session:
            same = store.unchanged(session, source) is not None
            row = store.load(session, source, by=by, book=book)
            version, name = row.version, row.name
    except PlaybookError as exc:
        raise _fail(exc) from None
    except IntegrityError:
        raise click.ClickException("another load happened at the same time; run it again") from None
    if same:
        click.echo(f"unchanged: playbook {name!r} is already the active version {version}; nothing loaded")
    else:
        click.echo(f"loaded playbook {name!r} as version {version} (now active)")


@playbook_cli.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(file: Path) -> None:
    """Validate FILE without loading it."""
    try:
        book = parse(_read(file))
    except PlaybookError as exc:
        raise _fail(exc) from None
    click.echo(f"ok: {book.name!r}: {len(book.rules)} rules, {len(book.journeys)} journeys, models "
               f"{', '.join(book.models)}; stages {' → '.join(s.name for s in book.stages.order)}")  # fmt: skip


@playbook_cli.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(file: Path) -> None:
    """Validate FILE and make it the new active version (atomic: nothing changes when it is invalid)."""
    _load(_read(file), by=f"cli:{file.name}")


@playbook_cli.command("load-demo-if-empty")
def load_demo_if_empty() -> None:
    """Load playbooks/demo.yml when no playbook was ever loaded (what `make run` does)."""
    with services().db.sessions() as session:
        if not store.empty(session):
            click.echo("a playbook is loaded already; demo not loaded")
            return
    _load(_read(DEMO), by="demo")


@playbook_cli.command("show")
@click.option("--version", "number", type=int, help="A past version (default: the active one).")
@click.option("--source/--no-source", default=True, help="Print the YAML too.")
def show(number: int | None, source: bool) -> None:
    """Print the active playbook (or VERSION)."""
    with services().db.sessions() as session:
        row = store.version(session, number)
        if row is None:
            raise click.ClickException("no such playbook version" if number else "no playbook loaded yet")
        info = store.summary(row)
        click.echo(f"version {info['version']} {info['name']!r} loaded {info['created_at']} by {info['created_by']}")
        if source:
            click.echo(row.source)


@playbook_cli.command("versions")
def versions() -> None:
    """List the versions, newest (active) first."""
    with services().db.sessions() as session:
        for v in store.versions(session):
            click.echo(f"{v['version']:>5}  {v['created_at']}  {v['name']}  ({v['created_by']})")


@playbook_cli.command("tick")
def tick() -> None:
    """Run the periodic triggers now (inactive followers, demotion by decay): what the scheduler does."""
    from tasks.playbook import tick as run_tick

    click.echo(json.dumps(run_tick()))


# --- segments ---------------------------------------------------------------------------------------------------


def _filter(query: str | None, as_json: str | None, name: str | None) -> Any:
    """The one filter language: SEGMENT is a query string, JSON or a saved name (as `broadcast send --segment`)."""
    given = [x for x in (query, as_json, name) if x]
    if len(given) != 1:
        raise click.UsageError("give one of: a SEGMENT (tags_all=vip&stage=mql+, JSON or a saved name), --json, --name")
    try:
        spec = segments.parse_text(query or as_json or "") if (query or as_json) else name or ""
        if as_json and not isinstance(spec, segments.Filter):
            raise segments.SegmentError("--json: expected a JSON object")
    except segments.SegmentError as exc:
        raise click.ClickException(str(exc)) from None
    if isinstance(spec, segments.Filter):
        return _checked(spec)
    with services().db.sessions() as session:
        row = segments.find(session, spec)
        if row is None:
            raise click.ClickException(f"no saved segment {spec!r}")
        return row.filter


def _checked(spec: segments.Filter) -> segments.Filter:
    """Compile once now, so an unknown stage or model fails (exit 1) before any output."""
    with services().db.sessions() as session:
        try:
            segments.where(session, spec)
        except segments.SegmentError as exc:
            raise click.ClickException(str(exc)) from None
    return spec


def _filter_options(fn):
    fn = click.argument("query", metavar="SEGMENT", required=False)(fn)
    fn = click.option("--json", "as_json", help="The filter as JSON (docs/segments.md).")(fn)
    return click.option("--name", help="A saved segment's name or id.")(fn)


@segment_cli.command("count", epilog=segments.SYNTAX)
@_filter_options
@click.option("--quiet", "-q", is_flag=True, help="Print only the number (for scripts).")
def count(query: str | None, as_json: str | None, name: str | None, quiet: bool) -> None:
    """Count the followers matching SEGMENT (and show the filter as understood)."""
    spec = _filter(query, as_json, name)
    with services().db.sessions() as session:
        try:
            n = segments.count(session, spec)
        except segments.SegmentError as exc:
            raise click.ClickException(str(exc)) from None
    if quiet:
        click.echo(n)
        return
    shown = segments.normalised(segments.parse_filter(spec))
    click.echo(f"filter:    {json.dumps(shown, ensure_ascii=False, sort_keys=True)}")
    click.echo(f"followers: {n}")


@segment_cli.command("export", epilog=segments.SYNTAX)
@_filter_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
def export(query: str | None, as_json: str | None, name: str | None, fmt: str, output: Path | None) -> None:
    """Stream the followers of SEGMENT as CSV or JSON lines.

    Columns: openid, channel, subscribed, stage, owner, source, score (the stage model's score, as in the follower
    JSON), scores (every model's: `engagement=12.5|fit=3` in CSV), tags, last_active_at.
    """
    spec = _filter(query, as_json, name)
    with services().db.sessions() as session:
        rows = segments.export(session, spec)
        if output is None:
            written = _write(rows, fmt, sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                written = _write(rows, fmt, out)
    click.echo(f"exported {written} followers", err=True)


@segment_cli.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete the saved segment NAME (or id); refused while a broadcast still fanning out reads it."""
    try:
        with services().db.transaction() as session:
            row = segments.delete(session, name)
            shown = f"{row.name!r} (id {row.id})" if row is not None else None
    except segments.SegmentError as exc:
        raise click.ClickException(str(exc)) from None
    if shown is None:
        raise click.ClickException(f"no saved segment {name!r}")
    click.echo(f"deleted segment {shown}")


def _pairs(scores: dict[str, float]) -> str:
    return "|".join(f"{model}={value:g}" for model, value in sorted(scores.items()))


def _write(rows: Any, fmt: str, out: TextIO) -> int:
    written = 0
    writer = csv.DictWriter(out, fieldnames=segments.EXPORT_COLUMNS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    try:
        for row in rows:
            if writer:
                writer.writerow({**row, "tags": "|".join(row["tags"]), "scores": _pairs(row["scores"])})
            else:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    except segments.SegmentError as exc:
        raise click.ClickException(str(exc)) from None
    return written
