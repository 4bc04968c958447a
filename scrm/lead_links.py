"""The links a rep gets in WeCom: to one lead's card, or to their own lead list. The link is the credential (signed,
expiring, naming the rep), so a forwarded link shows nothing beyond that rep's own leads, and only for a week.
"""

from __future__ import annotations

from foundation.signing import DAY, Signer

PURPOSE = "rep-page"
MAX_AGE = 7 * DAY


def rep_token(signer: Signer, rep_id: int) -> str:
    return signer.sign(PURPOSE, {"rep": rep_id})


def read_rep_token(signer: Signer, token: str, max_age: int = MAX_AGE) -> int:
    """The rep the token was made for; foundation.signing.LinkError when forged or expired."""
    data = signer.load(PURPOSE, token, max_age=max_age)
    return int(data["rep"])


def lead_card_url(signer: Signer, public_url: str, rep_id: int, follower_id: int) -> str:
    return f"{public_url.rstrip('/')}/rep/leads/{follower_id}?t={rep_token(signer, rep_id)}"


def my_leads_url(signer: Signer, public_url: str, rep_id: int) -> str:
    return f"{public_url.rstrip('/')}/rep/leads?t={rep_token(signer, rep_id)}"
