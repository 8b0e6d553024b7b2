"""A horizontal bar chart as inline SVG, drawn on the server: no script in the browser.

The chart carries its own `<title>` and `<desc>` (read by screen readers through
`aria-labelledby`), and each bar its value as text, so the chart never relies on colour or
length alone; the page shows the same numbers in a table beside it. Its text (system names
from the estate) is made safe for HTML here, as the pages' own values are in `build`.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from gcmschange.textsafe import html_text

ROW = 28  # px per bar
LABEL_WIDTH = 240
BAR_WIDTH = 360
VALUE_WIDTH = 120


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as people read it ("1 h 05 min")


def _bar(index: int, bar: Bar, biggest: float) -> Markup:
    y = index * ROW
    width = 0.0 if biggest <= 0 else BAR_WIDTH * bar.value / biggest
    return Markup(
        '<g class="bar"><text x="{lx}" y="{ty}" text-anchor="end">{label}</text>'
        '<rect x="{bx}" y="{by}" width="{w:.1f}" height="{h}"></rect>'
        '<text x="{vx:.1f}" y="{ty}">{value}</text></g>'
    ).format(
        lx=LABEL_WIDTH - 8,
        ty=y + 18,
        label=html_text(bar.label),
        bx=LABEL_WIDTH,
        by=y + 5,
        w=width,
        h=ROW - 10,
        vx=LABEL_WIDTH + width + 6,
        value=html_text(bar.text),
    )


def bar_chart(chart_id: str, title: str, description: str, bars: list[Bar]) -> Markup:
    """The SVG markup; `chart_id` must be unique in the page (it names the title element)."""
    height = max(1, len(bars)) * ROW
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    biggest = max((b.value for b in bars), default=0.0)
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        'width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'aria-labelledby="{id}-title {id}-desc">'
        '<title id="{id}-title">{title}</title>'
        '<desc id="{id}-desc">{desc}</desc>{body}</svg>'
    ).format(
        w=width,
        h=height,
        id=chart_id,
        title=html_text(title),
        desc=html_text(description),
        body=Markup("").join(_bar(i, b, biggest) for i, b in enumerate(bars)),
    )
