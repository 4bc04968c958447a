"""The printable codes of an event as a PDF: every booth's visitor code and staff code with their names, one per
A4 page (to print and stand on the booth) or six to a sheet (`sheet`, to cut out).

fpdf2 draws the text with Noto Sans CJK SC from the noto-cjk-sans-otc wheel (scrm.qr_image finds it), embedded as
a subset: Chinese booth names print on any printer and the PDF keeps real, searchable text. The codes are the QR
images scrm.qr_image draws from the URLs WeChat returned.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from fpdf import FPDF

from scrm import qr_image

A4_W, A4_H = 210, 297  # mm
FONT = "noto"


@dataclass(frozen=True)
class Card:
    title: str  # the booth's name
    subtitle: str  # the event's name
    label: str  # what the code does ("扫码签到 Scan to check in" / "工作人员 Staff only")
    url: str  # what the code encodes
    scene: str


def _document() -> FPDF:
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(False)
    found = qr_image._font_file()
    if found is not None:
        pdf.add_font(FONT, fname=found[0], collection_font_number=found[1])
        pdf.set_font(FONT, size=12)
    else:  # without the wheel: Latin text only
        pdf.set_font("helvetica", size=12)
    return pdf


def render(cards: list[Card], layout: str = "page") -> bytes:
    """The PDF bytes; `layout` "page" (one card per page) or "sheet" (2 by 3 per page)."""
    pdf = _document()
    if layout == "sheet":
        _sheet(pdf, cards)
    else:
        for card in cards:
            pdf.add_page()
            _card(pdf, card, x=20, y=25, width=A4_W - 40, big=True)
    return bytes(pdf.output())


def _sheet(pdf: FPDF, cards: list[Card]) -> None:
    width, height = A4_W / 2, A4_H / 3
    for i, card in enumerate(cards):
        if i % 6 == 0:
            pdf.add_page()
        col, row = i % 2, (i % 6) // 2
        pdf.set_draw_color(200)
        pdf.rect(col * width, row * height, width, height)  # cutting guide
        _card(pdf, card, x=col * width + 10, y=row * height + 6, width=width - 20, big=False)


def _card(pdf: FPDF, card: Card, x: float, y: float, width: float, big: bool) -> None:
    sizes = (28, 16, 14, 8) if big else (13, 9, 9, 6)
    side = width * (0.8 if big else 0.52)
    _text(pdf, card.title, x, y, width, sizes[0])
    y += sizes[0] * 0.5
    _text(pdf, card.subtitle, x, y, width, sizes[1])
    y += sizes[1] * 0.45
    image = qr_image.render(card.url, size=600)
    pdf.image(io.BytesIO(image), x=x + (width - side) / 2, y=y, w=side, h=side)
    y += side + 1
    _text(pdf, card.label, x, y, width, sizes[2])
    _text(pdf, card.scene, x, y + sizes[2] * 0.5, width, sizes[3])


def _text(pdf: FPDF, text: str, x: float, y: float, width: float, size: int) -> None:
    """One line centred in `width`, shrunk (then cut) until it fits."""
    pdf.set_font_size(size)
    while size > 6 and pdf.get_string_width(text) > width:
        size -= 1
        pdf.set_font_size(size)
    while text and pdf.get_string_width(text) > width:
        text = text[:-1]
    pdf.set_xy(x, y)
    pdf.cell(w=width, h=size * 0.4, text=text, align="C")
