"""The link to an event's lead form as an H5 page: the token names the follower, the event and the booth, signed
and expiring, so a forwarded or edited link cannot submit for anyone else (foundation.signing)."""

from __future__ import annotations

from dataclasses import dataclass

from foundation.signing import DAY, Signer

PURPOSE = "lead-form"
MAX_AGE = 7 * DAY


@dataclass(frozen=True)
class FormTicket:
    openid: str
    event: str
    booth: str | None


def form_token(signer: Signer, openid: str, event: str, booth: str | None) -> str:
    return signer.sign(PURPOSE, {"o": openid, "e": event, "b": booth})


def read_form_token(signer: Signer, token: str, max_age: int = MAX_AGE) -> FormTicket:
    """Who the form is for; foundation.signing.LinkError when forged, for another purpose, or expired."""
    data = signer.load(PURPOSE, token, max_age=max_age)
    booth = data.get("b")
    return FormTicket(str(data["o"]), str(data["e"]), str(booth) if booth is not None else None)


def form_url(signer: Signer, public_url: str, openid: str, event: str, booth: str | None) -> str:
    return f"{public_url.rstrip('/')}/forms/lead?t={form_token(signer, openid, event, booth)}"
