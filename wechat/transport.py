"""How wechatpy is called: under the configured API base, with the access token shared in Redis, errors typed.

- every path, the token URL included, hangs under the configured API base (the sandbox or the real host);
- the access token lives in Redis, shared by all processes; one process refreshes it under a lock, the others wait
  and reread (two processes refreshing in turn would invalidate each other's token);
- a refused token (40001/40014/42001) is invalidated (only if no one replaced it yet) and the call retried once,
  never more (wechatpy's auto_retry loops without a cap);
- failures surface as `wechat.errors` types, so a sender knows whether resending is safe.

The typed clients built on this are in wechat.api.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import certifi
import redis
import requests
import urllib3
import wechatpy
import wechatpy.work
from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError, NewConnectionError, ProxyError
from wechatpy.exceptions import WeChatClientException

from wechat.errors import NotSent, Unknown, WeChatAPIError, WeChatError
from wechat.settings import WeChatSettings

log = logging.getLogger(__name__)

TOKEN_KEY = "welead:wechat:token"
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Connection": "keep-alive"}
POOL_SIZE = 4  # kept-alive connections per client (a worker sends from one thread)


TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


# Delete the cached token only if it is still the one that failed: another process may have refreshed it already.
_COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def transport_error(exc: requests.RequestException) -> NotSent | Unknown:
    """Sort a requests failure by whether the request may have reached WeChat."""
    if isinstance(exc, requests.ConnectTimeout) or _failed_to_connect(exc):
        return NotSent(f"{type(exc).__name__}: {exc}")
    return Unknown(f"{type(exc).__name__}: {exc}")


def _failed_to_connect(exc: requests.RequestException) -> bool:
    """Connection refused, DNS failure, connect timeout: urllib3 reports these as a MaxRetryError's reason.

    Errors after the connection was made (reset, remote closed, TLS trouble) count as unknown: the request may have
    been written already.
    """
    if not isinstance(exc, requests.ConnectionError) or not exc.args:
        return False
    reason = exc.args[0]
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if isinstance(reason, ProxyError):  # could not reach the egress proxy: nothing went further
        reason = reason.original_error
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _http_status_error(response: requests.Response | None) -> WeChatError:
    """WeChat answers 200 even for errors: another status comes from a proxy or a wrong base URL."""
    status = response.status_code if response is not None else 0
    if status == 0 or status >= 500:
        return Unknown(f"HTTP {status} from the API: the request may or may not have been processed")
    return WeChatAPIError(status, f"HTTP {status} from {response.url if response is not None else 'the API'}")


def api_error(exc: WeChatClientException) -> WeChatError:
    if exc.errcode is None:  # wechatpy's wrapper around raise_for_status()
        return _http_status_error(exc.response)
    return WeChatAPIError(int(exc.errcode), str(exc.errmsg or ""))


class TokenCache:
    """One access token per app for every process: kept in Redis, refreshed by one process at a time."""

    MARGIN = 300  # refresh this long before WeChat's expiry: clocks and in-flight requests
    LOCAL_TTL = 1.0  # seconds a process reuses the token it read before asking Redis again

    def __init__(self, conn: redis.Redis, key: str, fetch: Callable[[], dict], wait: float) -> None:
        self.redis = conn
        self.key = key
        self.lock_key = f"{key}:lock"
        self.wait = wait  # how long a refresher may hold the lock, and how long the others wait for it
        self._fetch = fetch
        self._compare_and_delete = conn.register_script(_COMPARE_AND_DELETE)
        self._local: tuple[str, float] | None = None

    def get(self) -> str:
        """The cached token, or a fresh one when none is cached. Kept in this process for a second (a sender would
        otherwise ask Redis once per message): WeChat honours a replaced token for minutes, and a refused one is
        invalidated, which forgets it here too."""
        now = time.monotonic()
        if self._local is not None and now < self._local[1]:
            return self._local[0]
        try:
            token = self._cached() or self._refresh()
        except redis.RedisError as exc:
            raise NotSent(f"access token cache unavailable: {exc}") from exc
        self._local = (token, now + self.LOCAL_TTL)
        return token

    def invalidate(self, token: str) -> bool:
        """Forget `token` after WeChat refused it, unless another process has replaced it meanwhile."""
        self._local = None
        try:
            return bool(self._compare_and_delete(keys=[self.key], args=[token]))
        except redis.RedisError as exc:
            raise NotSent(f"access token cache unavailable: {exc}") from exc

    def clear(self) -> None:
        self._local = None
        self.redis.delete(self.key)

    def _cached(self) -> str | None:
        value = self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def _refresh(self) -> str:
        lock = self.redis.lock(self.lock_key, timeout=self.wait, blocking_timeout=self.wait)
        if not lock.acquire():
            token = self._cached()
            if token:
                return token
            raise NotSent("timed out waiting for another process to refresh the access token")
        try:
            return self._cached() or self._fetch_and_store()
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:  # held past its timeout: someone else may own it now
                log.warning("token refresh lock %s expired while held", self.lock_key)

    def _fetch_and_store(self) -> str:
        answer = self._fetch()
        token = str(answer["access_token"])
        expires_in = int(answer.get("expires_in", 7200))
        ttl = max(1, expires_in - min(self.MARGIN, expires_in // 5))
        self.redis.set(self.key, token, ex=ttl)
        log.info("fetched a new access token for %s (cached %ds)", self.key, ttl)
        return token


def _pool(api_base: str, timeout: float, bundle: str | None) -> urllib3.HTTPConnectionPool | None:
    """A keep-alive connection pool to the API host, or None when a proxy is configured (requests handles those)."""
    if requests.utils.get_environ_proxies(api_base):
        return None
    kw: dict[str, Any] = {"maxsize": POOL_SIZE, "block": False, "retries": False}
    kw["timeout"] = urllib3.Timeout(connect=timeout, read=timeout)
    if urlsplit(api_base).scheme == "https":
        kw.update(cert_reqs="CERT_REQUIRED", ca_certs=bundle or certifi.where())
    return urllib3.connection_from_url(api_base, **kw)


def _answer(response: urllib3.BaseHTTPResponse, endpoint: str) -> dict[str, Any]:
    """WeChat's JSON answer, or the typed error it stands for (the same sorting as `_attempt`'s)."""
    if response.status != 200:
        if response.status >= 500:
            raise Unknown(f"HTTP {response.status} from the API: the request may or may not have been processed")
        raise WeChatAPIError(response.status, f"HTTP {response.status} from {endpoint}")
    try:
        answer = json.loads(response.data.decode("utf-8", "ignore"), strict=False)
    except ValueError:
        raise Unknown(f"{endpoint}: the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise Unknown(f"{endpoint}: the answer is not a JSON object")
    errcode = answer.get("errcode", 0)
    if errcode:
        raise WeChatAPIError(int(errcode), str(answer.get("errmsg", "")))
    return answer


class _SharedToken:
    """Mixed in front of a wechatpy client: shared token, one refresh-and-retry, typed errors, base URL."""

    tokens: TokenCache
    timeout: float
    _http: requests.Session
    _fast: urllib3.HTTPConnectionPool | None

    def _share(self, api_base: str, conn: redis.Redis, key: str) -> None:
        self.API_BASE_URL = api_base
        # requests re-reads proxy and CA settings from the environment on every call (~10% of a worker's CPU per
        # message); read them once here instead.
        self._http.proxies.update(requests.utils.get_environ_proxies(api_base))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self._http.verify = bundle
        self._http.trust_env = False
        self.tokens = TokenCache(conn, key, self.fetch_access_token, wait=2 * float(self.timeout) + 2)
        self._fast, self._path = _pool(api_base, float(self.timeout), bundle), urlsplit(api_base).path

    def post_json(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to an API path over this client's keep-alive pool: the send path's call, with the same shared
        token, one refresh on a refused token and typed errors as `_request`, at a fraction of requests' CPU."""
        if self._fast is None:
            return self.post(endpoint, data=body)  # type: ignore[attr-defined]
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        token = self.tokens.get()
        try:
            return self._post_once(token, endpoint, data)
        except WeChatAPIError as exc:
            if not exc.token_problem:
                raise
            log.info("access token refused (%s): refreshing once", exc.errcode)
            self.tokens.invalidate(token)
        return self._post_once(self.tokens.get(), endpoint, data)

    def _post_once(self, token: str, endpoint: str, data: bytes) -> dict[str, Any]:
        assert self._fast is not None
        url = f"{self._path}{endpoint}?access_token={quote(token, safe='')}"
        try:
            response = self._fast.urlopen("POST", url, body=data, headers=JSON_HEADERS, redirect=False)
        except ConnectTimeoutError as exc:  # NewConnectionError too: nothing reached the API
            raise NotSent(f"{type(exc).__name__}: {exc}") from exc
        except HTTPError as exc:  # read timeout, reset, dropped: the request may have been written
            raise Unknown(f"{type(exc).__name__}: {exc}") from exc
        return _answer(response, endpoint)

    def close(self) -> None:
        """Close pooled HTTP connections (long-lived workers keep them; tests and CLI commands close)."""
        self._http.close()
        if self._fast is not None:
            self._fast.close()

    def fetch_access_token(self) -> dict:
        raise NotImplementedError

    @property
    def access_token(self) -> str:
        """wechatpy reads this for APIs that build their own URLs; our `_request` sets the token itself."""
        return self.tokens.get()

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        """wechatpy's single entry point for API calls: add the shared token, retry once if it is refused."""
        kwargs.setdefault("params", {})
        token = self.tokens.get()
        try:
            return self._attempt(token, method, url_or_endpoint, kwargs)
        except WeChatAPIError as exc:
            if not exc.token_problem:
                raise
            log.info("access token refused (%s): refreshing once", exc.errcode)
            self.tokens.invalidate(token)
        return self._attempt(self.tokens.get(), method, url_or_endpoint, kwargs)

    def _attempt(self, token: str, method: str, url_or_endpoint: str, kwargs: dict[str, Any]) -> Any:
        kwargs["params"]["access_token"] = token
        try:
            result = super()._request(method, url_or_endpoint, **kwargs)  # type: ignore[misc]
        except WeChatClientException as exc:
            raise api_error(exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc) from exc
        if isinstance(result, requests.Response):  # wechatpy hands back what it cannot parse as JSON
            raise Unknown(f"{url_or_endpoint}: the answer is not JSON")
        return result

    def _get_token(self, endpoint: str, params: dict[str, str]) -> dict:
        """GET the token endpoint under the API base. The real message is not sent yet, so failures are NotSent."""
        try:
            response = self._http.get(f"{self.API_BASE_URL}{endpoint}", params=params, timeout=self.timeout)
        except TRANSPORT_ERRORS as exc:
            raise NotSent(f"access token fetch failed: {type(exc).__name__}: {exc}") from exc
        if not response.ok:
            raise NotSent(f"access token fetch failed: HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise NotSent("access token fetch failed: the answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise NotSent("access token fetch failed: the answer is not a JSON object")
        errcode = int(answer.get("errcode", 0) or 0)
        if errcode:
            raise WeChatAPIError(errcode, str(answer.get("errmsg", "")))
        if not answer.get("access_token"):
            raise NotSent("access token fetch failed: no access_token in the answer")
        return answer


class OAWeChatPy(_SharedToken, wechatpy.WeChatClient):
    def __init__(self, settings: WeChatSettings, conn: redis.Redis, timeout: float) -> None:
        super().__init__(settings.wechat_app_id, settings.wechat_app_secret, timeout=timeout, auto_retry=False)
        self._share(settings.wechat_api_base, conn, f"{TOKEN_KEY}:oa:{settings.wechat_app_id}")

    def fetch_access_token(self) -> dict:
        params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
        return self._get_token("token", params)


class WorkWeChatPy(_SharedToken, wechatpy.work.WeChatClient):
    def __init__(self, settings: WeChatSettings, conn: redis.Redis, timeout: float) -> None:
        super().__init__(settings.wecom_corp_id, settings.wecom_secret, timeout=timeout, auto_retry=False)
        key = f"{TOKEN_KEY}:wecom:{settings.wecom_corp_id}:{settings.wecom_agent_id}"
        self._share(settings.wecom_api_base, conn, key)

    def fetch_access_token(self) -> dict:
        return self._get_token("gettoken", {"corpid": self.corp_id, "corpsecret": self.secret})
