"""Round axes and number formats shared by the timeline's terminal chart and its SVG."""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

__all__ = [
    "MIB",
    "axis_range",
    "best_axis",
    "format_bytes",
    "format_count",
    "format_seconds",
    "nice_step",
    "time_ticks",
]


def nice_step(span: float, ticks: int) -> float:
    """A round step (1, 2, 2.5, 5 x 10^k) giving at most about ``ticks`` steps over ``span``."""
    raw = span / max(1, ticks)
    if raw <= 0:
        return 1.0
    exponent = math.floor(math.log10(raw))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10**exponent
        if candidate >= raw * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)


def _next_step(step: float) -> float:
    exponent = math.floor(math.log10(step) + 1e-9)
    base = step / 10**exponent
    for candidate in (1.0, 2.0, 2.5, 5.0, 10.0):
        if candidate > base * (1 + 1e-9):
            return candidate * 10**exponent
    return 20.0 * 10**exponent


def axis_range(
    low: float, high: float, *, zero: bool, intervals: int = 4, integral: bool = False
) -> Tuple[float, float]:
    """Round axis bounds showing ``low``..``high`` whose ``intervals`` steps are round numbers.

    ``zero``: start at 0 (counts); otherwise start a little below ``low`` so changes show.
    ``integral``: steps of at least 1 (no "0.25 handles" labels).
    """
    if zero or high <= 0:
        bottom = 0.0
        spread = max(high, 0.0)
    else:
        spread = max(high - low, abs(high) * 0.01, 1e-9)
    step = nice_step(spread, intervals)
    if integral and step < 1:
        step = 1.0
    while True:
        if not zero and high > 0:
            bottom = max(0.0, math.floor((low - spread * 0.15) / step) * step)
        if bottom + step * intervals >= high * (1 - 1e-9):
            return bottom, bottom + step * intervals
        step = _next_step(step)


def best_axis(
    low: float,
    high: float,
    *,
    zero: bool,
    integral: bool = False,
    choices: Sequence[int] = (4, 5, 6),
) -> Tuple[float, float, int]:
    """The :func:`axis_range` among ``choices`` of interval counts that wastes the least room."""
    best: Optional[Tuple[float, float, int]] = None
    for intervals in choices:
        bottom, top = axis_range(low, high, zero=zero, intervals=intervals, integral=integral)
        if best is None or top - bottom < best[1] - best[0] - 1e-9:
            best = (bottom, top, intervals)
    assert best is not None
    return best


MIB = float(1 << 20)


def format_bytes(n: float) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def format_count(n: float) -> str:
    """``3``, ``2.5``, ``38.25``: at most two decimals, no trailing zeros."""
    text = f"{n:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_seconds(t: float) -> str:
    if t < 10 and t != int(t):
        return f"{t:.1f}s"
    if t < 120:
        return f"{t:.0f}s"
    return f"{t / 60:.1f}m" if t < 7200 else f"{t / 3600:.1f}h"


def time_ticks(span: float, count: int) -> List[float]:
    """Round times from 0 to ``span``, about ``count`` of them."""
    step = nice_step(span, count)
    ticks = []
    t = 0.0
    while t <= span * (1 + 1e-9):
        ticks.append(t)
        t = round(t + step, 10)
    return ticks
