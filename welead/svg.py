"""Charts as SVG markup written by the server: horizontal bars, stacked bars and grouped columns.

Why not a chart library: a JavaScript one needs a script (the dashboard's CSP allows none) and files a CDN or a
build step would serve; pygal would do it in Python but brings its own stylesheet and script for tooltips and
another dependency for three simple shapes. These ~100 lines draw what the pages need, escape every label, and
label each shape with `data-label` / `data-value` (and the number as text where it fits), so a reader, a test or
a screen reader gets the exact numbers drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#2f6fdf", "#e0533d", "#27a36a", "#f0a020", "#8a5cd6", "#1aa3b5", "#c2458f", "#7a8899")
ROW, LABEL, GAP = 26, 150, 6


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _svg(width: int, height: int, body: list[str], name: str) -> Markup:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(name)}" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">')  # fmt: skip
    return Markup(head + "".join(body) + "</svg>")


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def hbars(rows: Sequence[tuple[str, float]], name: str, width: int = 640, fill: str = PALETTE[0]) -> Markup:
    """One bar per (label, value), the longest the largest; the value written after each bar."""
    top = max((v for _, v in rows), default=0) or 1
    span = width - LABEL - 70
    body = []
    for i, (label, value) in enumerate(rows):
        y, w = i * ROW + GAP, span * value / top
        body.append(
            f'<g class="bar" data-label="{escape(label)}" data-value="{value}">'
            f'<text x="{LABEL - 8}" y="{y + 14}" text-anchor="end" class="label">{escape(label)}</text>'
            f'<rect x="{LABEL}" y="{y}" width="{w:.1f}" height="{ROW - 2 * GAP + 4}" fill="{fill}"/>'
            f'<text x="{LABEL + w + 6:.1f}" y="{y + 14}" class="value">{_num(value)}</text></g>'
        )
    return _svg(width, max(len(rows), 1) * ROW + GAP, body, name)


def stacked(rows: Sequence[tuple[str, dict[str, float]]], keys: Sequence[str], name: str, width: int = 640) -> Markup:
    """One bar per label split into `keys` (each key its colour, the same on every bar); total after the bar."""
    top = max((sum(parts.values()) for _, parts in rows), default=0) or 1
    span = width - LABEL - 70
    body = []
    for i, (label, parts) in enumerate(rows):
        y, x = i * ROW + GAP, float(LABEL)
        body.append(f'<g class="bar" data-label="{escape(label)}" data-value="{sum(parts.values())}">')
        body.append(f'<text x="{LABEL - 8}" y="{y + 14}" text-anchor="end" class="label">{escape(label)}</text>')
        for k, key in enumerate(keys):
            value = parts.get(key, 0)
            if value:
                w = span * value / top
                body.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{ROW - 2 * GAP + 4}" '
                            f'fill="{color(k)}" data-key="{escape(key)}" data-value="{value}">'
                            f"<title>{escape(key)}: {_num(value)}</title></rect>")  # fmt: skip
                x += w
        body.append(f'<text x="{x + 6:.1f}" y="{y + 14}" class="value">{_num(sum(parts.values()))}</text></g>')
    return _svg(width, max(len(rows), 1) * ROW + GAP, body, name)


def columns(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], name: str, height: int = 220,
            width: int = 760) -> Markup:  # fmt: skip
    """Grouped columns: one group per label (a day or week), one column per series; every tenth label written."""
    top = max((v for _, values in series for v in values), default=0) or 1
    plot, base = height - 30, height - 22
    group = (width - 40) / max(len(labels), 1)
    col = max(group / (len(series) + 1), 1)
    body = [f'<line x1="36" y1="{base}" x2="{width}" y2="{base}" stroke="#999"/>',
            f'<text x="32" y="12" text-anchor="end" class="axis">{_num(top)}</text>']  # fmt: skip
    step = max(1, len(labels) // 10)
    for i, label in enumerate(labels):
        x0 = 40 + i * group
        if i % step == 0:
            body.append(f'<text x="{x0:.1f}" y="{height - 6}" class="axis">{escape(label[5:])}</text>')
        for s, (key, values) in enumerate(series):
            value = values[i]
            h = (plot - 10) * value / top
            tip = f"<title>{escape(label)} {escape(key)}: {_num(value)}</title>"
            body.append(f'<rect x="{x0 + s * col:.1f}" y="{base - h:.1f}" width="{col:.1f}" height="{h:.1f}" '
                        f'fill="{color(s)}" data-label="{escape(label)}" data-key="{escape(key)}" '
                        f'data-value="{value}">{tip}</rect>')  # fmt: skip
    return _svg(width, height, body, name)


def legend(keys: Sequence[str]) -> Markup:
    """The colour of each key, as the charts above give them."""
    items = "".join(f'<span class="key"><i style="background:{color(i)}"></i>{escape(k)}</span>'
                    for i, k in enumerate(keys))  # fmt: skip
    return Markup(f'<p class="legend">{items}</p>')
