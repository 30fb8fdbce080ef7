"""The timeline as a standalone SVG (live handles per kind and in total, then RSS, with the
phase marks) and as a self-contained HTML page around it. Written by hand: no plotting
dependency."""

# ruff: noqa: E501  (SVG/HTML templates are easier to check unwrapped)

from __future__ import annotations

import time
from html import escape
from typing import Callable, List, Optional, Sequence, Tuple

from .model import Timeline
from .scale import MIB, best_axis, format_count, format_seconds, time_ticks
from .summary import PhaseSummary, describe, phase_words, summarize

__all__ = ["format_html", "format_svg"]

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442", "#999999")
MAX_KIND_LINES = 7  # kinds drawn individually; the rest only count in the total
DASHES = ("", "7 4", "2 3", "10 3 2 3")


def _polyline(
    points: Sequence[Tuple[float, float]], colour: str, width: float, dash: str = ""
) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" '
        f'stroke-linejoin="round"{extra} points="{coords}"/>'
    )


def _step_points(
    times: Sequence[float],
    values: Sequence[Optional[float]],
    x: Callable[[float], float],
    y: Callable[[float], float],
) -> List[Tuple[float, float]]:
    points: List[Tuple[float, float]] = []
    previous: Optional[float] = None
    for t, v in zip(times, values):
        if v is None:
            continue
        if previous is not None and v != previous:
            points.append((x(t), y(previous)))
        points.append((x(t), y(v)))
        previous = v
    return points


def _thin(n: int, limit: int = 4000) -> List[int]:
    """Indices keeping at most ``limit`` samples, always the first and the last."""
    if n <= limit:
        return list(range(n))
    step = n / limit
    picked = sorted({int(i * step) for i in range(limit)} | {n - 1})
    return picked


def _panel(
    parts: List[str],
    *,
    left: float,
    top: float,
    width: float,
    height: float,
    span: float,
    bounds: Tuple[float, float, int],
    y_label: Callable[[float], str],
    title: str,
) -> Tuple[Callable[[float], float], Callable[[float], float]]:
    y_min, y_max, intervals = bounds

    def x(t: float) -> float:
        return left + (t / span) * width if span > 0 else left

    def y(v: float) -> float:
        return top + height - ((v - y_min) / (y_max - y_min)) * height

    parts.append(f'<text x="{left}" y="{top - 10}" class="panel-title">{escape(title)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{width}" height="{height}" class="plot"/>')
    for i in range(intervals + 1):
        v = y_min + (y_max - y_min) * i / intervals
        yy = y(v)
        parts.append(
            f'<line x1="{left}" y1="{yy:.1f}" x2="{left + width}" y2="{yy:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{left - 8}" y="{yy + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(y_label(v))}</text>"
        )
    for t in time_ticks(span, 6):
        xx = x(t)
        parts.append(
            f'<line x1="{xx:.1f}" y1="{top + height}" x2="{xx:.1f}" y2="{top + height + 5}" class="axis"/>'
        )
        parts.append(
            f'<text x="{xx:.1f}" y="{top + height + 18}" class="tick" text-anchor="middle">'
            f"{escape(format_seconds(t))}</text>"
        )
    return x, y


def _draw_marks(
    parts: List[str],
    marks: Sequence[Tuple[float, str]],
    x: Callable[[float], float],
    *,
    top: float,
    height: float,
    labelled: bool,
) -> None:
    """A dashed vertical line per phase mark; with ``labelled``, its label at the top (a
    label that would run into the one before goes a line lower)."""
    ends = [-1e9, -1e9]  # where the labels on each of the two label lines end
    for t, label in marks:
        xx = x(max(0.0, t))
        parts.append(
            f'<line x1="{xx:.1f}" y1="{top}" x2="{xx:.1f}" y2="{top + height:.1f}" class="mark"/>'
        )
        if labelled:
            line = 0 if xx + 4 >= ends[0] else 1 if xx + 4 >= ends[1] else 0
            parts.append(
                f'<text x="{xx + 4:.1f}" y="{top + 14 + 14 * line}" class="mark-label">'
                f"{escape(label)}</text>"
            )
            ends[line] = xx + 4 + 6.5 * len(label) + 8  # about 6.5 px a character at 11 px


def format_svg(
    timeline: Timeline, *, width: int = 940, title: Optional[str] = None, header: bool = True
) -> str:
    """The timeline as a standalone SVG: live handles per kind (and total), then RSS.

    ``header=False`` leaves out the title and summary lines (a page around it shows them).
    """
    summary = summarize(timeline)
    samples = timeline.samples
    keep = _thin(len(samples))
    t0 = samples[0].t if samples else 0.0
    times = [samples[i].t - t0 for i in keep]
    span = max(times[-1] if times else 0.0, timeline.interval)
    left, right_legend = 70.0, 250.0
    plot_w = width - left - right_legend - 20
    panel_h = 230.0
    has_rss = timeline.has_rss
    top = 100.0 if header else 30.0
    height = top + panel_h + 45 + ((panel_h * 0.7 + 80) if has_rss else 0) + 30
    heading = title or "handletrace timeline" + (f": {timeline.label}" if timeline.label else "")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">',
        "<style>"
        ".plot{fill:#fcfcfc;stroke:#888;stroke-width:1}"
        ".grid{stroke:#e3e3e3;stroke-width:1}"
        ".axis{stroke:#888;stroke-width:1}"
        ".tick{font-size:11px;fill:#555}"
        ".panel-title{font-size:13px;font-weight:bold;fill:#222}"
        ".legend{font-size:12px;fill:#222}"
        ".title{font-size:16px;font-weight:bold;fill:#111}"
        ".sub{font-size:12px;fill:#444}"
        ".mark{stroke:#555;stroke-width:1.2;stroke-dasharray:4 3}"
        ".mark-label{font-size:11px;fill:#222;paint-order:stroke;stroke:#fff;stroke-width:3px}"
        "</style>",
        f'<rect width="{width}" height="{height:.0f}" fill="white"/>',
    ]
    if header:
        parts.append(f'<text x="20" y="26" class="title">{escape(heading)}</text>')
        for i, line in enumerate(describe(summary)):
            parts.append(f'<text x="20" y="{46 + 16 * i}" class="sub">{escape(line)}</text>')
    x, y = _panel(
        parts,
        left=left,
        top=top,
        width=plot_w,
        height=panel_h,
        span=span,
        bounds=best_axis(0.0, float(summary.live_peak), zero=True, integral=True),
        y_label=format_count,
        title="Live native handles",
    )
    marks = [(mark.t - t0, mark.label) for mark in timeline.marks]
    _draw_marks(parts, marks, x, top=top, height=panel_h, labelled=True)
    legend_x = left + plot_w + 20
    legend_y = top + 8
    kinds = timeline.kinds
    totals = [float(samples[i].total) for i in keep]
    parts.append(_polyline(_step_points(times, totals, x, y), "#111", 2.4))
    for index, kind in enumerate(kinds[:MAX_KIND_LINES]):
        colour = PALETTE[index % len(PALETTE)]
        values = [float(samples[i].live.get(kind, 0)) for i in keep]
        # Dashes let kinds with equal counts (a recognizer and its property bag) both show.
        dash = DASHES[index % len(DASHES)]
        parts.append(_polyline(_step_points(times, values, x, y), colour, 2.0, dash))
        ly = legend_y + 18 * (index + 1)
        parts.append(
            f'<line x1="{legend_x}" y1="{ly - 4}" x2="{legend_x + 22}" y2="{ly - 4}" '
            f'stroke="{colour}" stroke-width="3"'
            + (f' stroke-dasharray="{dash}"' if dash else "")
            + "/>"
        )
        parts.append(
            f'<text x="{legend_x + 24}" y="{ly}" class="legend">{escape(kind)} '
            f"(peak {summary.peaks.get(kind, 0)})</text>"
        )
    parts.append(
        f'<line x1="{legend_x}" y1="{legend_y - 4}" x2="{legend_x + 18}" y2="{legend_y - 4}" stroke="#111" stroke-width="3"/>'
    )
    parts.append(
        f'<text x="{legend_x + 24}" y="{legend_y}" class="legend">all kinds (peak {summary.live_peak})</text>'
    )
    if len(kinds) > MAX_KIND_LINES:
        ly = legend_y + 18 * (MAX_KIND_LINES + 1)
        parts.append(
            f'<text x="{legend_x}" y="{ly}" class="legend">+{len(kinds) - MAX_KIND_LINES} more kinds</text>'
        )
    if not kinds:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + panel_h / 2}" class="sub" '
            'text-anchor="middle">no live native handles at any sample</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{top + panel_h + 36}" class="tick" '
        'text-anchor="middle">seconds since start</text>'
    )
    if has_rss:
        top2 = top + panel_h + 80
        rss = [samples[i].rss for i in keep]
        values2 = [None if r is None else r / MIB for r in rss]
        known = [v for v in values2 if v is not None]
        x2, y2 = _panel(
            parts,
            left=left,
            top=top2,
            width=plot_w,
            height=panel_h * 0.7,
            span=span,
            bounds=best_axis(min(known), max(known), zero=False),
            y_label=lambda v: f"{format_count(v)} MB",
            title="Resident memory (RSS)",
        )
        _draw_marks(parts, marks, x2, top=top2, height=panel_h * 0.7, labelled=False)
        parts.append(_polyline(_step_points(times, values2, x2, y2), "#0072B2", 2.0))
        parts.append(
            f'<text x="{left + plot_w + 20}" y="{top2 + 12}" class="legend">'
            f"{escape(timeline.rss_source or 'rss')}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _phase_html(phase: PhaseSummary) -> str:
    words, detail = phase_words(phase)
    return (
        f'{escape(phase.label)}: <span class="trend-{phase.trend}">{escape(words)}</span>'
        f"{escape(detail)}"
    )


def format_html(timeline: Timeline, *, title: Optional[str] = None) -> str:
    """A self-contained HTML page: the SVG chart and a table of peaks per kind."""
    summary = summarize(timeline)
    heading = title or "handletrace timeline" + (f": {timeline.label}" if timeline.label else "")
    rows = "\n".join(
        f"<tr><td>{escape(kind)}</td><td>{timeline.series(kind)[0]}</td>"
        f"<td>{timeline.series(kind)[-1]}</td><td>{summary.peaks.get(kind, 0)}</td></tr>"
        for kind in timeline.kinds
    )
    if summary.phases:
        trend = "By phase: " + "; ".join(_phase_html(phase) for phase in summary.phases)
    else:
        trend = f'Trend:\n<span class="trend-{summary.trend}">{summary.trend}</span>'
    started = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timeline.started_at))
        if timeline.started_at
        else "unknown"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(heading)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "DejaVu Sans", sans-serif; margin: 2rem; color: #1a1a1a; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border: 1px solid #ccc; padding: .3rem .7rem; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; font-family: ui-monospace, monospace; }}
.trend-growing {{ color: #b00020; font-weight: bold; }}
.trend-flat, .trend-falling {{ color: #0a7a3a; font-weight: bold; }}
</style>
</head>
<body>
<h1>{escape(heading)}</h1>
<p>Started {escape(started)}; {summary.samples} samples over {summary.duration:.1f} s
(every {timeline.interval * 1000:.0f} ms). {trend}.</p>
<p>{"<br>".join(escape(line) for line in describe(summary))}</p>
{format_svg(timeline, title=heading, header=False)}
<table>
<tr><th>kind</th><th>first</th><th>last</th><th>peak</th></tr>
{rows}
</table>
</body>
</html>
"""
