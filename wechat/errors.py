"""What can go wrong when WeLead calls WeChat or WeCom, sorted by what the caller may do next.

Three outcomes matter to a sender, and each has its own type:

- `WeChatAPIError`: WeChat answered with an error code. `retryable` (busy, quota), `token_problem` (refresh the token
  once and resend) or permanent (`blocked` among them: the follower cannot receive it).
- `NotSent`: the request never left this machine (connection refused, DNS, connect timeout): resending is safe.
- `Unknown`: the request went out but no answer came back (read timeout, connection dropped). WeChat may have
  delivered it, so it must never be resent blindly (a second template message is worse than a missing one).
"""

from __future__ import annotations


class WeChatError(Exception):
    """Base of everything the outbound clients raise; `retryable` says whether sending again is safe."""

    retryable: bool = False


class WeChatAPIError(WeChatError):
    """WeChat answered with a non-zero errcode (or a non-2xx HTTP status, kept in `errcode` as a 3-digit number)."""

    RETRYABLE = frozenset({-1, 45009})  # system busy; API quota / frequency limit
    TOKEN_PROBLEMS = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, token expired
    BLOCKED = frozenset({43004, 43101})  # follower unsubscribed; follower refused this kind of message

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(f"WeChat error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.errcode!r}, {self.errmsg!r})"

    @classmethod
    def is_retryable(cls, errcode: int) -> bool:
        """Busy or over a limit: the same request may succeed later (with backoff)."""
        return errcode in cls.RETRYABLE

    @classmethod
    def is_token_problem(cls, errcode: int) -> bool:
        """The access token was refused: refresh it once and resend; a second refusal is permanent."""
        return errcode in cls.TOKEN_PROBLEMS

    @classmethod
    def is_blocked(cls, errcode: int) -> bool:
        """The follower cannot receive the message (unfollowed or refused): stop, do not retry."""
        return errcode in cls.BLOCKED

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.is_retryable(self.errcode)

    @property
    def token_problem(self) -> bool:
        return self.is_token_problem(self.errcode)

    @property
    def blocked(self) -> bool:
        return self.is_blocked(self.errcode)

    @property
    def permanent(self) -> bool:
        """Neither a transient condition nor a token to refresh: the same request will fail again."""
        return not (self.retryable or self.token_problem)


class NotSent(WeChatError):
    """The request was never written to the network (refused, DNS failure, connect timeout): safe to retry."""

    retryable = True


class Unknown(WeChatError):
    """The request went out and the answer was lost (read timeout, dropped connection): never resend blindly."""

    retryable = False
