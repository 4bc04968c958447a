"""Shared limits in Redis (token bucket, breaker, daily quota, heartbeats) and the guards' clock arithmetic."""

import threading
import time
from datetime import datetime

import pytest
import redis

from foundation.config import ConfigError
from scrm.guards import SendRules, month_start, quiet_until
from tasks.ratelimit import Breaker, DailyQuota, Heartbeat, TokenBucket


@pytest.fixture
def conn(redis_url):
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def test_bucket_holds_the_rate_across_clients(redis_url):
    """Four clients (each its own connection, as separate workers have) share 200/s: together they get 200/s."""
    rate, seconds, taken = 200.0, 1.5, []

    def client() -> None:
        bucket = TokenBucket(redis.Redis.from_url(redis_url), "test:bucket", rate, capacity=1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            bucket.acquire()
            taken.append(time.monotonic())

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    span = max(taken) - min(taken)
    achieved = (len(taken) - 1) / span
    assert 0.93 * rate <= achieved <= 1.03 * rate, achieved


def test_reserve_refuses_waits_over_the_limit(conn):
    bucket = TokenBucket(conn, "test:slow", rate=1.0, capacity=2, max_wait=0.5)
    assert bucket.reserve() == 0 and bucket.reserve() == 0  # the saved-up burst
    wait = bucket.reserve()
    assert -1.0 <= wait < -0.5  # nothing reserved: the next token is ~1 s away
    assert bucket.reserve() < 0  # and it was not consumed by the refusal


def test_breaker_trips_past_the_budget_and_slides(conn):
    b = Breaker(conn, "b1", budget=0.1, window=20)
    assert [b.observe(True) for _ in range(2)] == [None, None]
    assert b.observe(False) is None
    reason = b.observe(True)
    assert reason == "error rate 3/4 over the last 4 sends passed the budget of 10% of 20"
    for _ in range(20):
        b.observe(False)
    assert b.observe(True) is None  # the old errors slid out of the window
    Breaker.forget(conn, "b1")
    assert conn.exists(Breaker.key_for("b1")) == 0


def test_daily_quota(conn):
    q = DailyQuota(conn, "template", limit=5)
    assert [q.take("20260101") for _ in range(3)] == [1, 1, 1]
    assert q.take("20260101", 4) == 2 and q.take("20260101") == 0  # what was left, then nothing
    assert q.take("20260102", 3) == 3


def test_heartbeats(conn):
    beat = Heartbeat(conn, "job-1", ttl=1)
    beat.beat(force=True)
    assert Heartbeat.alive(conn, ["job-1", "job-2"]) == {"job-1"}
    time.sleep(1.1)
    assert Heartbeat.alive(conn, ["job-1"]) == set()


def utc(*args) -> datetime:
    return datetime(*args)


def test_quiet_hours_span_midnight_in_shanghai():
    rules = SendRules(quiet_hours="22:00-08:00", timezone="Asia/Shanghai")
    assert quiet_until(rules, utc(2026, 3, 1, 13, 59)) is None  # 21:59 local
    assert quiet_until(rules, utc(2026, 3, 1, 14, 0)) == utc(2026, 3, 2, 0, 0)  # 22:00 local → 08:00 next day
    assert quiet_until(rules, utc(2026, 3, 1, 23, 30)) == utc(2026, 3, 2, 0, 0)  # 07:30 local
    assert quiet_until(rules, utc(2026, 3, 2, 0, 0)) is None  # 08:00 local
    daytime = SendRules(quiet_hours="12:00-13:30", timezone="Europe/Paris")
    assert quiet_until(daytime, utc(2026, 7, 1, 10, 15)) == utc(2026, 7, 1, 11, 30)
    assert quiet_until(SendRules(quiet_hours="off"), utc(2026, 3, 1, 15, 0)) is None


def test_mass_quota_month_is_local():
    rules = SendRules(timezone="Asia/Shanghai")
    assert month_start(rules, utc(2026, 2, 28, 17, 0)) == utc(2026, 2, 28, 16, 0)  # already March 1st in Shanghai


def test_rules_from_the_environment():
    rules = SendRules.load({"WELEAD_SEND_RATE": "500", "WELEAD_FREQ_CAP": "0", "WELEAD_QUIET_HOURS": "off"})
    assert (rules.rate, rules.freq_cap, rules.quiet_window(), rules.bucket_size) == (500.0, 0, None, 50)
    assert SendRules.load({}, {"rate": 7.0}).rate == 7.0
    for env, message in [
        ({"WELEAD_SEND_RATE": "fast"}, "WELEAD_SEND_RATE: expected float"),
        ({"WELEAD_QUIET_HOURS": "late"}, "HH:MM-HH:MM"),
        ({"WELEAD_TIMEZONE": "Mars/Olympus"}, "unknown time zone"),
        ({"WELEAD_SEND_RETRIES": "-1"}, "must be >= 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            SendRules.load(env)
