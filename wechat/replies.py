"""Passive replies rendered safely: follower text can contain `]]>`, which wechatpy's renderer does not escape."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def cdata(value: str) -> str:
    """CDATA that survives any content: split every `]]>` across two sections."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@dataclass(frozen=True)
class Article:
    title: str
    description: str = ""
    url: str = ""
    image: str = ""


@dataclass(frozen=True)
class Reply:
    """A text reply, news (1-8 articles) when `articles` is set, or `transfer`: hand the message to the customer
    service system (MsgType transfer_customer_service, the follower sees nothing from the account)."""

    text: str = ""
    articles: tuple[Article, ...] = field(default_factory=tuple)
    transfer: bool = False


def render(reply: Reply, to_user: str, from_user: str, now: int | None = None) -> str:
    head = (
        f"<ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{now or int(time.time())}</CreateTime>"
    )
    if reply.transfer:
        return f"<xml>{head}<MsgType>{cdata('transfer_customer_service')}</MsgType></xml>"
    if reply.articles:
        items = "".join(
            f"<item><Title>{cdata(a.title)}</Title><Description>{cdata(a.description)}</Description>"
            f"<PicUrl>{cdata(a.image)}</PicUrl><Url>{cdata(a.url)}</Url></item>"
            for a in reply.articles[:8]
        )
        body = f"<MsgType>{cdata('news')}</MsgType><ArticleCount>{min(len(reply.articles), 8)}</ArticleCount>"
        return f"<xml>{head}{body}<Articles>{items}</Articles></xml>"
    return f"<xml>{head}<MsgType>{cdata('text')}</MsgType><Content>{cdata(reply.text)}</Content></xml>"
