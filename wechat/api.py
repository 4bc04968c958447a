"""Outbound calls to the WeChat OA and WeCom APIs: one typed method per API WeLead uses.

wechatpy's clients are kept for their request building; how they are called (API base, the token shared in Redis,
one retry on a refused token, typed errors) is wechat.transport.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlencode

import redis

from wechat.errors import WeChatAPIError
from wechat.settings import WeChatSettings
from wechat.transport import OAWeChatPy, TokenCache, WorkWeChatPy

TAG_BATCH = 50  # tags/members/batchtagging takes at most 50 openids a call
TRANSFER_BATCH = 100  # externalcontact/transfer_customer takes at most 100 customers a call
QR_MAX_EXPIRE = 2_592_000  # 30 days, the longest a temporary QR code lives
ERR_TAG_EXISTS = 45157


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _template_data(data: dict[str, Any]) -> dict[str, dict]:
    """Accept {"key": "text"} as shorthand for WeChat's {"key": {"value": "text"}}."""
    return {key: value if isinstance(value, dict) else {"value": str(value)} for key, value in data.items()}


def _qrcode_body(scene: str | int, permanent: bool, expire_seconds: int) -> dict[str, Any]:
    if isinstance(scene, bool) or not isinstance(scene, (str, int)):
        raise TypeError(f"a QR scene is a str or an int, not {type(scene).__name__}")
    kind = "STR_SCENE" if isinstance(scene, str) else "SCENE"
    field = "scene_str" if isinstance(scene, str) else "scene_id"
    body: dict[str, Any] = {
        "action_name": f"QR_LIMIT_{kind}" if permanent else f"QR_{kind}",
        "action_info": {"scene": {field: scene}},
    }
    if not permanent:
        body["expire_seconds"] = min(int(expire_seconds), QR_MAX_EXPIRE)
    return body


def showqrcode_url(ticket: str) -> str:
    """Where WeChat serves the image for a ticket (WeLead usually renders the `url` content itself)."""
    return "https://mp.weixin.qq.com/cgi-bin/showqrcode?" + urlencode({"ticket": ticket})


class OAClient:
    """The Official Account API calls WeLead makes. `raw` is the wechatpy client (same token, same errors)."""

    def __init__(self, settings: WeChatSettings, conn: redis.Redis, *, timeout: float | None = None) -> None:
        self.raw = OAWeChatPy(settings, conn, timeout or settings.http_timeout)

    @property
    def tokens(self) -> TokenCache:
        return self.raw.tokens

    def close(self) -> None:
        """Close pooled HTTP connections (long-lived workers keep them; tests and CLI commands close)."""
        self.raw.close()

    def user_info(self, openid: str, lang: str = "zh_CN") -> dict:
        """Profile of a follower: subscribe, unionid, subscribe_scene, qr_scene(_str), tagid_list (no nickname)."""
        return self.raw.user.get(openid, lang=lang)

    def tags(self) -> list[dict]:
        return list(self.raw.get("tags/get").get("tags", []))

    def create_tag(self, name: str) -> int:
        """Tag id for `name`, creating the tag if needed (45157: it exists already, so look it up)."""
        try:
            return int(self.raw.post("tags/create", data={"tag": {"name": name}})["tag"]["id"])
        except WeChatAPIError as exc:
            if exc.errcode != ERR_TAG_EXISTS:
                raise
        for tag in self.tags():
            if tag.get("name") == name:
                return int(tag["id"])
        raise WeChatAPIError(ERR_TAG_EXISTS, f"tag {name!r} exists but is not listed by tags/get")

    def tag_users(self, tag_id: int, openids: Iterable[str]) -> int:
        """Tag followers, 50 per call (WeChat's limit). Tagging is idempotent: on error, retry the whole list.

        Returns the number of API calls made.
        """
        return self._tag_members("batchtagging", tag_id, openids)

    def untag_users(self, tag_id: int, openids: Iterable[str]) -> int:
        """Untag followers, 50 per call (WeChat's limit). Untagging is idempotent: on error, retry the whole list.

        Returns the number of API calls made.
        """
        return self._tag_members("batchuntagging", tag_id, openids)

    def _tag_members(self, action: str, tag_id: int, openids: Iterable[str]) -> int:
        calls = 0
        for batch in chunks(list(openids), TAG_BATCH):
            self.raw.post(f"tags/members/{action}", data={"tagid": int(tag_id), "openid_list": batch})
            calls += 1
        return calls

    def send_template(
        self,
        openid: str,
        template_id: str,
        data: dict[str, Any],
        url: str | None = None,
        miniprogram: dict[str, str] | None = None,
        client_msg_id: str | None = None,
    ) -> int:
        """Send a template message and return WeChat's msgid (TEMPLATESENDJOBFINISH reports on it later).

        `client_msg_id` makes WeChat drop a repeat for the same openid within 10 minutes: pass the delivery's
        idempotency key.
        """
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _template_data(data)}
        optional = {"url": url, "miniprogram": miniprogram, "client_msg_id": client_msg_id}
        body.update({key: value for key, value in optional.items() if value})
        return int(self.raw.post_json("message/template/send", body)["msgid"])

    def send_custom_text(self, openid: str, text: str) -> None:
        """Customer-service text: only inside the window WeChat opens after the follower's last action (45015)."""
        body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        self.raw.post_json("message/custom/send", body)

    def send_custom_image(self, openid: str, media_id: str) -> None:
        """Customer-service image (a temporary media id from `upload_image`), inside the same window as text."""
        body = {"touser": openid, "msgtype": "image", "image": {"media_id": media_id}}
        self.raw.post_json("message/custom/send", body)

    def upload_image(self, data: bytes, filename: str = "poster.png") -> str:
        """Upload an image as temporary media (WeChat keeps it 3 days); returns its media_id. Multipart, so it goes
        through requests rather than the JSON fast path."""
        kind = "image/jpeg" if filename.lower().endswith((".jpg", ".jpeg")) else "image/png"
        answer = self.raw.post("media/upload", params={"type": "image"}, files={"media": (filename, data, kind)})
        return str(answer["media_id"])

    def create_qrcode(self, scene: str | int, permanent: bool, expire_seconds: int = QR_MAX_EXPIRE) -> dict:
        """A parametric QR code: str scenes become *_STR_SCENE, ints *_SCENE; temporary ones expire (≤ 30 days).

        Returns ticket, url (the content to encode) and expire_seconds (None for a permanent code).
        """
        answer = self.raw.post("qrcode/create", data=_qrcode_body(scene, permanent, expire_seconds))
        expires = answer.get("expire_seconds")
        return {
            "ticket": answer["ticket"],
            "url": answer["url"],
            "expire_seconds": None if permanent or expires is None else int(expires),
        }

    def create_menu(self, menu: dict[str, Any]) -> None:
        """Replace the account's custom menu (`{"button": [...]}`)."""
        self.raw.post("menu/create", data=menu)


def _invalid_users(answer: dict) -> list[str]:
    """WeCom reports recipients it dropped in `invaliduser` ("a|b"), with errcode 0."""
    return [user for user in str(answer.get("invaliduser") or "").split("|") if user]


class WeComClient:
    """The WeCom API calls WeLead makes (app messages to reps, contact ways, external contacts)."""

    def __init__(self, settings: WeChatSettings, conn: redis.Redis, *, timeout: float | None = None) -> None:
        self.raw = WorkWeChatPy(settings, conn, timeout or settings.http_timeout)
        self.agent_id = int(settings.wecom_agent_id)

    @property
    def tokens(self) -> TokenCache:
        return self.raw.tokens

    def close(self) -> None:
        """Close pooled HTTP connections (long-lived workers keep them; tests and CLI commands close)."""
        self.raw._http.close()

    def _send(self, userids: Sequence[str], message: dict[str, Any]) -> list[str]:
        body = {"touser": "|".join(userids), "agentid": self.agent_id, **message}
        return _invalid_users(self.raw.post("message/send", data=body))

    def send_text(self, userids: Sequence[str], text: str) -> list[str]:
        """App text message to members; returns the userids WeCom refused (not in the app's visible range...)."""
        return self._send(userids, {"msgtype": "text", "text": {"content": text}})

    def send_markdown(self, userids: Sequence[str], markdown: str) -> list[str]:
        """App markdown message (shown in the WeCom app only); returns the refused userids."""
        return self._send(userids, {"msgtype": "markdown", "markdown": {"content": markdown}})

    def add_contact_way(
        self,
        state: str,
        userids: Sequence[str],
        *,
        skip_verify: bool = True,
        remark: str | None = None,
        multi: bool = False,
    ) -> dict:
        """A "contact me" QR code for one rep (type 1) or several (type 2, or `multi`: a team code whose list
        changes later); `state` comes back in the add event.

        Returns config_id (keep it to edit or delete the way) and qr_code (the image URL).
        """
        body: dict[str, Any] = {
            "type": 2 if multi or len(userids) != 1 else 1,
            "scene": 2,
            "state": state,
            "user": list(userids),
            "skip_verify": skip_verify,
        }
        if remark:
            body["remark"] = remark
        answer = self.raw.post("externalcontact/add_contact_way", data=body)
        return {"config_id": answer["config_id"], "qr_code": answer.get("qr_code", "")}

    def update_contact_way(self, config_id: str, userids: Sequence[str]) -> None:
        """Replace the users a contact way lists (a team code's eligible reps); the QR code and state stay."""
        self.raw.post("externalcontact/update_contact_way", data={"config_id": config_id, "user": list(userids)})

    def get_external_contact(self, external_userid: str) -> dict:
        """The customer's profile (external_contact) and the members following them (follow_user, with state)."""
        answer = self.raw.get("externalcontact/get", params={"external_userid": external_userid})
        return {key: value for key, value in answer.items() if key not in ("errcode", "errmsg")}

    def send_welcome_msg(self, welcome_code: str, text: str) -> None:
        """Greet a new customer with the WelcomeCode of their add event: once, within 20 s of it (41051: a welcome
        already went out for this code; 41096 may be retried)."""
        body = {"welcome_code": welcome_code, "text": {"content": text}}
        self.raw.post("externalcontact/send_welcome_msg", data=body)

    def transfer_customers(
        self,
        handover: str,
        takeover: str,
        external_userids: Sequence[str],
        *,
        resigned: bool = False,
        message: str | None = None,
    ) -> dict[str, int]:
        """Hand customers from one member to another: 在职继承, or 离职继承 when `handover` has left the corp.

        One call, at most 100 customers (WeCom's limit; more raise ValueError, so the caller knows what was sent).
        Returns each customer's errcode: 0 means WeCom started the transfer (taken over within 24 h unless the
        customer refuses), not that it is done: ask `transfer_results`. `message` (on the job only, ≤ 200
        characters) is what the customer is told; WeCom's default text when None.
        """
        if not 0 < len(external_userids) <= TRANSFER_BATCH:
            raise ValueError(f"1 to {TRANSFER_BATCH} customers a call, not {len(external_userids)}")
        body: dict[str, Any] = {"handover_userid": handover, "takeover_userid": takeover}
        body["external_userid"] = list(external_userids)
        if message and not resigned:
            body["transfer_success_msg"] = message
        path = "externalcontact/resigned/transfer_customer" if resigned else "externalcontact/transfer_customer"
        answer = self.raw.post(path, data=body)
        return {str(c["external_userid"]): int(c.get("errcode", 0)) for c in answer.get("customer", [])}

    def transfer_results(self, handover: str, takeover: str, *, resigned: bool = False) -> dict[str, dict]:
        """Where each customer handed from `handover` to `takeover` stands, every page read: external_userid →
        {"status": 1 taken over | 2 waiting | 3 refused | 4 takeover's limit | 5 no record, "takeover_time"}."""
        path = "externalcontact/resigned/transfer_result" if resigned else "externalcontact/transfer_result"
        found: dict[str, dict] = {}
        cursor = ""
        while True:
            body = {"handover_userid": handover, "takeover_userid": takeover, "cursor": cursor}
            answer = self.raw.post(path, data=body)
            for c in answer.get("customer", []):
                found[str(c["external_userid"])] = {"status": int(c["status"]), "takeover_time": c.get("takeover_time")}
            cursor = str(answer.get("next_cursor") or "")
            if not cursor:
                return found
