"""Server-side SVG chart geometry: the template draws rects and lines, CSS colours them by class.

No JavaScript and no inline style (strict CSP): every shape gets a ``series-N`` class, and each
chart is paired with a data table for screen readers and keyboard users.
"""

from dataclasses import dataclass, field
from datetime import datetime

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 28
MAX_SERIES = 7  # the rest is summed into "other" so colours stay distinguishable


@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float
    css: str
    title: str


@dataclass
class Tick:
    pos: float
    label: str


@dataclass
class StackedBars:
    """A stacked bar chart: one bar per bucket, one colour per series."""

    width: int = WIDTH
    height: int = HEIGHT
    rects: list[Rect] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[str, str, int]] = field(default_factory=list)  # (css class, name, total)
    table_head: list[str] = field(default_factory=list)
    table_rows: list[list] = field(default_factory=list)
    total: int = 0
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM


def _nice_max(value: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return step * 4
    return ((value // 10000) + 1) * 10000


def _label(bucket: datetime, unit: str) -> str:
    return bucket.strftime("%H:%M") if unit == "hour" else bucket.strftime("%b %d")


def stacked_bars(
    buckets: list[datetime], series: dict[str, list[int]], unit: str, palette: dict[str, str] | None = None
) -> StackedBars:
    """Lay out ``series`` (name -> count per bucket) as stacked bars over ``buckets``.

    Series are ranked by total (largest at the bottom, coloured ``series-0``…); ``palette`` instead fixes
    the order and class of known series (e.g. approved green, blocked red).
    """
    if palette:
        ranked = [(name, series[name]) for name in palette if name in series]
    else:
        ranked = sorted(series.items(), key=lambda item: (-sum(item[1]), item[0]))
    if len(ranked) > MAX_SERIES:
        other = [sum(values) for values in zip(*(v for _, v in ranked[MAX_SERIES - 1 :]), strict=True)]
        ranked = [*ranked[: MAX_SERIES - 1], ("other", other)]
    chart = StackedBars()
    n = max(len(buckets), 1)
    totals = [sum(values[i] for _, values in ranked) for i in range(len(buckets))]
    top = _nice_max(max(totals, default=0))
    plot_h = chart.baseline - TOP
    slot = (chart.plot_right - chart.plot_left) / n
    bar_w = max(slot * 0.75, 1.0)
    css = [palette[name] if palette else f"series-{s}" for s, (name, _) in enumerate(ranked)]
    for i, bucket in enumerate(buckets):
        y = float(chart.baseline)
        x = chart.plot_left + slot * i + (slot - bar_w) / 2
        for s, (name, values) in enumerate(ranked):
            if values[i]:
                h = plot_h * values[i] / top
                y -= h
                label = f"{_label(bucket, unit)}: {values[i]} {name}"
                chart.rects.append(Rect(round(x, 1), round(y, 1), round(bar_w, 1), round(h, 1), css[s], label))
    chart.y_ticks = [Tick(round(chart.baseline - plot_h * k / 4, 1), str(top * k // 4)) for k in range(5)]
    every = max(1, n // 8)
    chart.x_ticks = [
        Tick(round(chart.plot_left + slot * i + slot / 2, 1), _label(b, unit))
        for i, b in enumerate(buckets)
        if i % every == 0
    ]
    chart.legend = [(css[s], name, sum(values)) for s, (name, values) in enumerate(ranked)]
    chart.table_head = ["Time (UTC)", *(name for name, _ in ranked), "Total"]
    chart.table_rows = [
        [_label(b, unit), *(values[i] for _, values in ranked), totals[i]] for i, b in enumerate(buckets) if totals[i]
    ]
    chart.total = sum(totals)
    return chart


@dataclass
class HBar:
    label: str
    value: int | None
    width: float
    css: str


def horizontal_bars(items: list[tuple[str, int | None, str]], max_width: float = 300.0) -> list[HBar]:
    """``(label, value, css)`` rows scaled to ``max_width``; a None value (unknown) draws no bar."""
    top = max((v for _, v, _ in items if v), default=0)
    return [HBar(label, v, round(max_width * v / top, 1) if v and top else 0.0, css) for label, v, css in items]
