"""OA web authorization, silent scope (snsapi_base): who opened a page inside WeChat, as an openid.

1. `authorize_url(...)`: send the browser to `open.weixin.qq.com/connect/oauth2/authorize` (scope snsapi_base: no
   consent screen); WeChat sends it back to `redirect_uri?code=...&state=...`.
2. `exchange(...)`: `sns/oauth2/access_token` (appid, secret, code, grant_type=authorization_code) → openid. A code
   works once, for five minutes: 40029 invalid code, 40163 code been used.

Both hosts follow the configured OA API base: `<base>/cgi-bin/` → `<base>/sns/`, and the built-in sandbox's base
→ its fake authorize page (`/sandbox/open/...`), so the flow runs offline against `wechat.sandbox_oauth`.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

import requests

from wechat.settings import WeChatSettings

OPEN_BASE = "https://open.weixin.qq.com/"
SANDBOX_API = "/sandbox/oa/cgi-bin/"
INVALID_CODE, CODE_USED = 40029, 40163


class OAuthError(Exception):
    """The exchange failed: WeChat's errcode (0 when the call itself failed: timeout, refused, not JSON)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg


def open_base(settings: WeChatSettings) -> str:
    api = settings.wechat_api_base
    return api.replace(SANDBOX_API, "/sandbox/open/") if SANDBOX_API in api else OPEN_BASE


def sns_base(settings: WeChatSettings) -> str:
    api = settings.wechat_api_base
    return api[: -len("cgi-bin/")] + "sns/" if api.endswith("cgi-bin/") else api + "../sns/"


def authorize_url(settings: WeChatSettings, redirect_uri: str, state: str) -> str:
    query = urlencode({"appid": settings.wechat_app_id, "redirect_uri": redirect_uri, "response_type": "code",
                       "scope": "snsapi_base", "state": state}, quote_via=quote)  # fmt: skip
    return f"{open_base(settings)}connect/oauth2/authorize?{query}#wechat_redirect"


def exchange(settings: WeChatSettings, code: str, timeout: float) -> str:
    """The openid a code stands for; OAuthError otherwise. One GET with a timeout, no retry (a code works once)."""
    params = {"appid": settings.wechat_app_id, "secret": settings.wechat_app_secret, "code": code,
              "grant_type": "authorization_code"}  # fmt: skip
    try:
        response = requests.get(f"{sns_base(settings)}oauth2/access_token", params=params, timeout=timeout)
        answer = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise OAuthError(0, f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(answer, dict):
        raise OAuthError(0, "the answer is not a JSON object")
    if answer.get("errcode"):
        raise OAuthError(int(answer["errcode"]), str(answer.get("errmsg", "")))
    openid = answer.get("openid")
    if not isinstance(openid, str) or not openid:
        raise OAuthError(0, "no openid in the answer")
    return openid
