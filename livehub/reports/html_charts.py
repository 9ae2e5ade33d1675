"""The HTML report's charts: inline SVG drawn here (no script, no external resource).

Per-minute line and bar charts carry the stream's markers as numbered dashed
lines; horizontal bar charts show poll options, quiz accuracy and offer clicks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final

from livehub.reports.html_format import clip, esc, fmt_int
from livehub.reports.model import Marker

MARKER_CLASS: Final = {
    "poll": ("k-poll", "#7048e8"),
    "quiz": ("k-quiz", "#0ca678"),
    "draw": ("k-draw", "#e8590c"),
    "offer": ("k-offer", "#1c7ed6"),
}
VIEWERS_COLOR: Final = "#1c7ed6"
MESSAGES_COLOR: Final = "#7048e8"
LIKES_COLOR: Final = "#e64980"
RETENTION_COLOR: Final = "#0ca678"
BAR_COLOR: Final = "#4c6ef5"
CORRECT_COLOR: Final = "#0ca678"

# the geometry of every chart, in viewBox units
W: Final = 720
PAD_L: Final = 46
PAD_R: Final = 14
PAD_T: Final = 40  # room for two rows of marker numbers
MARKER_GAP: Final = 18
PAD_B: Final = 26


def _scale(value: float) -> tuple[float, float]:
    """A round axis maximum at or above ``value`` and a whole-number grid step for it
    (1, 2 or 5 times a power of ten, two to five steps)."""
    raw = max(value, 1.0) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1.0, float(step))
    return math.ceil(max(value, 1.0) / step) * step, step


def _svg_open(height: int, label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{label}"'
        ' preserveAspectRatio="xMidYMid meet">'
    )


def _axes(
    height: int,
    n: int,
    y_max: float,
    y_text: Callable[[float], str],
    minute: str,
    step: float | None = None,
) -> list[str]:
    """Grid lines with y labels (every ``step``, else quarters), minute labels below."""
    plot_h = height - PAD_T - PAD_B
    out: list[str] = []
    lines = round(y_max / step) if step else 4
    for i in range(lines + 1):
        frac = i / lines
        y = PAD_T + plot_h * (1 - frac)
        out.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"'
            f' stroke="#e9ecef" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{y_text(y_max * frac)}</text>'
        )
    ticks = 6 if n >= 6 else max(1, n)
    plot_w = W - PAD_L - PAD_R
    for i in range(ticks + 1):
        m = round(n * i / ticks)
        x = PAD_L + plot_w * (m / max(1, n))
        anchor = "start" if i == 0 else ("end" if i == ticks else "middle")
        out.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}">{m} {minute}</text>')
    return out


def marker_family(kind: str) -> str:
    return kind.split(".", 1)[0]


def _markers_svg(markers: Sequence[Marker], n: int, height: int) -> list[str]:
    """Numbered dashed lines; a number too close to the one before it goes a row up."""
    plot_w = W - PAD_L - PAD_R
    out: list[str] = []
    last = [-1e9, -1e9]  # the x of the last circle in each row
    for number, marker in enumerate(markers, 1):
        minutes = marker.offset_seconds / 60
        x = PAD_L + plot_w * min(1.0, max(0.0, minutes / max(1, n)))
        row = 0 if x - last[0] >= MARKER_GAP or x - last[1] < MARKER_GAP else 1
        last[row] = x
        cy = PAD_T - 10 - row * 18
        color = MARKER_CLASS.get(marker_family(marker.kind), ("", "#868e96"))[1]
        out.append(
            f"<g><title>{number}. {esc(marker.kind)} {esc(marker.label)}</title>"
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{cy + 8}" y2="{height - PAD_B}"'
            f' stroke="{color}" stroke-width="1" stroke-dasharray="3 3"/>'
            f'<circle cx="{x:.1f}" cy="{cy}" r="8" fill="{color}"/>'
            f'<text class="mk-n" x="{x:.1f}" y="{cy + 3.5}" text-anchor="middle">{number}</text>'
            "</g>"
        )
    return out


def line_chart(
    values: Sequence[float],
    *,
    label: str,
    color: str,
    minute: str,
    markers: Sequence[Marker] = (),
    y_max: float | None = None,
    y_text: Callable[[float], str] = lambda v: fmt_int(v),
    height: int = 240,
) -> str:
    """An area chart of one value per minute (plotted at the minute's middle)."""
    n = len(values)
    top, step = (y_max, None) if y_max is not None else _scale(max(values, default=0))
    plot_w = W - PAD_L - PAD_R
    plot_h = height - PAD_T - PAD_B
    base = PAD_T + plot_h
    out = [_svg_open(height, label), *_axes(height, n, top, y_text, minute, step)]
    if n:
        points = [
            (PAD_L + plot_w * (i + 0.5) / n, base - plot_h * min(1.0, v / top))
            for i, v in enumerate(values)
        ]
        if n == 1:  # one minute: a level line across it
            points = [(PAD_L, points[0][1]), (W - PAD_R, points[0][1])]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(
            f'<path d="M{points[0][0]:.1f},{base:.1f} L{line.replace(" ", " L")}'
            f' L{points[-1][0]:.1f},{base:.1f} Z" fill="{color}" fill-opacity="0.15"/>'
        )
        out.append(
            f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"'
            ' stroke-linejoin="round"/>'
        )
    out += _markers_svg(markers, n, height)
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    values: Sequence[float],
    *,
    label: str,
    color: str,
    minute: str,
    markers: Sequence[Marker] = (),
    height: int = 200,
) -> str:
    """One bar per minute."""
    n = len(values)
    top, step = _scale(max(values, default=0))
    plot_w = W - PAD_L - PAD_R
    plot_h = height - PAD_T - PAD_B
    base = PAD_T + plot_h
    out = [_svg_open(height, label), *_axes(height, n, top, fmt_int, minute, step)]
    if n:
        slot = plot_w / n
        width = max(0.5, slot * 0.8)
        out.append(f'<g fill="{color}">')
        for i, v in enumerate(values):
            if v <= 0:
                continue
            h = plot_h * min(1.0, v / top)
            x = PAD_L + slot * i + (slot - width) / 2
            out.append(
                f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{width:.1f}" height="{h:.1f}"/>'
            )
        out.append("</g>")
    out += _markers_svg(markers, n, height)
    out.append("</svg>")
    return "".join(out)


def hbar_chart(
    rows: Sequence[tuple[str, float, str]],
    *,
    label: str,
    top: float | None = None,
    color: str = BAR_COLOR,
) -> str:
    """Horizontal bars: (label, value, value text) per row; labels are escaped here."""
    row_h = 26
    height = 12 + row_h * max(1, len(rows)) + 6
    label_w = 250
    text_w = 90
    bar_w = W - label_w - text_w - 10
    top = top if top is not None else max((v for _, v, _ in rows), default=0)
    top = top or 1.0
    out = [_svg_open(height, label)]
    for i, (name, value, shown) in enumerate(rows):
        y = 12 + i * row_h
        w = bar_w * min(1.0, max(0.0, value / top))
        out.append(
            f"<g><title>{esc(name)}: {esc(shown)}</title>"
            f'<text class="lbl" x="{label_w - 8}" y="{y + 17}" text-anchor="end">'
            f"{esc(clip(name))}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="{row_h - 8}"'
            ' fill="#f1f3f5"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}"'
            f' fill="{color}"/>'
            f'<text class="val" x="{label_w + bar_w + 8}" y="{y + 17}">{esc(shown)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)
