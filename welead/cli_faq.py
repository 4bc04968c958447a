"""`flask faq ...`: load (a new version from YAML or CSV), show, versions, ask (what the bot would answer), misses,
end (a follower's handoff), load-demo-if-empty (what `make run` does)."""

from __future__ import annotations

import json
import time
from contextlib import suppress
from pathlib import Path

import click
import redis
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from foundation.config import ROOT
from foundation.services import services
from scrm import chatbot, conversations, faq_admin, faq_misses, faq_store, handoff_kf
from scrm.faq_source import FaqError, parse_text

DEMO = ROOT / "playbooks" / "faq_demo.yaml"
faq_cli = AppGroup("faq", help="The chatbot's knowledge base: load, show, ask, misses.")


def _fast() -> redis.Redis | None:
    with suppress(redis.RedisError, OSError):
        return services().redis
    return None


def _load(path: Path, by: str) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    try:
        entries = parse_text(text, path.name)
        out = faq_admin.replace_all(services().db, entries, f"load {path.name}", by, _fast())
    except FaqError as exc:
        for line in exc.errors:
            click.echo(f"  {line}", err=True)
        raise click.ClickException(f"FAQ refused: {len(exc.errors)} problem(s); the previous one stays") from None
    except IntegrityError:
        raise click.ClickException("another FAQ change happened at the same time; run it again") from None
    click.echo(f"loaded {out['entries']} FAQ entries from {path.name} as version {out['version']} (now active)")


@faq_cli.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(file: Path) -> None:
    """Replace the knowledge base with FILE (YAML, or CSV by its .csv name): atomic, a new version."""
    _load(file, by=f"cli:{file.name}")


@faq_cli.command("load-demo-if-empty")
def load_demo_if_empty() -> None:
    """Load playbooks/faq_demo.yaml when no FAQ was ever loaded (what `make run` does)."""
    with services().db.sessions() as session:
        if not faq_store.empty(session):
            click.echo("an FAQ is loaded already; demo FAQ not loaded")
            return
    _load(DEMO, by="demo")


@faq_cli.command("show")
def show() -> None:
    """Print the active entries: id, first question, tags."""
    with services().db.sessions() as session:
        number, items = faq_store.active_entries(session)
    if number is None:
        raise click.ClickException("no FAQ loaded yet (flask faq load FILE)")
    click.echo(f"version {number}: {len(items)} entries")
    for e in items:
        click.echo(f"{e.id:<24} {e.questions[0][:40]:<42} {','.join(e.tags)}")


@faq_cli.command("versions")
def versions() -> None:
    """List versions, newest (active) first."""
    with services().db.sessions() as session:
        for v in faq_store.versions(session):
            click.echo(f"{v['version']:>5}  {v['created_at']}  {v['entries']:>5} entries  {v['change']}  "
                       f"({v['created_by']})")  # fmt: skip


@faq_cli.command("ask")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")
def ask(text: str, as_json: bool) -> None:
    """What the bot would answer TEXT (nothing is sent or stored)."""
    with services().db.reader.connect() as conn:
        out = chatbot.preview(conn, text, _fast())
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    score = f"{out['score']:.3f}" if isinstance(out["score"], int | float) else "-"
    click.echo(f"{out['kind']}  entry={out['id'] or '-'}  score={score}  runner-up={out['runner_up'] or '-'} "
               f"({out['runner_up_score'] or 0:.3f})")  # fmt: skip
    click.echo(out["answer"] or "(transfer to customer service)" if out["handoff"] else out["answer"] or "(no reply)")


@faq_cli.command("misses")
@click.option("--days", default=30, type=click.IntRange(1, 365))
@click.option("--limit", default=20, type=click.IntRange(1, 200))
def misses(days: int, limit: int) -> None:
    """The questions the bot could not answer, clustered, most frequent first."""
    with services().db.sessions() as session:
        out = faq_misses.clusters(session, days=days, limit=limit)
    for c in out["items"]:
        click.echo(f"{c['count']:>5} x  ({c['followers']} followers)  {c['text'][:60]}")


@faq_cli.command("end")
@click.argument("openid")
def end(openid: str) -> None:
    """End OPENID's handoff (or any flow): the bot answers them again."""
    state = conversations.end(services().redis_slow, openid)
    if state and state.active(time.time()) == conversations.HANDOFF:
        with services().db.transaction() as session:
            handoff_kf.record_end(session, openid, "cli")
    click.echo("ended" if state and state.flow else "no conversation was running")
