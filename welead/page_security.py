"""What the server-rendered pages (rep pages, dashboard) share for safety: the response headers and the CSRF check.

CSRF is a per-session random token in every form, compared in constant time: the check Flask-WTF's CSRFProtect
makes, without WTForms or an app-wide hook (docs/reps.md says why).
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_csrf() -> None:
    """400 unless the form's `csrf` field is this session's token."""
    sent, kept = request.form.get("csrf", ""), session.get("csrf", "")
    if not kept or not hmac.compare_digest(sent.encode(), str(kept).encode()):
        abort(400, "This form is out of date (its security token is missing or wrong). Reload the page and retry.")
