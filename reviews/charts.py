"""Small server-rendered SVG charts for the metrics pages: no JavaScript, no CDN.

Every piece of text is escaped before it joins the markup; numbers are formatted here. The SVGs
scale to their container (viewBox, width 100%) so they work on a phone.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLORS = {
    "approved": "#137a3a",
    "modified": "#2f5bea",
    "rejected": "#b42318",
    "timed_out": "#9a5b00",
    "stopped": "#5d3a9b",
    "auto_approved": "#9aa4b2",
    "p50": "#2f5bea",
    "p90": "#b42318",
    "bar": "#2f5bea",
}
FONT = 'font-family="system-ui, sans-serif" font-size="11" fill="#5d6673"'


def _svg(width: int, height: int, title: str, body: list[str]) -> SafeString:
    label = escape(title)
    # Every dynamic part of `body` was escaped or is a formatted number.
    return mark_safe(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{label}" preserveAspectRatio="xMidYMid meet"><title>{label}</title>'
        + "".join(body)
        + "</svg>"
    )


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return float(step * 4)
    magnitude = 10 ** (len(str(int(value))) - 1)
    return float(((int(value) // magnitude) + 1) * magnitude)


def _axis(max_value: float, left: int, top: int, plot_w: int, plot_h: int, fmt) -> list[str]:
    parts = []
    for i in range(5):
        value = max_value * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#dde1e7" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>'
            f"{escape(fmt(value))}</text>"
        )
    return parts


def _x_labels(labels: Sequence[str], left: int, step: float, y: float) -> list[str]:
    every = max(1, round(len(labels) / 8))
    return [
        f'<text x="{left + step * (i + 0.5):.1f}" y="{y:.1f}" text-anchor="middle" {FONT}>'
        f"{escape(label)}</text>"
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def _legend(series: Sequence[tuple[str, str]], left: int, y: int) -> list[str]:
    parts, x = [], left
    for name, color in series:
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" rx="2" fill="{escape(color)}"/>'
            f'<text x="{x + 14}" y="{y}" {FONT}>{escape(name)}</text>'
        )
        x += 22 + 7 * len(name)
    return parts


def stacked_bars(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    width: int = 1000,
    height: int = 260,
) -> SafeString:
    """Bars per label, stacked by series (name, color, values)."""
    left, top, bottom = 44, 24, 28
    plot_w, plot_h = width - left - 8, height - top - bottom
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    top_value = _nice_max(max(totals, default=0))
    step = plot_w / max(len(labels), 1)
    body = _axis(top_value, left, top, plot_w, plot_h, lambda v: f"{v:,.0f}")
    for i, label in enumerate(labels):
        y = top + plot_h
        for name, color, values in series:
            value = values[i]
            if not value:
                continue
            h = plot_h * value / top_value
            y -= h
            body.append(
                f'<rect x="{left + step * i + step * 0.15:.1f}" y="{y:.1f}" '
                f'width="{max(step * 0.7, 1):.1f}" height="{h:.1f}" fill="{escape(color)}">'
                f"<title>{escape(label)}: {escape(name)} {value:,.0f}</title></rect>"
            )
    body += _x_labels(labels, left, step, height - 8)
    body += _legend([(n, c) for n, c, _ in series], left, 12)
    return _svg(width, height, title, body)


def lines(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    fmt=lambda v: f"{v:,.0f}",
    width: int = 480,
    height: int = 220,
    max_value: float | None = None,
) -> SafeString:
    """One polyline per series; None values break the line. `max_value` fixes the scale
    (1.0 for rates)."""
    left, top, bottom = 52, 24, 28
    plot_w, plot_h = width - left - 8, height - top - bottom
    values = [v for _, _, vs in series for v in vs if v is not None]
    top_value = max_value or _nice_max(max(values, default=0))
    step = plot_w / max(len(labels), 1)
    body = _axis(top_value, left, top, plot_w, plot_h, fmt)
    for name, color, vs in series:
        segment: list[str] = []
        segments = []
        for i, value in enumerate(vs):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            x = left + step * (i + 0.5)
            y = top + plot_h - plot_h * min(value, top_value) / top_value
            segment.append(f"{x:.1f},{y:.1f}")
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{escape(color)}">'
                f"<title>{escape(labels[i])}: {escape(name)} {escape(fmt(value))}</title></circle>"
            )
        if segment:
            segments.append(segment)
        for points in segments:
            body.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{escape(color)}" '
                f'stroke-width="2"/>'
            )
    body += _x_labels(labels, left, step, height - 8)
    body += _legend([(n, c) for n, c, _ in series], left, 12)
    return _svg(width, height, title, body)


def reliability(title: str, bins: Sequence, size: int = 320) -> SafeString:
    """Stated confidence (x) against observed approved-unchanged rate (y), one dot per bin
    with its count; the diagonal is perfect calibration."""
    left, top, pad, right = 40, 12, 34, 44  # room on the right for the last dot's count
    plot = size - left - right
    height = plot + top + pad
    body = []
    for i in range(6):
        frac = i / 5
        x, y = left + plot * frac, top + plot - plot * frac
        body.append(
            f'<line x1="{left}" x2="{left + plot}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{frac:.0%}</text>'
            f'<text x="{x:.1f}" y="{top + plot + 14}" text-anchor="middle" {FONT}>{frac:.0%}</text>'
        )
    body.append(
        f'<line x1="{left}" y1="{top + plot}" x2="{left + plot}" y2="{top}" '
        f'stroke="#9aa4b2" stroke-dasharray="4 4"/>'
        f'<text x="{left + plot / 2:.1f}" y="{height - 4}" text-anchor="middle" {FONT}>'
        f"stated confidence</text>"
    )
    biggest = max((b.n for b in bins), default=0) or 1
    for b in bins:
        if not b.n or b.stated is None:
            continue
        x = left + plot * b.stated
        y = top + plot - plot * b.observed
        r = 3 + 7 * (b.n / biggest) ** 0.5
        body.append(
            f'<line x1="{x:.1f}" y1="{top + plot - plot * b.stated:.1f}" x2="{x:.1f}" '
            f'y2="{y:.1f}" stroke="#b42318" stroke-width="1" opacity="0.5"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#2f5bea" opacity="0.8">'
            f"<title>says {b.stated:.0%}, right {b.observed:.0%} (n = {b.n:,})</title></circle>"
            f'<text x="{x + r + 2:.1f}" y="{y + 4:.1f}" {FONT}>n={b.n:,}</text>'
        )
    return _svg(size, height, title, body)  # square plot, labels outside it


def histogram(
    title: str, labels: Sequence[str], counts: Sequence[int], width: int = 720, height: int = 180
) -> SafeString:
    return stacked_bars(
        title, labels, [("decisions", COLORS["bar"], counts)], width=width, height=height
    )


def rate_bars(
    title: str,
    rows: Sequence[tuple[str, float | None, float, float, int]],
    width: int = 1000,
    bar_h: int = 18,
) -> SafeString:
    """A horizontal bar per row (label, rate, low, high, n): the rate with its confidence
    interval as a whisker, and n beside it. Rates are 0..1; a row without data has no bar."""
    left, right, top = 210, 110, 22
    plot_w = width - left - right
    height = top + len(rows) * (bar_h + 10) + 8
    body = []
    for i in range(5):
        frac = i / 4
        x = left + plot_w * frac
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{height - 6}" stroke="#eef0f3"/>'
            f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" {FONT}>{frac:.0%}</text>'
        )
    for i, (label, rate, low, high, n) in enumerate(rows):
        y = top + i * (bar_h + 10) + 4
        short = label if len(label) <= 32 else label[:31] + "…"
        body.append(
            f'<text x="{left - 8}" y="{y + bar_h / 2 + 4:.1f}" text-anchor="end" {FONT}>'
            f"{escape(short)}</text>"
        )
        if rate is None:
            body.append(
                f'<text x="{left + 4}" y="{y + bar_h / 2 + 4:.1f}" {FONT}>no verdicts yet</text>'
            )
            continue
        mid = y + bar_h / 2
        body.append(
            f'<rect x="{left}" y="{y}" width="{plot_w * rate:.1f}" height="{bar_h}" rx="3" '
            f'fill="{COLORS["bar"]}" opacity="0.85"><title>{escape(label)}: {rate:.1%} '
            f"(95% interval {low:.1%} to {high:.1%}, n = {n:,})</title></rect>"
            f'<line x1="{left + plot_w * low:.1f}" x2="{left + plot_w * high:.1f}" y1="{mid:.1f}" '
            f'y2="{mid:.1f}" stroke="#1b1f24" stroke-width="1.5"/>'
            f'<line x1="{left + plot_w * low:.1f}" x2="{left + plot_w * low:.1f}" '
            f'y1="{mid - 5:.1f}" y2="{mid + 5:.1f}" stroke="#1b1f24" stroke-width="1.5"/>'
            f'<line x1="{left + plot_w * high:.1f}" x2="{left + plot_w * high:.1f}" '
            f'y1="{mid - 5:.1f}" y2="{mid + 5:.1f}" stroke="#1b1f24" stroke-width="1.5"/>'
            f'<text x="{left + plot_w + 6}" y="{mid + 4:.1f}" {FONT}>{rate:.0%} · n={n:,}</text>'
        )
    return _svg(width, height, title, body)
