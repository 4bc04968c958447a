"""Build the callbacks WeChat and WeCom would send, signed (and encrypted) with the configured secrets.

Used by `flask wechat simulate` and by tests. Signing here is written independently of the receiving side
(wechat/envelope.py): a simulator that shared the server's code would hide the server's mistakes.

- OA: plaintext mode (`signature` over token, timestamp, nonce), or safe mode when an EncodingAESKey is configured
  (`encrypt_type=aes`, `msg_signature` over token, timestamp, nonce and the ciphertext; body `<ToUserName/><Encrypt/>`).
- WeCom: always encrypted, receive id = CorpID.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any, Literal

import xmltodict
from wechatpy.crypto import WeChatCrypto as OACrypto
from wechatpy.work.crypto import WeChatCrypto as WorkCrypto

from wechat.sandbox_welcome import mint_welcome_code
from wechat.settings import WeChatSettings

Channel = Literal["oa", "wecom"]
Fields = dict[str, Any]

OA_ORIGINAL_ID = "gh_welead0sandbox"  # ToUserName: the account's original id (gh_...), not its AppID
DEFAULT_OPENID = "oWeLeadSimulatedFollower0001"
DEFAULT_USERID = "sandbox-rep"
DEFAULT_EXTERNAL_USERID = "wmWeLeadSimulatedCustomer001"

OA_EVENTS = {
    "subscribe": "subscribe",
    "unsubscribe": "unsubscribe",
    "scan": "SCAN",
    "click": "CLICK",
    "view": "VIEW",
    "location-event": "LOCATION",
    "template-status": "TEMPLATESENDJOBFINISH",
    "mass-status": "MASSSENDJOBFINISH",
    "kf-create": "kf_create_session",  # customer-service sessions: a rep took, closed or passed on the follower
    "kf-close": "kf_close_session",
    "kf-switch": "kf_switch_session",
}
OA_MESSAGES = ("text", "image", "voice", "video", "shortvideo", "location", "link")
WECOM_CHANGES = {
    "wecom-add-contact": "add_external_contact",
    "wecom-edit-contact": "edit_external_contact",
    "wecom-del-contact": "del_external_contact",
    "wecom-del-follow-user": "del_follow_user",
    "wecom-transfer-fail": "transfer_fail",
}
WECOM_MESSAGES = ("wecom-text",)
KINDS = (*OA_EVENTS, *OA_MESSAGES, *WECOM_CHANGES, *WECOM_MESSAGES)

OPTIONS = frozenset({
    "openid", "create_time", "scene", "ticket", "key", "url", "latitude", "longitude", "precision", "scale", "label",
    "content", "msg_id", "media_id", "pic_url", "format", "recognition", "thumb_media_id", "title", "description",
    "status", "total_count", "sent_count", "error_count", "userid", "external_userid", "state", "welcome_code",
    "agent_id", "to_user", "timestamp", "nonce", "kf_account", "to_kf_account",
})  # fmt: skip
DEFAULT_KF_ACCOUNT = "kf2001@welead_sandbox"  # customer-service accounts are <prefix>@<the account's WeChat id>

_last_msg_id = 0


def is_wecom(kind: str) -> bool:
    return kind.startswith("wecom-")


def callback_path(kind: str) -> str:
    """Where WeLead listens for this kind of callback."""
    return "/wecom/callback" if is_wecom(kind) else "/wechat/callback"


def sign(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the parts sorted and concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def next_msg_id() -> int:
    """A MsgId not used before by this process (WeLead deduplicates messages on it)."""
    global _last_msg_id
    _last_msg_id = max(time.time_ns() // 1000, _last_msg_id + 1)
    return _last_msg_id


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(fields: Fields) -> str:
    """WeChat-style XML: text in CDATA (a "]]>" inside is split, as XML requires), numbers bare."""
    inner = "".join(
        f"<{name}>{value if isinstance(value, (int, float)) else _cdata(str(value))}</{name}>"
        for name, value in fields.items()
    )
    return f"<xml>{inner}</xml>"


def _need(options: Fields, name: str, kind: str) -> Any:
    value = options.get(name)
    if value in (None, ""):
        raise ValueError(f"{kind} needs --{name.replace('_', '-')}")
    return value


# --- OA payloads ------------------------------------------------------------------------------------------------------


def _subscribe(o: Fields) -> Fields:
    if o.get("scene") in (None, ""):
        return {"EventKey": ""}
    return {"EventKey": f"qrscene_{o['scene']}", "Ticket": o.get("ticket") or _ticket()}


def _scan(o: Fields) -> Fields:
    return {"EventKey": str(_need(o, "scene", "scan")), "Ticket": o.get("ticket") or _ticket()}


def _location_event(o: Fields) -> Fields:
    return {
        "Latitude": float(o.get("latitude", 23.137466)),
        "Longitude": float(o.get("longitude", 113.352425)),
        "Precision": float(o.get("precision", 119.385040)),
    }


def _template_status(o: Fields) -> Fields:
    return {"MsgID": int(_need(o, "msg_id", "template-status")), "Status": o.get("status") or "success"}


def _mass_status(o: Fields) -> Fields:
    total = int(o.get("total_count", 2))
    sent = int(o.get("sent_count", total))
    return {
        "MsgID": int(_need(o, "msg_id", "mass-status")),
        "Status": o.get("status") or "send success",
        "TotalCount": total,
        "FilterCount": total,
        "SentCount": sent,
        "ErrorCount": int(o.get("error_count", total - sent)),
    }


def _kf_switch(o: Fields) -> Fields:
    return {"FromKfAccount": o.get("kf_account") or DEFAULT_KF_ACCOUNT,
            "ToKfAccount": o.get("to_kf_account") or "kf2002@welead_sandbox"}  # fmt: skip


OA_EVENT_FIELDS: dict[str, Callable[[Fields], Fields]] = {
    "subscribe": _subscribe,
    "unsubscribe": lambda o: {"EventKey": ""},
    "scan": _scan,
    "click": lambda o: {"EventKey": str(_need(o, "key", "click"))},
    "view": lambda o: {"EventKey": str(_need(o, "url", "view"))},
    "location-event": _location_event,
    "template-status": _template_status,
    "mass-status": _mass_status,
    "kf-create": lambda o: {"KfAccount": o.get("kf_account") or DEFAULT_KF_ACCOUNT},
    "kf-close": lambda o: {"KfAccount": o.get("kf_account") or DEFAULT_KF_ACCOUNT},
    "kf-switch": _kf_switch,
}

OA_MESSAGE_FIELDS: dict[str, Callable[[Fields], Fields]] = {
    "text": lambda o: {"Content": o.get("content") or "hello"},
    "image": lambda o: {"PicUrl": o.get("pic_url") or "http://mmbiz.qpic.cn/sandbox.jpg", "MediaId": _media(o)},
    "voice": lambda o: {
        "MediaId": _media(o),
        "Format": o.get("format") or "amr",
        **({"Recognition": o["recognition"]} if o.get("recognition") else {}),
    },
    "video": lambda o: {"MediaId": _media(o), "ThumbMediaId": o.get("thumb_media_id") or "sandbox-thumb"},
    "shortvideo": lambda o: {"MediaId": _media(o), "ThumbMediaId": o.get("thumb_media_id") or "sandbox-thumb"},
    "location": lambda o: {
        "Location_X": float(o.get("latitude", 23.134521)),
        "Location_Y": float(o.get("longitude", 113.358803)),
        "Scale": int(o.get("scale", 20)),
        "Label": o.get("label") or "Sandbox Road 1",
    },
    "link": lambda o: {
        "Title": o.get("title") or "A link",
        "Description": o.get("description") or "Shared from the simulator",
        "Url": o.get("url") or "https://example.com/",
    },
}


def _media(o: Fields) -> str:
    return o.get("media_id") or f"sandbox-media-{secrets.token_hex(8)}"


def _ticket() -> str:
    return "gQ" + secrets.token_urlsafe(40)


def _oa_message(kind: str, settings: WeChatSettings, o: Fields) -> Fields:
    head: Fields = {
        "ToUserName": o.get("to_user") or OA_ORIGINAL_ID,
        "FromUserName": o.get("openid") or DEFAULT_OPENID,
        "CreateTime": int(o.get("create_time") or time.time()),
    }
    if kind in OA_EVENT_FIELDS:
        return {**head, "MsgType": "event", "Event": OA_EVENTS[kind], **OA_EVENT_FIELDS[kind](o)}
    msg_id = int(o.get("msg_id") or next_msg_id())
    return {**head, "MsgType": kind, **OA_MESSAGE_FIELDS[kind](o), "MsgId": msg_id}


# --- WeCom payloads ---------------------------------------------------------------------------------------------------


def _wecom_message(kind: str, settings: WeChatSettings, o: Fields) -> Fields:
    head: Fields = {"ToUserName": settings.wecom_corp_id}
    created = int(o.get("create_time") or time.time())
    userid = o.get("userid") or DEFAULT_USERID
    if kind == "wecom-text":
        return {
            **head, "FromUserName": userid, "CreateTime": created, "MsgType": "text",
            "Content": o.get("content") or "hello", "MsgId": int(o.get("msg_id") or next_msg_id()),
            "AgentID": int(o.get("agent_id") or settings.wecom_agent_id),
        }  # fmt: skip
    fields: Fields = {
        **head, "FromUserName": "sys", "CreateTime": created, "MsgType": "event", "Event": "change_external_contact",
        "ChangeType": WECOM_CHANGES[kind], "UserID": userid,
        "ExternalUserID": o.get("external_userid") or DEFAULT_EXTERNAL_USERID,
    }  # fmt: skip
    if kind == "wecom-add-contact":
        fields["State"] = o.get("state") or ""
        fields["WelcomeCode"] = o.get("welcome_code") or mint_welcome_code(created)  # the sandbox can age it
    elif kind == "wecom-transfer-fail":  # UserID: the takeover member
        fields["FailReason"] = o.get("status") or "customer_refused"
    elif o.get("state"):
        fields["State"] = o["state"]
    return fields


def build_message(kind: str, settings: WeChatSettings, **options: Any) -> Fields:
    """The plaintext callback fields, in WeChat's order. Raises ValueError for an unknown kind or missing option."""
    unknown = set(options) - OPTIONS
    if unknown:
        raise TypeError(f"unknown simulate options: {', '.join(sorted(unknown))}")
    if kind not in KINDS:
        raise ValueError(f"unknown callback kind {kind!r}; one of: {', '.join(KINDS)}")
    if is_wecom(kind):
        return _wecom_message(kind, settings, options)
    return _oa_message(kind, settings, options)


# --- envelopes --------------------------------------------------------------------------------------------------------


def _nonce() -> str:
    return str(secrets.randbelow(10**10))


def _encrypt(crypto: OACrypto | WorkCrypto, plaintext: str, nonce: str, timestamp: str) -> tuple[str, str]:
    """(ciphertext, msg_signature) through wechatpy's WXBizMsgCrypt implementation."""
    envelope = xmltodict.parse(crypto.encrypt_message(plaintext, nonce, timestamp))["xml"]
    return envelope["Encrypt"], envelope["MsgSignature"]


def oa_crypto(settings: WeChatSettings) -> OACrypto:
    return OACrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_app_id)


def wecom_crypto(settings: WeChatSettings) -> WorkCrypto:
    return WorkCrypto(settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id)


def _oa_envelope(settings: WeChatSettings, fields: Fields, timestamp: str, nonce: str) -> tuple[dict[str, str], bytes]:
    xml = to_xml(fields)
    query = {
        "signature": sign(settings.wechat_token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": str(fields["FromUserName"]),
    }
    if not settings.wechat_aes_key:
        return query, xml.encode()
    encrypted, msg_signature = _encrypt(oa_crypto(settings), xml, nonce, timestamp)
    query.update(encrypt_type="aes", msg_signature=msg_signature)
    return query, to_xml({"ToUserName": fields["ToUserName"], "Encrypt": encrypted}).encode()


def _wecom_envelope(
    settings: WeChatSettings, fields: Fields, timestamp: str, nonce: str
) -> tuple[dict[str, str], bytes]:
    encrypted, msg_signature = _encrypt(wecom_crypto(settings), to_xml(fields), nonce, timestamp)
    envelope = {"ToUserName": settings.wecom_corp_id, "AgentID": str(settings.wecom_agent_id), "Encrypt": encrypted}
    return {"msg_signature": msg_signature, "timestamp": timestamp, "nonce": nonce}, to_xml(envelope).encode()


def build_callback(kind: str, settings: WeChatSettings, **options: Any) -> tuple[dict[str, str], bytes]:
    """Query parameters and body of a POST callback of `kind`, signed (and encrypted) as WeChat/WeCom would.

    Options: openid, create_time, timestamp, nonce, scene, ticket, key, url, content, msg_id, status, total_count,
    sent_count, error_count, latitude, longitude, precision, scale, label, media_id, pic_url, format, recognition,
    thumb_media_id, title, description, userid, external_userid, state, welcome_code, agent_id, to_user,
    kf_account, to_kf_account (see docs/sandbox.md).
    """
    timestamp = str(options.pop("timestamp", None) or int(time.time()))
    nonce = str(options.pop("nonce", None) or _nonce())
    fields = build_message(kind, settings, **options)
    if is_wecom(kind):
        return _wecom_envelope(settings, fields, timestamp, nonce)
    return _oa_envelope(settings, fields, timestamp, nonce)


def build_verification(
    channel: Channel,
    settings: WeChatSettings,
    *,
    echostr: str | None = None,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> tuple[dict[str, str], str]:
    """The GET that verifies a callback URL, and the body WeLead must answer with.

    OA: `signature` and the echostr as is. WeCom: `msg_signature` and an encrypted echostr, answered decrypted.
    """
    plain = echostr or str(secrets.randbelow(10**19))
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or _nonce()
    if channel == "oa":
        query = {"signature": sign(settings.wechat_token, timestamp, nonce), "echostr": plain}
    else:
        encrypted, msg_signature = _encrypt(wecom_crypto(settings), plain, nonce, timestamp)
        query = {"msg_signature": msg_signature, "echostr": encrypted}
    return {**query, "timestamp": timestamp, "nonce": nonce}, plain


def read_reply(body: bytes | str, settings: WeChatSettings, channel: Channel) -> str:
    """The passive reply as plaintext: an encrypted envelope is checked (MsgSignature) and decrypted.

    Raises wechatpy's InvalidSignatureException (or InvalidAppIdException / InvalidCorpIdException) on a bad reply.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if "<Encrypt>" not in text:
        return text
    envelope = xmltodict.parse(text)["xml"]
    crypto = wecom_crypto(settings) if channel == "wecom" else oa_crypto(settings)
    return crypto.decrypt_message(envelope, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"])
