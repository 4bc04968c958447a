"""`flask tokens ...`: issue (with an expiry), list, revoke the admin API's bearer tokens; print the bootstrap one."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from foundation.config import INSTANCE
from foundation.services import services
from welead import auth

tokens_cli = AppGroup("tokens", help="Admin API bearer tokens (roles: docs/roles.md).")


@tokens_cli.command("ensure-admin")
def ensure_admin() -> None:
    """Print the bootstrap admin token (WELEAD_ADMIN_TOKEN, or one generated and kept under instance/)."""
    svc = services()
    click.echo(auth.ensure_admin(svc.db, svc.settings.admin_token, INSTANCE / "admin-token"))


@tokens_cli.command("issue")
@click.argument("name")
@click.option("--role", type=click.Choice(auth.ROLES), required=True)
@click.option("--subject", help="rep: the rep's id or WeCom userid (stored as the id); staff: the event slug.")
@click.option("--expires", default=None, help="Lifetime such as 30d, 12h or 90m (default: never).")
def issue_token(name: str, role: str, subject: str | None, expires: str | None) -> None:
    """Create or rotate the token NAME and print it (it is stored hashed and never shown again).

    A rep token reads only the rep's own leads, a staff token only its event's visitors (docs/roles.md). Issuing
    a NAME that exists replaces its secret, role, subject and expiry, and lifts a revocation.
    """
    try:
        with services().db.transaction() as session:
            stored = auth.resolve_subject(session, role, subject)
            click.echo(auth.issue(session, name, role, stored, expires_at=auth.expiry(expires)))
    except auth.TokenError as exc:
        raise click.ClickException(str(exc)) from None


@tokens_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def list_tokens(as_json: bool) -> None:
    """Every token: name, role, subject, state (active, expired, revoked) and dates; never the secret."""
    with services().db.sessions() as session:
        rows = auth.listing(session)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            until = f" until {row['expires_at']}" if row["expires_at"] and row["state"] == "active" else ""
            click.echo(f"{row['name']}\t{row['role']}\t{row['subject'] or '-'}\t{row['state']}{until}")


@tokens_cli.command("revoke")
@click.argument("name")
def revoke_token(name: str) -> None:
    """Revoke the token NAME at once (its next request gets 401); `tokens issue NAME` makes a new one."""
    with services().db.transaction() as session:
        done = auth.revoke(session, name)
    if not done:
        raise click.ClickException(f"no active token named {name!r} (see `flask tokens list`)")
    click.echo(f"revoked {name}")
