"""Callback bodies → `Inbound`, the one normalised event type the rest of WeLead sees.

Parsing comes before authentication in safe mode (msg_signature covers the <Encrypt> value), so the parser refuses
DTDs and entities outright (defusedxml) and never expands anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from foundation.numbers import ascii_int


class InvalidXML(ValueError):
    """The body is not a WeChat XML document (malformed, or carrying a DTD/entities)."""


def parse_xml(body: bytes | str) -> dict[str, object]:
    """Flatten `<xml>` children into a dict; nested elements (ScanCodeInfo, SendPicsInfo...) become dicts."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException) as exc:
        raise InvalidXML(f"{type(exc).__name__}: {exc}") from None
    if root.tag != "xml":
        raise InvalidXML(f"root element is <{root.tag}>, expected <xml>")
    return _children(root)


def _children(node: Element) -> dict[str, object]:
    out: dict[str, object] = {}
    for child in node:
        out[child.tag] = _children(child) if len(child) else (child.text or "").strip()
    return out


@dataclass(frozen=True, slots=True)
class Inbound:
    """One callback. `kind` is WeChat's own name in lower case: the Event for events, the MsgType for messages."""

    channel: str  # "oa" | "wecom"
    kind: str
    openid: str  # the follower: OA FromUserName, or the WeCom ExternalUserID (the member's UserID for app messages)
    account: str  # ToUserName: the OA's original id or the CorpID
    created: int  # CreateTime, seconds
    is_event: bool
    msg_id: str | None = None
    event_key: str | None = None
    fields: dict[str, object] = field(default_factory=dict)

    @property
    def scene(self) -> str | None:
        """The QR scene of a subscribe/SCAN, with only a leading `qrscene_` stripped (a scene may contain it)."""
        if self.kind not in ("subscribe", "scan") or not self.event_key:
            return None
        key = self.event_key
        return key.removeprefix("qrscene_") if self.kind == "subscribe" else key

    @property
    def content(self) -> str | None:
        """The human-readable part kept in the chat archive: text, recognition, url, label, title..."""
        f = self.fields
        for name in (
            "Content",
            "Recognition",
            "Url",
            "Label",
            "Title",
            "PicUrl",
            "MediaId",
        ):
            value = f.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def dedup_key(self) -> str:
        """MsgId for messages; sender + CreateTime + Event + EventKey for events (+ ChangeType ids for WeCom)."""
        if self.msg_id and not self.is_event:
            parts = [self.channel, "msg", self.account, self.msg_id]
        else:
            f = self.fields
            parts = [
                self.channel,
                "evt",
                self.openid,
                str(self.created),
                self.kind,
                self.event_key or "",
            ]
            parts += [str(f.get(k, "")) for k in ("UserID", "ExternalUserID", "MsgID", "Status")]
        return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def to_inbound(channel: str, doc: dict[str, object]) -> Inbound:
    """Normalise a parsed callback; unknown kinds come through as themselves, never as an error."""
    msg_type = _text(doc, "MsgType").lower()
    if not msg_type:
        raise InvalidXML("MsgType is missing")
    is_event = msg_type == "event"
    kind = _text(doc, "Event").lower() if is_event else msg_type
    if not kind:
        raise InvalidXML("Event is missing")
    openid = _text(doc, "FromUserName")
    if not openid:  # every callback names its sender; recording one under '' would merge strangers
        raise InvalidXML("FromUserName is missing or empty")
    event_key = _text(doc, "EventKey") or None
    if kind == "change_external_contact":
        openid = _text(doc, "ExternalUserID")
        event_key = _text(doc, "ChangeType") or None
    elif kind == "templatesendjobfinish":
        event_key = _text(doc, "Status") or None
    created = _created(_text(doc, "CreateTime"))
    msg_id = _text(doc, "MsgId") or _text(doc, "MsgID") or None
    inbound = Inbound(
        channel=channel,
        kind=kind,
        openid=openid,
        account=_text(doc, "ToUserName"),
        created=created,
        is_event=is_event,
        msg_id=msg_id,
        event_key=event_key,
        fields=doc,
    )
    _check_lengths(inbound)
    return inbound


MAX_CREATED = 2**32 - 1  # CreateTime is a 32-bit Unix time (year 2106): more is no time WeChat sends
# Longer than anything WeChat sends (openids are 28 characters, scene_str at most 64, a WeCom state 30) and than
# the interactions columns hold: refused here with a 400 rather than by the database, after a half-made decision.
MAX_LENGTHS = {"FromUserName": 64, "Event/MsgType": 48, "MsgId": 64, "scene": 128}


def _created(text: str) -> int:
    """CreateTime in seconds: ASCII digits up to MAX_CREATED (absent: 0, which the domain reads as "now")."""
    value = ascii_int(text or "0", 0, MAX_CREATED)
    if value is None:
        raise InvalidXML(f"CreateTime {text[:24]!r} is not a Unix time")
    return value


def _check_lengths(msg: Inbound) -> None:
    scene = msg.scene or (msg.fields.get("State") if msg.kind == "change_external_contact" else None)
    values = {"FromUserName": msg.openid, "Event/MsgType": msg.kind, "MsgId": msg.msg_id, "scene": scene}
    for name, value in values.items():
        if isinstance(value, str) and len(value) > MAX_LENGTHS[name]:
            raise InvalidXML(f"{name} is longer than {MAX_LENGTHS[name]} characters")


def _text(doc: dict[str, object], name: str) -> str:
    value = doc.get(name)
    return value if isinstance(value, str) else ""
