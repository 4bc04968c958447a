"""The send path's batching (issue 16): tokens taken in blocks stay within the rate, a page is claimed once."""

import threading
import time

import redis
from sqlalchemy import select

from scrm import delivery_pages
from scrm.delivery_models import Delivery
from tasks.ratelimit import TokenBucket
from tasks.send import message_library, rules
from tests.messaging_kit import add_followers, svc, with_messaging


def test_blocks_never_pass_the_rate_across_clients(redis_url):
    """Four clients taking blocks of 5 from a 200/s bucket (capacity 20): never more than capacity + rate * T."""
    rate, capacity, seconds, taken = 200.0, 20, 1.5, []
    lock = threading.Lock()

    def client() -> None:
        bucket = TokenBucket(redis.Redis.from_url(redis_url), "test:blocks", rate, capacity=capacity)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            bucket.acquire(5)
            now = time.monotonic()
            with lock:
                taken.extend([now] * 5)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken.sort()
    for i, start in enumerate(taken):  # every window from a grant on
        for j in range(i, len(taken)):
            if taken[j] - start > 0.5:
                break
            assert j - i + 1 <= capacity + rate * (taken[j] - start) + 5, (i, j)
    achieved = (len(taken) - 5) / (taken[-1] - taken[0])
    assert 0.9 * rate <= achieved <= 1.1 * rate, achieved


def test_block_size_is_bounded():
    bucket = TokenBucket.__new__(TokenBucket)
    bucket.rate, bucket.capacity = 500.0, 50
    assert bucket.block(50) == 10 and bucket.block(3) == 3
    bucket.rate, bucket.capacity = 60.0, 6
    assert bucket.block(50) == 1


def test_two_claimers_split_a_page(app, client, auth_headers):
    svc(app).settings = with_messaging(svc(app).settings)
    add_followers(app, 40, tags=("vip",))
    body = {"segment": {"tag": "vip"}, "template": "event_checkin", "data": {"event_name": "Expo"}}
    assert client.post("/api/v1/broadcasts", json=body, headers=auth_headers).status_code == 202
    from tasks.broadcast import fan_out

    with app.app_context():
        fan_out(1)
        with svc(app).db.sessions() as s:
            ids = list(s.scalars(select(Delivery.id).order_by(Delivery.id)))
        from foundation.clock import utcnow

        with svc(app).db.transaction() as s:
            first = delivery_pages.prepare(s, ids, rules(), message_library(), utcnow())
        with svc(app).db.transaction() as s:
            second = delivery_pages.prepare(s, ids, rules(), message_library(), utcnow())
    assert len(first) == 40 and second == []
    assert len({o.payload["template_id"] for o in first}) == 1 and len({o.client_msg_id for o in first}) == 40
