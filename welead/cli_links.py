"""`flask links add|list|url|ticket`: tracked links from the command line (the same as /api/v1/links)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from foundation.services import services
from scrm import links
from scrm.link_stamp import stamper

links_cli = AppGroup("links", help="Tracked links (/l/<code>) and the JS-SDK ticket.")


@links_cli.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--campaign", help="A campaign name rules can match (link_clicked: {campaign: ...}).")
@click.option("--tag", "tags", multiple=True, help="A tag every clicker gets (repeatable).")
@click.option("--points", type=click.IntRange(-1000, 1000), help="Points a clicker gets, once.")
def add(name: str, url: str, campaign: str | None, tags: tuple[str, ...], points: int | None) -> None:
    """Register URL under NAME; prints the short code and link."""
    svc = services()
    try:
        with svc.db.transaction() as session:
            link = links.create(session, name, url, campaign=campaign, tags=list(tags), points=points, by="cli")
            code = link.code
    except links.LinkInvalid as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{code} {svc.settings.public_url.rstrip('/')}/l/{code}")


@links_cli.command("list")
def listing() -> None:
    """Links with their clicks."""
    svc = services()
    with svc.db.sessions() as session:
        for item in links.listing(session, svc.settings.public_url):
            click.echo(f"{item['code']}  {item['name']!r}  clicks {item['clicks']} by {item['unique_clickers']}, "
                       f"anonymous {item['anonymous_clicks']}  → {item['url']}")  # fmt: skip


@links_cli.command("url")
@click.argument("code")
@click.argument("openid")
def signed_url(code: str, openid: str) -> None:
    """The link as a message to OPENID would carry it (signed `wl` parameter): to try attribution by hand."""
    svc = services()
    stamp = stamper(svc.settings.secret_key, svc.settings.public_url)
    click.echo(f"{stamp.base}/l/{code}?wl={stamp.token(openid, via='cli')}")


@links_cli.command("ticket")
def ticket() -> None:
    """Fetch the JS-SDK jsapi_ticket now if none is cached (the scheduler does it every minute)."""
    from tasks.links import refresh_ticket

    click.echo(refresh_ticket())
