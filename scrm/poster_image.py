"""Referral posters as images: the campaign's artwork with the follower's own QR code composed onto it (Pillow), and
the built-in artwork drawn when a campaign has none of its own, so a demo campaign works on a fresh clone.

The poster is 750 x 1334 (a phone screen at 2x, what WeChat shows full-width); the artwork is scaled to cover it and
centre-cropped. The code sits on a white card in the lower part with a "long-press to scan" line under it: WeChat
recognises a code in an image the follower long-presses, so the code keeps its quiet zone and crisp modules.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from scrm import qr_image

WIDTH, HEIGHT = 750, 1334
CODE = 300  # pixels of the code, quiet zone included
CARD_PAD = 24
SCAN_LINE = "长按识别二维码, 关注领取奖励"


def default_artwork(title: str) -> Image.Image:
    """A vertical gradient with the campaign's title: good enough to scan and to demo."""
    top, bottom = (233, 69, 96), (255, 183, 77)
    art = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(art)
    for y in range(HEIGHT):
        t = y / (HEIGHT - 1)
        draw.line([(0, y), (WIDTH, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    face = qr_image.font(64)
    text = title[:24] or "邀请好友"
    while face.size > 24 and draw.textlength(text, font=face) > WIDTH - 80:
        face = qr_image.font(face.size - 4)
    draw.text((WIDTH // 2, 260), text, fill=(255, 255, 255), font=face, anchor="mm")
    draw.text((WIDTH // 2, 360), "邀请好友关注 · 赢取好礼", fill=(255, 255, 255), font=qr_image.font(36), anchor="mm")
    return art


def _artwork(path: Path | None, title: str) -> Image.Image:
    if path is None:
        return default_artwork(title)
    with Image.open(path) as found:
        return ImageOps.fit(found.convert("RGB"), (WIDTH, HEIGHT), Image.Resampling.LANCZOS)


def compose(content: str, title: str, artwork: Path | None = None) -> bytes:
    """The poster as a PNG: `artwork` (or the built-in one) with a code encoding `content` (the qrcode/create
    answer's `url`) on a white card near the bottom."""
    poster = _artwork(artwork, title)
    with Image.open(io.BytesIO(qr_image.render(content, size=CODE))) as drawn:
        code = drawn.convert("RGB")
    card_w, card_h = code.width + 2 * CARD_PAD, code.height + 2 * CARD_PAD + 56
    left, top = (WIDTH - card_w) // 2, HEIGHT - card_h - 90
    draw = ImageDraw.Draw(poster)
    draw.rounded_rectangle([left, top, left + card_w, top + card_h], radius=24, fill=(255, 255, 255))
    poster.paste(code, (left + CARD_PAD, top + CARD_PAD))
    draw.text((WIDTH // 2, top + card_h - 34), SCAN_LINE, fill=(60, 60, 60), font=qr_image.font(22), anchor="mm")
    out = io.BytesIO()
    poster.save(out, format="PNG", optimize=True)
    return out.getvalue()
