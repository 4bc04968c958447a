"""`flask rep link REP_ID [--lead OPENID]`: the signed link a notification would carry, to try the rep pages or to
hand a rep their list without waiting for a notification."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from foundation.services import services
from scrm import followers
from scrm.lead_links import MAX_AGE, lead_card_url, my_leads_url
from scrm.models import Rep


@click.command("link")
@with_appcontext
@click.argument("rep_id", type=int)
@click.option("--lead", "openid", help="A lead's openid (or WeCom external_userid): link to its card instead.")
def link(rep_id: int, openid: str | None) -> None:
    """Print a signed link to rep REP_ID's lead list (or one lead's card), valid for 7 days.

    The link is the credential: anyone who has it sees that rep's leads until it expires.
    """
    svc = services()
    with svc.db.sessions() as session:
        rep = session.scalar(select(Rep).where(Rep.id == rep_id))
        if rep is None or not rep.active:
            raise click.ClickException(f"no active rep {rep_id} (see `flask rep list`)")
        url = my_leads_url(svc.signer, svc.settings.public_url, rep.id)
        if openid is not None:
            lead = followers.find(session, openid)
            if lead is None or lead.owner_id != rep.id:
                raise click.ClickException(f"rep {rep_id} owns no lead {openid!r}")
            url = lead_card_url(svc.signer, svc.settings.public_url, rep.id, lead.id)
    click.echo(url)
    click.echo(f"(valid for {MAX_AGE // 86400} days)", err=True)
