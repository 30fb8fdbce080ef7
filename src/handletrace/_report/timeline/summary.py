"""What a timeline shows in numbers: first, last and peak live counts and RSS, the slope,
the trend, and with phase marks the same per phase; and those numbers in words."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from ..._core.compat import DATACLASS_SLOTS
from .model import Sample, Timeline
from .scale import format_bytes

__all__ = [
    "PhaseSummary",
    "TimelineSummary",
    "describe",
    "phase_text",
    "phase_words",
    "summarize",
]

#: Kinds named in a phase's words (the ones that changed most); the rest are counted.
KINDS_NAMED = 3


@dataclass(frozen=True, **DATACLASS_SLOTS)
class PhaseSummary:
    """One phase of the run, from its mark to the next (or to the end).

    ``live_first`` is the live count when the phase began (the last sample at or before its
    mark), ``live_last`` when it ended; ``changes`` the kinds whose count changed over it,
    largest change first.
    """

    label: str
    start: float  #: seconds since the first sample
    end: float
    live_first: int
    live_last: int
    live_peak: int
    trend: str
    changes: Tuple[Tuple[str, int], ...] = ()  #: (kind, last - first)
    #: The live count the whole timeline began with: a phase that ends there is "back to" it.
    baseline: int = 0


@dataclass(frozen=True, **DATACLASS_SLOTS)
class TimelineSummary:
    """What a timeline shows in numbers.

    ``trend`` is ``"growing"`` when both the live count in the last fifth of the samples (its
    median) and the last sample are above the first fifth's median by more than
    ``max(2, 10% of the peak)``, ``"falling"`` when both are below it by as much, and
    ``"flat"`` otherwise: a run that ends where it started (everything released at the end)
    is not growing, however high it rose. ``slope`` is the least-squares fit of live handles
    per second. ``phases``: the same per phase, when the timeline has marks.
    """

    duration: float
    samples: int
    live_first: int
    live_last: int
    live_peak: int
    slope: float
    trend: str
    rss_first: Optional[int] = None
    rss_last: Optional[int] = None
    rss_peak: Optional[int] = None
    peaks: Mapping[str, int] = field(default_factory=dict)  #: peak live count per kind
    phases: Tuple[PhaseSummary, ...] = ()


def _median(values: Sequence[int]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return float(ordered[mid]) if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def _slope(ts: Sequence[float], ys: Sequence[int]) -> float:
    n = len(ts)
    if n < 2:
        return 0.0
    mean_t = sum(ts) / n
    mean_y = sum(ys) / n
    var = sum((t - mean_t) ** 2 for t in ts)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (y - mean_y) for t, y in zip(ts, ys)) / var


def _trend(totals: Sequence[int]) -> str:
    """``growing``, ``falling`` or ``flat`` (see :class:`TimelineSummary`)."""
    if not totals:
        return "flat"
    fifth = max(1, len(totals) // 5)
    head, tail = _median(totals[:fifth]), _median(totals[-fifth:])
    margin = max(2.0, 0.1 * max(totals))
    last = totals[-1]
    if tail - head > margin and last - head > margin:
        return "growing"
    if head - tail > margin and head - last > margin:
        return "falling"
    return "flat"


def summarize(timeline: Timeline) -> TimelineSummary:
    """The first, last and peak live counts and RSS, the slope and the trend (per phase too,
    when the timeline has marks)."""
    totals = timeline.series()
    if not totals:
        return TimelineSummary(0.0, 0, 0, 0, 0, 0.0, "flat")
    rss = [r for r in timeline.rss_series() if r is not None]
    return TimelineSummary(
        duration=timeline.duration,
        samples=len(totals),
        live_first=totals[0],
        live_last=totals[-1],
        live_peak=max(totals),
        slope=_slope([s.t for s in timeline.samples], totals),
        trend=_trend(totals),
        rss_first=rss[0] if rss else None,
        rss_last=rss[-1] if rss else None,
        rss_peak=max(rss) if rss else None,
        peaks={k: max(timeline.series(k)) for k in timeline.kinds},
        phases=_phases(timeline),
    )


def _phases(timeline: Timeline) -> Tuple[PhaseSummary, ...]:
    """A summary per phase: from each mark to the next, and before the first mark if the
    timeline has samples of its own there."""
    samples = timeline.samples
    if not timeline.marks or not samples:
        return ()
    times = [s.t for s in samples]
    t0 = times[0]
    bounds = [(mark.t, mark.label) for mark in timeline.marks]
    if bisect_left(times, bounds[0][0]) >= 2:  # samples of its own before the first mark
        bounds.insert(0, (t0, f"before {bounds[0][1]}"))
    baseline = samples[0].total
    phases = []
    for index, (start, label) in enumerate(bounds):
        end = bounds[index + 1][0] if index + 1 < len(bounds) else times[-1]
        # The phase begins with the state its mark found: the last sample at or before it.
        first = max(0, bisect_right(times, start) - 1)
        inside = samples[first : bisect_right(times, end)]
        if inside:
            phases.append(_phase(label, start - t0, end - t0, inside, baseline))
    return tuple(phases)


def _phase(
    label: str, start: float, end: float, samples: Sequence[Sample], baseline: int
) -> PhaseSummary:
    totals = [s.total for s in samples]
    first, last = samples[0].live, samples[-1].live
    changes = {k: last.get(k, 0) - first.get(k, 0) for k in {*first, *last}}
    ordered = sorted(((k, n) for k, n in changes.items() if n), key=lambda c: (-abs(c[1]), c[0]))
    return PhaseSummary(
        label=label,
        start=start,
        end=end,
        live_first=totals[0],
        live_last=totals[-1],
        live_peak=max(totals),
        trend=_trend(totals),
        changes=tuple(ordered),
        baseline=baseline,
    )


Emphasis = Callable[[str, str], str]  # (words, trend) -> the words as shown


def _plain(words: str, trend: str) -> str:
    return words


def phase_words(phase: PhaseSummary) -> Tuple[str, str]:
    """What a phase did (``growing``, ``flat``, ``back to 0``) and by how much, per kind
    (`` (+100 recognizers, +100 property_bags)``, or ``""``)."""
    if phase.trend == "falling" and phase.live_last == phase.baseline:
        return f"back to {phase.live_last}", ""  # every kind back: no detail needed
    words = phase.trend
    detail = ""
    if phase.trend != "flat" and phase.changes:
        parts = [f"{n:+d} {kind}{'s' if abs(n) != 1 else ''}" for kind, n in phase.changes]
        if len(parts) > KINDS_NAMED:
            parts[KINDS_NAMED:] = [f"{len(parts) - KINDS_NAMED} more kinds"]
        detail = f" ({', '.join(parts)})"
    return words, detail


def phase_text(phase: PhaseSummary, emphasis: Emphasis = _plain) -> str:
    """A phase in words: ``leaky service: growing (+100 recognizers, +100 property_bags)``,
    ``fixed service: flat``, ``cleanup: back to 0``."""
    words, detail = phase_words(phase)
    return f"{phase.label}: {emphasis(words, phase.trend)}{detail}"


def describe(summary: TimelineSummary, emphasis: Emphasis = _plain) -> List[str]:
    """The summary as lines of text: the trend (per phase, when there are marks: so a run
    whose point is a leak in its middle says so first), then live counts and RSS.

    ``emphasis(words, trend)`` may colour the words that say the trend.
    """
    counts = (
        f"live native handles {summary.live_first} -> {summary.live_last} "
        f"(peak {summary.live_peak})"
    )
    if summary.phases:
        lines = ["; ".join(phase_text(phase, emphasis) for phase in summary.phases), counts]
    else:
        slope = f", {summary.slope:+.1f} per second" if summary.trend != "flat" else ""
        lines = [f"{counts}; trend: {emphasis(summary.trend, summary.trend)}{slope}"]
    if summary.rss_first is not None and summary.rss_last is not None:
        lines.append(
            f"RSS {format_bytes(summary.rss_first)} -> {format_bytes(summary.rss_last)} "
            f"(peak {format_bytes(summary.rss_peak or 0)})"
        )
    return lines
