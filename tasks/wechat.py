"""The outbound clients, built once per worker process from its settings and shared Redis."""

from __future__ import annotations

from functools import cache

from foundation.services import services
from wechat.api import OAClient, WeComClient


@cache
def _clients(key: int) -> tuple[OAClient, WeComClient]:
    svc = services()
    return OAClient(svc.settings, svc.redis_slow), WeComClient(svc.settings, svc.redis_slow)


def oa_client() -> OAClient:
    return _clients(id(services()))[0]


def wecom_client() -> WeComClient:
    return _clients(id(services()))[1]
