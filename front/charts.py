"""Chart geometry for server-rendered SVG: the template draws what these compute (no script, no library), and
every chart has its table beside it."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 640, 220, 44, 28, 12, 12


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    percent: float  # of the largest, for a horizontal bar's width
    link: str = ""
    note: str = ""


def bars(items: list[tuple[str, float, str, str]]) -> list[Bar]:
    """Horizontal bars: (label, value, link, note) each, widths relative to the largest."""
    top = max((value for _, value, _, _ in items), default=0) or 1
    return [Bar(label, value, round(100 * value / top, 1), link, note) for label, value, link, note in items]


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    value: str


@dataclass(frozen=True)
class Series:
    name: str
    css: str
    points: list[Point]

    @property
    def path(self) -> str:
        return " ".join(f"{'M' if i == 0 else 'L'}{p.x:.1f},{p.y:.1f}" for i, p in enumerate(self.points))


@dataclass(frozen=True)
class Axis:
    at: float
    label: str


@dataclass(frozen=True)
class LineChart:
    series: list[Series]
    x_axis: list[Axis]
    y_axis: list[Axis]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM


def rates(labels: list[str], series: list[tuple[str, str, list[float | None]]]) -> LineChart:
    """Shares (0–1) over ``labels``: a line per series with a point per known value, y from 0 to 100 %."""
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = inner_w / max(1, len(labels) - 1)

    def x(i: int) -> float:
        return LEFT + (i * step if len(labels) > 1 else inner_w / 2)

    def y(share: float) -> float:
        return TOP + inner_h * (1 - min(1.0, max(0.0, share)))

    drawn = [
        Series(
            name,
            css,
            [Point(x(i), y(v), labels[i], f"{v:.0%}") for i, v in enumerate(values) if v is not None],
        )
        for name, css, values in series
    ]
    every = max(1, len(labels) // 6)
    x_axis = [Axis(x(i), label) for i, label in enumerate(labels) if i % every == 0]
    y_axis = [Axis(y(share), f"{share:.0%}") for share in (0, 0.25, 0.5, 0.75, 1)]
    return LineChart(drawn, x_axis, y_axis)


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Histogram:
    columns: list[Column]
    x_axis: list[Axis]
    y_axis: list[Axis]
    thresholds: list[Axis]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM
    top: int = TOP


def histogram(stacks: dict[str, dict[int, int]], *, bin_width: int, thresholds: list[tuple[str, float]]) -> Histogram:
    """Stacked columns per score bin (one colour per stage), with the thresholds as vertical lines."""
    bins = sorted({low for counts in stacks.values() for low in counts} | {0})
    low, high = min(bins + [int(t) for _, t in thresholds]), max(bins + [int(t) for _, t in thresholds]) + bin_width
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = {b: sum(counts.get(b, 0) for counts in stacks.values()) for b in bins}
    top = max(totals.values(), default=0) or 1

    def x(score: float) -> float:
        return LEFT + inner_w * (score - low) / max(1, high - low)

    columns = []
    for b in bins:
        base = 0
        for stage, counts in stacks.items():
            n = counts.get(b, 0)
            if n:
                h = inner_h * n / top
                y = TOP + inner_h - inner_h * base / top - h
                columns.append(
                    Column(
                        x(b),
                        y,
                        max(1.0, x(b + bin_width) - x(b) - 1),
                        h,
                        stage,
                        f"{stage} {b}–{b + bin_width - 1}: {n}",
                    )
                )
                base += n
    ticks = range(low - low % (bin_width * 2), high + 1, bin_width * 2)
    x_axis = [Axis(x(t), str(t)) for t in ticks if low <= t <= high]
    y_axis = [Axis(TOP + inner_h * (1 - f), f"{round(top * f):,}") for f in (0, 0.5, 1)]
    lines = [Axis(x(value), f"{name} {value:g}") for name, value in thresholds]
    return Histogram(columns, x_axis, y_axis, lines)
