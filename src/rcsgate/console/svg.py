"""Charts drawn as SVG on the server: no JavaScript, testable as text, crisp at any size.

Every helper returns ``Markup`` (already-escaped SVG) to put straight into a template:
``{{ svg.stacked_bar_chart(days, series, title="Last 7 days") }}``. Labels and titles are escaped
here. Each chart scales to its container (``viewBox``; width 100%) and carries ``role="img"``, a
``<title>`` and an ``aria-label``; bars and points have ``<title>`` tooltips with their values.

- ``bar_chart(items)``: one bar per (label, value)
- ``stacked_bar_chart(labels, series)``: per label, one segment per ``Series``
- ``line_chart(labels, series)``: one line per ``Series`` (``percent=True``: values are 0-1 ratios)
- ``funnel(steps)``: horizontal bars, each with its share of the first step
- ``progress(parts, total)``: a thin horizontal bar of coloured parts (campaign progress)
- ``STATUS_COLORS`` / ``status_color(status)``: one colour per message status, shared by every screen
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = [
    "STATUS_COLORS",
    "Series",
    "bar_chart",
    "funnel",
    "line_chart",
    "progress",
    "stacked_bar_chart",
    "status_color",
]

STATUS_COLORS: dict[str, str] = {
    "scheduled": "#a5b4fc",
    "moderation": "#c4b5fd",
    "accepted": "#94a3b8",
    "sending": "#60a5fa",
    "sent": "#3b82f6",
    "delivered": "#22c55e",
    "read": "#15803d",
    "expired": "#f59e0b",
    "undelivered": "#f97316",
    "failed": "#ef4444",
    "unknown": "#6b7280",
}
_FALLBACK = "#9ca3af"
_FONT = 'font-family="system-ui, sans-serif"'


def status_color(status: str) -> str:
    return STATUS_COLORS.get(status, _FALLBACK)


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str = "#2563eb"


def _at(series: Series, i: int) -> float:
    """A bar's value (a missing one is 0)."""
    value = series.values[i] if i < len(series.values) else None
    return float(value) if value is not None else 0.0


def _n(value: float) -> str:
    """A coordinate: at most one decimal, no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _fmt(value: float, percent: bool = False) -> str:
    if percent:
        return f"{value * 100:.1f}%"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def _open(width: int, height: int, title: str, css: str) -> str:
    label = escape(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="{label}">'
        f"<title>{label}</title>"
    )


def _nice_max(value: float) -> float:
    """The top of a count axis: four gridline steps of a round whole size (1, 2, 5, 10, 20, 25, 50 …)."""
    target = max(float(value), 1.0) / 4
    power = 1.0
    while True:
        for step in (1, 2, 2.5, 5):
            size = step * power
            if size >= target and size.is_integer():
                return 4 * size
        power *= 10


def _axis(left: int, top: int, plot_w: float, plot_h: float, y_max: float, percent: bool) -> list[str]:
    parts = []
    for i in range(5):
        value = y_max * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{_n(left + plot_w)}" y2="{_n(y)}" '
            f'stroke="#e5e7eb" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{_n(y + 4)}" text-anchor="end" font-size="11" fill="#6b7280" '
            f"{_FONT}>{escape(_fmt(value, percent))}</text>"
        )
    return parts


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    parts = []
    for s in series:
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(y - 9)}" width="10" height="10" rx="2" fill="{escape(s.color)}"/>'
            f'<text x="{_n(x + 14)}" y="{_n(y)}" font-size="11" fill="#374151" {_FONT}>{escape(s.name)}</text>'
        )
        x += 24 + 6.5 * len(s.name)
    return parts


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str = "",
    width: int = 600,
    height: int = 180,
    color: str = "#2563eb",
    colors: Sequence[str] | None = None,
    percent: bool = False,
) -> Markup:
    """One bar per (label, value), in ``color``, or each in its own of ``colors``."""
    labels = [label for label, _ in items]
    if colors is None:
        series = [Series(title or "value", [value for _, value in items], color)]
    else:
        series = [
            Series(label, [value if j == i else 0.0 for j in range(len(items))], colors[i % len(colors)])
            for i, (label, value) in enumerate(items)
        ]
    return stacked_bar_chart(
        labels, series, title=title, width=width, height=height, percent=percent, show_legend=False
    )


def stacked_bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str = "",
    width: int = 600,
    height: int = 200,
    percent: bool = False,
    show_legend: bool = True,
) -> Markup:
    left, right, top = 48, 8, 10
    bottom = 40 if show_legend else 24
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(_at(s, i) for s in series) for i in range(len(labels))]
    y_max = 1.0 if percent else _nice_max(max(totals, default=0))
    parts = [_open(width, height, title, "chart-bars"), *_axis(left, top, plot_w, plot_h, y_max, percent)]
    slot = plot_w / max(1, len(labels))
    bar_w = max(2.0, min(48.0, slot * 0.6))
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        y: float = top + plot_h
        for s in series:
            value = _at(s, i)
            if value <= 0:
                continue
            h = plot_h * min(value, y_max) / y_max
            y -= h
            named = len(series) > 1 and s.name != label
            tip = (
                f"{label} · {s.name}: {_fmt(value, percent)}" if named else f"{label}: {_fmt(value, percent)}"
            )
            parts.append(
                f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(bar_w)}" height="{_n(h)}" '
                f'fill="{escape(s.color)}"><title>{escape(tip)}</title></rect>'
            )
        parts.append(
            f'<text x="{_n(left + slot * i + slot / 2)}" y="{_n(top + plot_h + 15)}" text-anchor="middle" '
            f'font-size="11" fill="#374151" {_FONT}>{escape(label)}</text>'
        )
    if show_legend:
        parts.extend(_legend(series, left, height - 6))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or numeric


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str = "",
    width: int = 600,
    height: int = 200,
    percent: bool = False,
    y_max: float | None = None,
) -> Markup:
    """A line per series; a ``None`` value (no data that day, say) leaves a gap instead of a zero."""
    left, right, top, bottom, pad = 48, 12, 10, 40, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((float(v) for s in series for v in s.values if v is not None), default=0.0)
    top_value = y_max if y_max is not None else (1.0 if percent else _nice_max(peak))
    parts = [
        _open(width, height, title, "chart-lines"),
        *_axis(left, top, plot_w, plot_h, top_value, percent),
    ]
    step = (plot_w - 2 * pad) / max(1, len(labels) - 1)

    def x_of(i: int) -> float:
        return left + pad + step * i if len(labels) > 1 else left + plot_w / 2

    for i, label in enumerate(labels):
        parts.append(
            f'<text x="{_n(x_of(i))}" y="{_n(top + plot_h + 15)}" text-anchor="middle" font-size="11" '
            f'fill="#374151" {_FONT}>{escape(label)}</text>'
        )
    for s in series:
        runs: list[list[tuple[float, float]]] = [[]]
        for i, value in enumerate(s.values[: len(labels)]):
            if value is None:
                runs.append([])
                continue
            x = x_of(i)
            y = top + plot_h - plot_h * min(float(value), top_value) / top_value
            runs[-1].append((x, y))
            tip = f"{labels[i]} · {s.name}: {_fmt(float(value), percent)}"
            parts.append(
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3" fill="{escape(s.color)}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                path = " ".join(f"{_n(x)},{_n(y)}" for x, y in run)
                parts.append(
                    f'<polyline points="{path}" fill="none" stroke="{escape(s.color)}" stroke-width="2" '
                    f'stroke-linejoin="round"/>'
                )
    parts.extend(_legend(series, left, height - 6))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or numeric


def funnel(
    steps: Sequence[tuple[str, float]],
    *,
    title: str = "",
    width: int = 600,
    color: str = "#2563eb",
) -> Markup:
    row_h, gap, label_w = 26, 6, 110
    height = max(1, len(steps)) * (row_h + gap)
    first = float(steps[0][1]) if steps else 0.0
    bar_space = width - label_w - 110
    parts = [_open(width, height, title, "chart-funnel")]
    for i, (label, value) in enumerate(steps):
        y = i * (row_h + gap)
        share = float(value) / first if first > 0 else 0.0
        w = max(1.0, bar_space * share) if value else 0.0
        text = f"{_fmt(float(value))} ({share * 100:.1f}%)" if first > 0 else _fmt(float(value))
        parts.append(
            f'<text x="{label_w - 8}" y="{_n(y + row_h / 2 + 4)}" text-anchor="end" font-size="12" '
            f'fill="#374151" {_FONT}>{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{_n(w)}" height="{row_h}" rx="3" fill="{escape(color)}" '
            f'opacity="{_n(1 - 0.12 * min(i, 5))}"><title>{escape(f"{label}: {text}")}</title></rect>'
            f'<text x="{_n(label_w + w + 8)}" y="{_n(y + row_h / 2 + 4)}" font-size="12" fill="#111827" '
            f"{_FONT}>{escape(text)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or numeric


def progress(
    parts: Sequence[tuple[str, float, str]],
    total: float,
    *,
    title: str = "",
    width: int = 240,
    height: int = 10,
) -> Markup:
    """A bar of ``(name, value, color)`` parts out of ``total`` (the rest stays grey)."""
    out = [
        _open(width, height, title or "progress", "chart-progress"),
        f'<rect x="0" y="0" width="{width}" height="{height}" rx="{_n(height / 2)}" fill="#e5e7eb"/>',
    ]
    x = 0.0
    for name, value, color in parts:
        if value <= 0 or total <= 0:
            continue
        w = width * min(float(value), float(total)) / float(total)
        out.append(
            f'<rect x="{_n(x)}" y="0" width="{_n(w)}" height="{height}" fill="{escape(color)}">'
            f"<title>{escape(f'{name}: {_fmt(float(value))}')}</title></rect>"
        )
        x += w
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every value above is escaped or numeric
