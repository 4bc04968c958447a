"""Attribution on every URL WeLead sends itself: a signed per-recipient `wl` parameter (who, and what carried it).

What is rewritten (docs/links.md):
- a URL already pointing at WeLead's own `/l/<code>` or `/p/<slug>` gets `wl=` appended;
- a URL that is exactly a registered link's target is rewritten to `/l/<code>?wl=...` (the first link registered
  for that target), so a marketer who pastes the plain target into a template still gets tracked clicks;
- any other URL is sent as it is: WeLead never redirects to a target nobody registered.
Mass texts go to many followers with one body, so they carry no per-recipient parameter.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection

from scrm.link_sign import LinkSigner
from scrm.links import codes_by_url

PURPOSE = "wl"
PARAM = "wl"
REFRESH = 30.0  # seconds a process reuses the registered targets it read


def add_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{name}={value}" if parts.query else f"{name}={value}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class Stamper:
    """Stamps URLs for one recipient; the registered targets are re-read at most every REFRESH seconds."""

    def __init__(self, signer: LinkSigner, public_url: str) -> None:
        self.signer, self.base = signer, public_url.rstrip("/")
        # WeLead's own links in a text; the query stops at punctuation (a trailing "," or "。" is text)
        self._own = re.compile(re.escape(self.base) + r"/[lp]/[A-Za-z0-9_-]+(?:\?[A-Za-z0-9_.~%=&+-]*)?")
        self._codes: dict[str, tuple[float, dict[str, str]]] = {}  # per database

    def codes(self, conn: Connection) -> dict[str, str]:
        now, db = time.monotonic(), str(conn.engine.url)
        seen = self._codes.get(db)
        if seen is None or now - seen[0] > REFRESH:
            seen = self._codes[db] = (now, codes_by_url(conn))
        return seen[1]

    def token(self, openid: str, **carrier: Any) -> str:
        return self.signer.sign(PURPOSE, {"o": openid, **{k: v for k, v in carrier.items() if v is not None}})

    def url(self, url: str, token: str, codes: dict[str, str]) -> str:
        if url.startswith((f"{self.base}/l/", f"{self.base}/p/")):
            return add_param(url, PARAM, token)
        code = codes.get(url)
        return f"{self.base}/l/{code}?{PARAM}={token}" if code else url

    def text(self, text: str, token: str) -> str:
        """WeLead's own links inside a text message."""
        return self._own.sub(lambda m: add_param(m.group(0), PARAM, token), text)

    def payload(self, conn: Connection, payload: dict[str, Any], token: str) -> dict[str, Any]:
        """A rendered delivery payload (template fields or a text) with its URLs stamped; a copy, never the
        original (one render is shared by the rows of a page)."""
        out = dict(payload)
        if isinstance(out.get("url"), str):
            out["url"] = self.url(out["url"], token, self.codes(conn))
        if isinstance(out.get("text"), str):
            out["text"] = self.text(out["text"], token)
        return out

    def read(self, token: str | None) -> dict[str, Any] | None:
        """The attribution a `wl` parameter carries, or None (absent, forged, tampered)."""
        data = self.signer.load(PURPOSE, token)
        return data if data is not None and isinstance(data.get("o"), str) and data["o"] else None


_STAMPERS: dict[tuple[str, str], Stamper] = {}


def stamper(secret: str, public_url: str) -> Stamper:
    """One per (key, public URL) per process."""
    key = (secret, public_url)
    if key not in _STAMPERS:
        _STAMPERS[key] = Stamper(LinkSigner(secret), public_url)
    return _STAMPERS[key]
