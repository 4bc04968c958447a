"""Signed, expiring tokens for links WeLead sends out (a rep's lead card, a follower's form): the link itself is the
credential, so it carries its purpose and an expiry and is useless for anything else.

The key is WELEAD_SECRET_KEY, or one generated once under instance/ (foundation.config.Settings.secret_key).
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

DAY = 24 * 3600


class LinkError(ValueError):
    """A token that is forged, for another purpose, or expired (`expired` says which)."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class Signer:
    """`sign(purpose, data)` → a URL-safe token; `load(purpose, token, max_age)` → data, or LinkError."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("a signing key is required")
        self._secret = secret

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=f"welead:{purpose}")

    def sign(self, purpose: str, data: Any) -> str:
        return self._serializer(purpose).dumps(data)

    def load(self, purpose: str, token: str, max_age: int = 7 * DAY) -> Any:
        try:
            return self._serializer(purpose).loads(token, max_age=max_age)
        except SignatureExpired:
            raise LinkError("this link has expired", expired=True) from None
        except BadSignature:
            raise LinkError("this link is not valid") from None
