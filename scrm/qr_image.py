"""Printable QR codes: the code drawn with the qrcode library, a caption (the rep's name) under it, as a PNG.

The caption is set in Noto Sans CJK SC, shipped inside a wheel (noto-cjk-sans-otc, SIL OFL), so Chinese names print
on a fresh clone with no system fonts and no network: Pillow's built-in font has no CJK glyphs and would draw boxes.
"""

from __future__ import annotations

import io
import logging
from functools import cache

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M
from qrcode.exceptions import DataOverflowError

SIZE_MIN, SIZE_MAX, SIZE_DEFAULT = 200, 2000, 600
BORDER = 4  # modules of quiet zone, what scanners expect
log = logging.getLogger(__name__)


class ImageError(ValueError):
    """A size or content that cannot be rendered."""


@cache
def _font_file() -> tuple[str, int] | None:
    """The bundled Noto Sans CJK collection and the index of its Simplified Chinese face, or None if not installed."""
    try:
        from noto_cjk_sans_otc import FONT_PATH
    except ImportError:
        log.warning("noto-cjk-sans-otc is not installed: captions fall back to Pillow's font (no Chinese glyphs)")
        return None
    path = str(FONT_PATH)
    for index in range(10):
        if ImageFont.truetype(path, 12, index=index).getname()[0] == "Noto Sans CJK SC":
            return path, index
    return path, 0


@cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    found = _font_file()
    if found is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(found[0], size, index=found[1])


def _matrix(content: str) -> list[list[bool]]:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=BORDER)
    qr.add_data(content)
    try:
        qr.make(fit=True)
    except (DataOverflowError, ValueError):  # qrcode 8 says "Invalid version (was 41...)" past version 40
        raise ImageError(f"{len(content)} characters are more than a QR code holds") from None
    return qr.get_matrix()


def _code(content: str, width: int) -> Image.Image:
    """The code scaled by a whole number of pixels per module (crisp edges), at most `width` wide."""
    matrix = _matrix(content)
    modules = len(matrix)
    if width < modules:
        raise ImageError(f"size {width} is too small for this code ({modules} modules)")
    small = Image.new("L", (modules, modules), 255)
    small.putdata([0 if dark else 255 for row in matrix for dark in row])
    scale = width // modules
    return small.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)


def _fitting_font(draw: ImageDraw.ImageDraw, text: str, width: int, start: int):
    """The largest caption font (from `start` down) whose rendering of `text` fits `width`."""
    size = start
    while size > 8 and draw.textlength(text, font=font(size)) > width:
        size = max(8, int(size * 0.85))
    return font(size)


def render(content: str, caption: str = "", size: int = SIZE_DEFAULT) -> bytes:
    """A PNG `size` pixels wide: the code encoding `content`, and `caption` centred under it."""
    if isinstance(size, bool) or not isinstance(size, int) or not SIZE_MIN <= size <= SIZE_MAX:
        raise ImageError(f"size must be an integer from {SIZE_MIN} to {SIZE_MAX} (pixels)")
    if not content:
        raise ImageError("nothing to encode")
    code = _code(content, size)
    band = size // 6 if caption else 0
    canvas = Image.new("L", (size, code.height + band), 255)
    canvas.paste(code, ((size - code.width) // 2, 0))
    if caption:
        draw = ImageDraw.Draw(canvas)
        face = _fitting_font(draw, caption, size - 2 * (size // 20), band // 2)
        draw.text((size // 2, code.height + band // 3), caption, fill=0, font=face, anchor="mm")
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()
