"""The timeline as terminal charts: live handles, then RSS, in block characters, with the
phase marks above them and the summary below."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from ..terminal import Style
from .model import Timeline
from .scale import MIB, axis_range, format_count, format_seconds, time_ticks
from .summary import describe, summarize

__all__ = ["format_chart"]

_EIGHTHS = " ▁▂▃▄▅▆▇█"
_MARK_LINE = "┊"  # a mark's column, where no bar is drawn
_MARK_LABEL = "↓"


def _column(t: float, span: float, width: int) -> int:
    return min(width - 1, int(t / span * width)) if span > 0 else 0


def _buckets(
    times: Sequence[float], values: Sequence[Optional[float]], width: int, span: float
) -> List[Optional[float]]:
    """``width`` columns over ``span`` seconds: the highest value in each column, gaps carried."""
    out: List[Optional[float]] = [None] * width
    for t, v in zip(times, values):
        if v is None:
            continue
        col = _column(t, span, width)
        current = out[col]
        if current is None or v > current:
            out[col] = v
    last: Optional[float] = None
    for i, v in enumerate(out):
        if v is None:
            out[i] = last
        else:
            last = v
    return out


def _mark_row(marks: Sequence[Tuple[float, str]], span: float, width: int) -> str:
    """Each mark's label at its column (``↓leaky service``), cut short before the next."""
    row = [" "] * width
    columns = [_column(t, span, width) for t, _ in marks]
    for index, (column, (_, label)) in enumerate(zip(columns, marks)):
        following = [c for c in columns[index + 1 :] if c > column]
        end = min(following[0] - 1 if following else width + 24, column + 1 + len(label))
        text = (_MARK_LABEL + label)[: max(1, end - column)]
        row[column : column + len(text)] = list(text)
    return "".join(row).rstrip()


def _chart_lines(
    title: str,
    times: Sequence[float],
    values: Sequence[Optional[float]],
    span: float,
    bounds: Tuple[float, float],
    *,
    width: int,
    height: int,
    label: Callable[[float], str],
    style: Style,
    colour: str,
    x_label: Callable[[float], str] = format_seconds,
    x_caption: str = "seconds since start",
    marks: Sequence[Tuple[float, str]] = (),
) -> List[str]:
    """Lines of one column chart; the x axis runs from 0 to ``span`` (seconds by default).

    ``marks``: (time, label) of phase marks: labelled in the row under the title, and drawn
    as a dotted column where the chart has no bar.
    """
    bottom, top = bounds
    scale = top - bottom
    columns = _buckets(times, values, width, span)
    labels = [label(bottom + scale * row / height) for row in range(height + 1)]
    pad = max(len(s) for s in labels)
    marked = {_column(t, span, width) for t, _ in marks}
    mark_row = _mark_row(marks, span, width) if marks else ""
    lines = [f"{' ' * (pad + 2)}{title}", f"{' ' * (pad + 2)}{mark_row}".rstrip()]
    units = [None if v is None else (v - bottom) / scale * height * 8 for v in columns]
    for row in range(height, 0, -1):  # row ``height`` is the top line of cells
        runs: List[Tuple[str, str]] = []  # (colour, cells): a mark's column is dim
        for col, u in enumerate(units):
            fill = 0 if u is None else int(round(u - (row - 1) * 8))
            if u is not None and row == 1 and u > 0 and fill < 1:
                fill = 1  # a value above the axis is always visible
            cell, cell_colour = _EIGHTHS[max(0, min(8, fill))], colour
            if fill <= 0 and col in marked:
                cell, cell_colour = _MARK_LINE, "dim"
            if runs and runs[-1][0] == cell_colour:
                runs[-1] = (cell_colour, runs[-1][1] + cell)
            else:
                runs.append((cell_colour, cell))
        tick = row % 2 == 0 or row == height
        axis = f"{labels[row]:>{pad}} ┤" if tick else f"{'':>{pad}} │"
        lines.append(axis + "".join(style(cells, run_colour) for run_colour, cells in runs))
    # x axis: ticks at round times since start.
    axis_chars = ["─"] * width
    label_chars = [" "] * (width + 8)
    for t in time_ticks(span, max(2, width // 10)):
        col = min(width - 1, int(round(t / span * width))) if span > 0 else 0
        axis_chars[col] = "┴"
        text = x_label(t)
        end = col + len(text)
        if end <= len(label_chars) and all(
            c == " " for c in label_chars[max(0, col - 1) : end + 1]
        ):
            label_chars[col:end] = list(text)
    lines.append(f"{labels[0]:>{pad}} └" + "".join(axis_chars))
    lines.append(" " * (pad + 2) + "".join(label_chars).rstrip())
    lines.append(" " * (pad + 2) + x_caption.center(width).rstrip())
    return lines


def format_chart(
    timeline: Timeline,
    *,
    width: int = 60,
    height: int = 10,
    style: Optional[Style] = None,
) -> str:
    """The timeline as terminal charts (live handles, then RSS), like the seed's chart."""
    style = style or Style(False)
    if not timeline.samples:
        return "handletrace timeline: no samples\n"
    summary = summarize(timeline)
    t0 = timeline.samples[0].t
    times = [s.t - t0 for s in timeline.samples]
    span = max(times[-1], timeline.interval)
    marks = [(mark.t - t0, mark.label) for mark in timeline.marks]
    name = f" ({timeline.label})" if timeline.label else ""
    growing = summary.trend == "growing" or any(p.trend == "growing" for p in summary.phases)
    colour = "red" if growing else "green"
    lines = _chart_lines(
        f"Live native handles over {format_seconds(span)}{name}",
        times,
        [float(v) for v in timeline.series()],
        span,
        axis_range(0.0, float(summary.live_peak), zero=True, intervals=height // 2, integral=True),
        width=width,
        height=height,
        label=format_count,
        style=style,
        colour=colour,
        marks=marks,
    )
    if timeline.has_rss:
        rss = [None if r is None else r / MIB for r in timeline.rss_series()]
        known = [r for r in rss if r is not None]
        rss_height = max(4, height // 4 * 2)
        lines.append("")
        lines.extend(
            _chart_lines(
                f"Resident memory (RSS) over {format_seconds(span)}{name}",
                times,
                rss,
                span,
                axis_range(min(known), max(known), zero=False, intervals=rss_height // 2),
                width=width,
                height=rss_height,
                label=lambda v: f"{format_count(v)} MB",
                style=style,
                colour="cyan",
                marks=marks,
            )
        )
    lines.append("")

    def emphasis(words: str, trend: str) -> str:
        return style(words, "bold", "red" if trend == "growing" else "green")

    lines.extend(describe(summary, emphasis))
    if timeline.errors:
        lines.append(f"note: {timeline.errors} samples failed (caught)")
    return "\n".join(lines) + "\n"
