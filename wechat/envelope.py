"""Authenticate and open a callback: signature, replay window, size, safe parsing, AES (wechatpy's WXBizMsgCrypt).

Every failure is a `Rejected` carrying the HTTP status and a reason for the log; nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from dataclasses import dataclass
from typing import Literal

from wechatpy.crypto import PrpCrypto as OAPrp
from wechatpy.crypto import WeChatCrypto as OACrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.work.crypto import PrpCrypto as WorkPrp
from wechatpy.work.crypto import WeChatCrypto as WorkCrypto
from wechatpy.work.exceptions import InvalidCorpIdException

from wechat.inbound import Inbound, InvalidXML, parse_xml, to_inbound


class Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Endpoint:
    """One callback URL's secrets. `receive_id` is the AppID (OA) or CorpID (WeCom) inside every ciphertext."""

    channel: Literal["oa", "wecom"]
    token: str
    receive_id: str
    aes_key: str = ""
    previous_aes_key: str = ""
    window: int = 300

    def _crypto(self, key: str):
        cls = WorkCrypto if self.channel == "wecom" else OACrypto
        return cls(self.token, key, self.receive_id)

    @property
    def keys(self) -> list[str]:
        return [k for k in (self.aes_key, self.previous_aes_key) if k]


def signature(*parts: str) -> str:
    """WeChat's SHA-1 over the sorted parts (token, timestamp, nonce[, encrypt])."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _check_time(ep: Endpoint, timestamp: str, now: float | None) -> None:
    try:
        ts = int(timestamp)
    except ValueError:
        raise Rejected(403, "timestamp missing or not an integer") from None
    if abs((now or time.time()) - ts) > ep.window:
        raise Rejected(403, f"timestamp {ts} outside the {ep.window}s replay window")


def _check_sig(expected: str, given: str, what: str) -> None:
    if not given or not hmac.compare_digest(expected, given):
        raise Rejected(403, f"bad {what}")


def verify_echo(ep: Endpoint, args: dict[str, str], now: float | None = None) -> str:
    """GET verification: the OA answers echostr as is; WeCom (and OA safe mode via msg_signature) decrypts it."""
    timestamp, nonce, echostr = (
        args.get("timestamp", ""),
        args.get("nonce", ""),
        args.get("echostr", ""),
    )
    _check_time(ep, timestamp, now)
    if ep.channel == "oa" and "msg_signature" not in args:
        _check_sig(
            signature(ep.token, timestamp, nonce),
            args.get("signature", ""),
            "signature",
        )
        return echostr
    _check_sig(
        signature(ep.token, timestamp, nonce, echostr),
        args.get("msg_signature", ""),
        "msg_signature",
    )
    return _decrypt(ep, echostr)


def open_callback(ep: Endpoint, args: dict[str, str], body: bytes, now: float | None = None) -> tuple[Inbound, bool]:
    """Verify and parse a POST; returns the Inbound and whether the reply must be encrypted."""
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    encrypted = ep.channel == "wecom" or args.get("encrypt_type", "raw").lower() == "aes"
    if not encrypted:
        _check_sig(
            signature(ep.token, timestamp, nonce),
            args.get("signature", ""),
            "signature",
        )
        _check_time(ep, timestamp, now)
        return _inbound(ep, body), False
    if not ep.keys:
        raise Rejected(403, "encrypted callback but no EncodingAESKey is configured")
    outer = _parse(body)  # msg_signature covers <Encrypt>: parse (safely) before authenticating
    encrypt = outer.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise Rejected(400, "encrypted callback without <Encrypt>")
    _check_sig(
        signature(ep.token, timestamp, nonce, encrypt),
        args.get("msg_signature", ""),
        "msg_signature",
    )
    _check_time(ep, timestamp, now)
    return _inbound(ep, _decrypt(ep, encrypt).encode()), True


def seal_reply(ep: Endpoint, xml: str, nonce: str, timestamp: str | None = None) -> str:
    """Encrypt a passive reply into the <Encrypt/MsgSignature/TimeStamp/Nonce> envelope."""
    return ep._crypto(ep.aes_key).encrypt_message(xml, nonce, timestamp)


def _decrypt(ep: Endpoint, encrypt: str) -> str:
    """Try the current key, then the previous one (EncodingAESKey rotation)."""
    failure = "cannot decrypt"
    for key in ep.keys:
        prp = (WorkPrp if ep.channel == "wecom" else OAPrp)(ep._crypto(key).key)
        try:
            return prp.decrypt(encrypt, ep.receive_id)
        except (InvalidAppIdException, InvalidCorpIdException):
            failure = "AppID/CorpID inside the ciphertext does not match"
        except (ValueError, TypeError, IndexError, struct.error) as exc:
            failure = f"cannot decrypt ({type(exc).__name__})"
    raise Rejected(403 if "AppID" in failure else 400, failure)


def _parse(body: bytes) -> dict[str, object]:
    try:
        return parse_xml(body)
    except InvalidXML as exc:
        raise Rejected(400, f"malformed XML: {exc}") from None


def _inbound(ep: Endpoint, body: bytes) -> Inbound:
    try:
        return to_inbound(ep.channel, _parse(body))
    except InvalidXML as exc:
        raise Rejected(400, f"bad callback: {exc}") from None
