"""Shared limits in Redis, each one atomic Lua script so every worker process sees the same numbers.

- `TokenBucket`: the global send rate. A caller reserves a token (or a block of them: one round trip for several
  sends) and is told how long to wait for it, so workers queue up behind each other instead of polling, and the
  achieved rate stays at the configured one.
- `Breaker`: the outcomes of a broadcast's last N sends; the caller pauses the broadcast when errors pass the budget.
- `DailyQuota`: the account's template sends today (WeChat's default is 100,000 a day).
- `Heartbeat`: a job's "still alive" key, so the pump can tell a slow job from a dead one.
Losing these with a Redis restart is harmless: the bucket refills, the breaker forgets, the DB still has every row.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

import redis

# KEYS[1] bucket; ARGV rate (tokens/s), capacity, max wait (ms), tokens wanted (at most the capacity). Returns ms
# to wait until the reserved tokens are ours, or -ms when even the wait would be too long (nothing reserved: ask
# again later). A reservation may take the bucket below zero: later callers wait for that debt to be paid back, so
# sends over any interval T never pass capacity + rate * T, however the tokens are split into blocks.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1]) / 1000
local cap = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or cap
local ts = tonumber(state[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local n = tonumber(ARGV[4]) or 1
local wait = 0
if tokens < n then wait = math.ceil((n - tokens) / rate) end
if wait > tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
    return -wait
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - n), 'ts', now)
redis.call('PEXPIRE', KEYS[1], 60000 + wait)
return wait
"""

# KEYS[1] outcome list; ARGV window, then outcomes ("1" error, "0" ok). Returns {errors, samples} over the window.
_OBSERVE = """
for i = 2, #ARGV do redis.call('LPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1)
redis.call('EXPIRE', KEYS[1], 86400)
local errors = 0
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for _, v in ipairs(items) do
    if v == '1' then errors = errors + 1 end
end
return {errors, #items}
"""

# KEYS[1] counter; ARGV limit, ttl, wanted. Takes what is left up to `wanted`; returns how many were taken.
_TAKE = """
local wanted = tonumber(ARGV[3])
local n = redis.call('INCRBY', KEYS[1], wanted)
if n == wanted then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local over = n - tonumber(ARGV[1])
if over > 0 then
    local give_back = math.min(over, wanted)
    redis.call('DECRBY', KEYS[1], give_back)
    return wanted - give_back
end
return wanted
"""


class TokenBucket:
    """`rate` tokens a second, at most `capacity` saved up; shared by every process using the same key."""

    def __init__(self, conn: redis.Redis, key: str, rate: float, capacity: int, max_wait: float = 2.0) -> None:
        if rate <= 0:
            raise ValueError("a token bucket needs a positive rate")
        self.key, self.rate, self.capacity, self.max_wait_ms = key, rate, max(1, capacity), int(max_wait * 1000)
        self._reserve = conn.register_script(_RESERVE)

    def block(self, wanted: int) -> int:
        """How many tokens to take at once for `wanted` sends: a fiftieth of a second's worth at most, and never
        more than the bucket holds (a block is sent back to back)."""
        return max(1, min(wanted, self.capacity, int(self.rate / 50)))

    def reserve(self, n: int = 1) -> float:
        """Seconds to wait before the `n` reserved tokens may be used; negative: none reserved, retry after that
        long. `n` is capped at the capacity."""
        n = max(1, min(n, self.capacity))
        ms = int(self._reserve(keys=[self.key], args=[self.rate, self.capacity, self.max_wait_ms, n]))
        return ms / 1000

    def acquire(self, n: int = 1, sleep=time.sleep) -> float:
        """Block until `n` tokens (at most the capacity) are ours; returns the seconds waited."""
        waited = 0.0
        while True:
            wait = self.reserve(n)
            sleep(abs(wait))
            waited += abs(wait)
            if wait >= 0:
                return waited


class Breaker:
    """The last `window` outcomes of a scope (a broadcast); trips when errors exceed `budget` of the window."""

    def __init__(self, conn: redis.Redis, scope: str, budget: float, window: int) -> None:
        self.key, self.budget, self.window = self.key_for(scope), budget, max(1, window)
        self._observe = conn.register_script(_OBSERVE)
        self.redis = conn

    def observe(self, *failed: bool) -> str | None:
        """Record outcomes (True: an error); a reason string when the breaker trips, else None."""
        if not failed:
            return None
        outcomes = ["1" if f else "0" for f in failed]
        errors, samples = self._observe(keys=[self.key], args=[self.window, *outcomes])
        if errors > self.budget * self.window:
            return (
                f"error rate {errors}/{samples} over the last {samples} sends passed the budget of "
                f"{self.budget:.0%} of {self.window}"
            )
        return None

    @staticmethod
    def key_for(scope: str) -> str:
        return f"welead:breaker:{scope}"

    @classmethod
    def forget(cls, conn: redis.Redis, scope: str) -> None:
        """Start the window over (a resumed broadcast would otherwise trip again on its old errors)."""
        conn.delete(cls.key_for(scope))


class DailyQuota:
    """How many sends of one kind are left today (the day named by the caller, in the account's time zone)."""

    def __init__(self, conn: redis.Redis, name: str, limit: int) -> None:
        self.name, self.limit = name, limit
        self._take = conn.register_script(_TAKE)

    def take(self, day: str, wanted: int = 1) -> int:
        """Up to `wanted` units of today's quota: how many were granted (0 when it is used up)."""
        return int(self._take(keys=[f"welead:quota:{self.name}:{day}"], args=[self.limit, 2 * 86400, wanted]))


class Heartbeat:
    """A key that lives while its job keeps beating; `alive()` answers for many jobs in one round trip."""

    PREFIX = "welead:alive:"

    def __init__(self, conn: redis.Redis, name: str, ttl: int) -> None:
        self.redis, self.key, self.ttl = conn, self.PREFIX + name, max(1, ttl)
        self._last = 0.0

    def beat(self, force: bool = False) -> None:
        """Refresh the key, at most every third of its life (it is called once per delivery)."""
        now = time.monotonic()
        if force or now - self._last > self.ttl / 3:
            self.redis.set(self.key, int(time.time()), ex=self.ttl)
            self._last = now

    def stop(self) -> None:
        self.redis.delete(self.key)

    @classmethod
    def alive(cls, conn: redis.Redis, names: Iterable[str]) -> set[str]:
        names = list(names)
        with conn.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(cls.PREFIX + name)
            found = pipe.execute()
        return {name for name, hit in zip(names, found, strict=True) if hit}


def day_key(local: datetime) -> str:
    return local.strftime("%Y%m%d")
