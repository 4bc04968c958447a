"""How fast a rep may be messaged: WeCom drops app messages past 30 a minute (1,000 an hour) per member, silently.

`Pacer` keeps, per WeCom member, a sliding log of the messages sent (a Redis sorted set, one atomic script), and
grants a send only when it stays under both limits with a margin. Past `singles` messages in the last minute, a rep
is in digest mode: at most one message every `gather` seconds, carrying every notification waiting for that rep
(tasks.notify folds them into one digest). A burst of 50 notifications is thus a few single cards and a handful of
digests, never 50 pings, and never more than `per_minute` in any 60 seconds.

Losing the log with a Redis restart forgets at most the last hour's count: the margin under WeCom's limits covers a
restart in a quiet hour; a restart during a flood may let one minute through at the full limit.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import redis

# KEYS[1] the member's log. ARGV per_minute, per_hour, singles, gather (ms), member. Returns 0 (granted: the member
# is added to the log) or the ms to wait before asking again.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_minute, per_hour = tonumber(ARGV[1]), tonumber(ARGV[2])
local singles, gather = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
local hour = redis.call('ZCARD', KEYS[1])
if hour >= per_hour then
    local oldest = redis.call('ZRANGE', KEYS[1], hour - per_hour, hour - per_hour, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + 3600000 - now)
end
local minute = redis.call('ZCOUNT', KEYS[1], now - 60000, '+inf')
if minute >= per_minute then
    local first = redis.call('ZRANGEBYSCORE', KEYS[1], now - 60000, '+inf', 'WITHSCORES',
                             'LIMIT', minute - per_minute, 1)
    return math.max(1, tonumber(first[2]) + 60000 - now)
end
if minute >= singles then
    local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    local due = tonumber(last[2]) + gather
    if due > now then return due - now end
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], 3600000)
return 0
"""


@dataclass(frozen=True)
class NotifyRules:
    """The pacing knobs (WELEAD_NOTIFY_*; Settings.extra["notify"] overrides them, as tests do)."""

    per_minute: int = 25  # WELEAD_NOTIFY_PER_MINUTE: WeCom allows 30 a minute per member
    per_hour: int = 900  # WELEAD_NOTIFY_PER_HOUR: WeCom allows 1,000 an hour per member
    singles: int = 5  # WELEAD_NOTIFY_SINGLES: single cards a minute before notifications fold into digests
    gather: float = 10.0  # WELEAD_NOTIFY_GATHER: seconds between digests (what waits meanwhile goes in the next)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> NotifyRules:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"WELEAD_NOTIFY_{f.name.upper()}", "").strip()
            if raw:
                try:
                    values[f.name] = type(getattr(cls, f.name))(raw)
                except ValueError:
                    raise ValueError(f"WELEAD_NOTIFY_{f.name.upper()}: not a number: {raw!r}") from None
        values.update(overrides or {})
        rules = cls(**values)
        if not 1 <= rules.per_minute <= 30 or not 1 <= rules.per_hour <= 1000:
            raise ValueError("WELEAD_NOTIFY_PER_MINUTE must be 1-30 and WELEAD_NOTIFY_PER_HOUR 1-1000 (WeCom's limits)")
        if rules.singles < 0 or rules.gather < 0:
            raise ValueError("WELEAD_NOTIFY_SINGLES and WELEAD_NOTIFY_GATHER must be >= 0")
        return rules


class Pacer:
    """The per-member send log; `admit` reserves a send, `release` gives back a reservation that sent nothing."""

    PREFIX = "welead:notify:sent:"

    def __init__(self, conn: redis.Redis, rules: NotifyRules) -> None:
        self.redis, self.rules = conn, rules
        self._admit = conn.register_script(_ADMIT)

    def admit(self, userid: str) -> tuple[str | None, float]:
        """(a reservation, 0) when `userid` may be messaged now; (None, seconds to wait) otherwise."""
        r = self.rules
        member = secrets.token_hex(8)
        ms = int(self._admit(keys=[self.PREFIX + userid],
                             args=[r.per_minute, r.per_hour, r.singles, int(r.gather * 1000), member]))  # fmt: skip
        return (member, 0.0) if ms == 0 else (None, ms / 1000)

    def release(self, userid: str, member: str) -> None:
        self.redis.zrem(self.PREFIX + userid, member)

    def sent_last_minute(self, userid: str) -> int:
        """Messages in the member's log over the last 60 seconds (for tests and the API)."""
        seconds, micros = self.redis.time()
        now = seconds * 1000 + micros // 1000
        return int(self.redis.zcount(self.PREFIX + userid, now - 60_000, "+inf"))
