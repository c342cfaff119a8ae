"""Stacked bar charts as SVG text, drawn on the server: no JavaScript, no
external assets.  Every bar is a group with a <title> that states its
numbers (browsers show it on hover, screen readers read it), so the chart
is readable without seeing it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from .html import e

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 34, 46  # margins: axis labels, legend, axis title
# Text in the page's colour (currentColor): SVG text is black by default, which
# a dark theme or forced colours (Windows high contrast) leave on a black page.
FONT = 'font-family="sans-serif" font-size="13" fill="currentColor"'
AXIS_COLOUR, GRID_COLOUR = "#444", "#ddd"


@dataclass
class Series:
    name: str
    colour: str
    values: Sequence[int]


def nice_scale(maximum: int, ticks: int = 4) -> Tuple[int, int]:
    """(step, top): a round step (1, 2 or 5 times a power of ten) and the
    axis top, a multiple of it at or above `maximum`, in about `ticks` steps."""
    if maximum <= 0:
        return 1, 1
    rough = maximum / ticks
    power = 10 ** int(math.floor(math.log10(rough))) if rough >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    return step, step * math.ceil(maximum / step)


def tick_label(value: int) -> str:
    """1,500 or 25k or 1.5M: short enough for the margin beside the axis."""
    for threshold, divisor, suffix in ((1000000, 1000000, "M"), (10000, 1000, "k")):
        if value >= threshold:
            return "%g%s" % (value / divisor, suffix)
    return "{:,}".format(value)


def stacked_bars(title: str, labels: Sequence[str], series: Sequence[Series],
                 x_title: str, y_title: str, label_every: int = 5) -> str:
    """One bar per label, the series stacked in order from the axis up; every
    `label_every`-th label is written under the axis, counted from the last."""
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    step, top = nice_scale(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    bar_w = slot * 0.7

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    out = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" '
           'style="max-width:%dpx" role="img"><title>%s</title>'
           % (WIDTH, HEIGHT, WIDTH, e(title))]
    for tick in range(0, top + 1, step):
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>'
                   '<text x="%d" y="%.1f" %s text-anchor="end">%s</text>'
                   % (LEFT, WIDTH - RIGHT, y(tick), y(tick), GRID_COLOUR if tick else AXIS_COLOUR,
                      LEFT - 6, y(tick) + 4, FONT, tick_label(tick)))
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar_w) / 2
        facts = ", ".join("%s %s" % ("{:,}".format(s.values[i]), s.name) for s in series)
        bar = ['<g><title>%s: %s</title>' % (e(label), e(facts))]
        base = 0
        for s in series:
            bar.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                       % (x, y(base + s.values[i]), bar_w,
                          y(base) - y(base + s.values[i]), s.colour))
            base += s.values[i]
        out.append("".join(bar) + "</g>")
        if (len(labels) - 1 - i) % label_every == 0:
            out.append('<text x="%.1f" y="%d" %s text-anchor="middle">%s</text>'
                       % (x + bar_w / 2, HEIGHT - BOTTOM + 16, FONT, e(label)))
    out.append('<text x="%d" y="%d" %s text-anchor="middle">%s</text>'
               % (LEFT + plot_w // 2, HEIGHT - 8, FONT, e(x_title)))
    out.append('<text transform="translate(14 %d) rotate(-90)" %s text-anchor="middle">%s'
               '</text>' % (TOP + plot_h // 2, FONT, e(y_title)))
    out.extend(_legend(series))
    out.append("</svg>")
    return "\n".join(out)


def _legend(series: Sequence[Series]) -> List[str]:
    out = []
    x = LEFT
    for s in series:
        out.append('<rect x="%d" y="10" width="12" height="12" fill="%s"/>'
                   '<text x="%d" y="20" %s>%s</text>' % (x, s.colour, x + 16, FONT, e(s.name)))
        x += 16 + 7 * len(s.name) + 24
    return out
