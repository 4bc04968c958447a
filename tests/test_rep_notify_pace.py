"""The per-member pacer (WeCom: 30 app messages a minute, 1,000 an hour) and the notification settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis

from scrm.notices import dormant_after
from tasks.notify_pace import NotifyRules, Pacer


@pytest.fixture
def conn(redis_url):
    return redis.Redis.from_url(redis_url)


def test_singles_then_one_message_per_gather(conn):
    pace = Pacer(conn, NotifyRules(singles=3, gather=30))
    granted = [pace.admit("rep-a")[0] is not None for _ in range(10)]
    assert granted == [True] * 3 + [False] * 7
    member, wait = pace.admit("rep-a")
    assert member is None and 29 < wait <= 30
    assert pace.admit("rep-b")[0] is not None  # members are paced apart


def test_never_more_than_the_minute_limit(conn):
    pace = Pacer(conn, NotifyRules(singles=100, gather=0, per_minute=25))
    assert sum(pace.admit("rep-a")[0] is not None for _ in range(100)) == 25
    assert pace.sent_last_minute("rep-a") == 25
    _, wait = pace.admit("rep-a")
    assert 59 < wait <= 60


def test_the_hour_limit(conn):
    pace = Pacer(conn, NotifyRules(singles=100, gather=0, per_minute=30, per_hour=40))
    now_ms = int(conn.time()[0] * 1000)
    conn.zadd(Pacer.PREFIX + "rep-a", {f"old-{i}": now_ms - 30 * 60_000 - i for i in range(40)})  # half an hour ago
    member, wait = pace.admit("rep-a")
    assert member is None and 29 * 60 < wait <= 30 * 60


def test_a_released_reservation_frees_its_slot(conn):
    pace = Pacer(conn, NotifyRules(singles=1, gather=60))
    member, _ = pace.admit("rep-a")
    assert pace.admit("rep-a")[0] is None
    pace.release("rep-a", member)
    assert pace.admit("rep-a")[0] is not None


def test_rules_from_the_environment_and_overrides():
    rules = NotifyRules.load({"WELEAD_NOTIFY_PER_MINUTE": "20", "WELEAD_NOTIFY_GATHER": "2.5"}, {"singles": 2})
    assert (rules.per_minute, rules.gather, rules.singles, rules.per_hour) == (20, 2.5, 2, 900)


@pytest.mark.parametrize(
    "environ",
    [{"WELEAD_NOTIFY_PER_MINUTE": "31"}, {"WELEAD_NOTIFY_PER_HOUR": "5000"}, {"WELEAD_NOTIFY_GATHER": "-1"},
     {"WELEAD_NOTIFY_SINGLES": "many"}],
)  # fmt: skip
def test_rules_above_wecoms_limits_or_malformed_are_refused(environ):
    with pytest.raises(ValueError):
        NotifyRules.load(environ)


def test_dormant_days_setting():
    assert dormant_after({}) == timedelta(days=30)
    assert dormant_after({"WELEAD_DORMANT_DAYS": "7"}) == timedelta(days=7)
    for bad in ("0", "-3", "a week"):
        with pytest.raises(ValueError):
            dormant_after({"WELEAD_DORMANT_DAYS": bad})
