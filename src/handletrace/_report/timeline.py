"""A timeline of live native handles (per kind) and process RSS while a program runs.

Compute and render are separate: a :class:`Sampler` thread records :class:`Sample` values
into an immutable :class:`Timeline`; ``summarize()`` computes the trend; ``format_chart()``
(terminal), ``format_svg()`` and ``format_html()`` draw it; ``write_timeline()`` picks the
format from a file name. The pictures are written by hand: no plotting dependency.

The sampler reads ``Registry.stats()`` (a few dictionary copies under the registry lock) and
the resident set size from ``/proc/self/statm`` (``psutil`` where there is no ``/proc``;
nothing where neither exists). It never raises into the program: failures are counted.
"""

# ruff: noqa: E501  (HTML/SVG templates are easier to check unwrapped)

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from html import escape
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .._core.compat import DATACLASS_SLOTS
from .._core.config import format_for_path as _format_for_path
from .._core.registry import Registry
from .._core.state import TRACKER
from ..errors import TimelineError
from .terminal import Style

__all__ = [
    "TIMELINE_SCHEMA",
    "TIMELINE_VERSION",
    "Sample",
    "Sampler",
    "Timeline",
    "TimelineError",
    "TimelineSummary",
    "format_chart",
    "format_html",
    "format_svg",
    "render_timeline",
    "summarize",
    "write_timeline",
]

TIMELINE_SCHEMA = "handletrace.timeline"
TIMELINE_VERSION = 1
TIMELINE_FORMATS = ("text", "json", "svg", "html")
DEFAULT_INTERVAL = 0.1  # seconds between samples
MAX_SAMPLES = 20_000  # past this, every other sample is dropped and the interval doubles


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Sample:
    """Live handles per kind and the resident set size at one moment."""

    t: float  #: seconds since the sampler started
    live: Mapping[str, int]  #: live handles per kind (kinds with none may be absent)
    rss: Optional[int] = None  #: resident set size in bytes, if it could be read

    @property
    def total(self) -> int:
        return sum(self.live.values())


@dataclass(frozen=True)
class Timeline:
    """Samples in time order, with what is needed to draw and compare them."""

    samples: Tuple[Sample, ...]
    interval: float = DEFAULT_INTERVAL
    started_at: float = 0.0  #: wall-clock time of the first sample (``time.time()``)
    label: str = ""  #: what was sampled, e.g. the program's name
    rss_source: str = ""  #: where RSS came from: ``/proc/self/statm``, ``psutil`` or ``""``
    errors: int = 0  #: samples that failed (caught; the program was not affected)

    @property
    def duration(self) -> float:
        return self.samples[-1].t - self.samples[0].t if self.samples else 0.0

    @property
    def kinds(self) -> Tuple[str, ...]:
        """Kinds that were ever live, the highest peak first (then by name)."""
        peaks: Dict[str, int] = {}
        for sample in self.samples:
            for kind, count in sample.live.items():
                if count > peaks.get(kind, 0):
                    peaks[kind] = count
        return tuple(sorted(peaks, key=lambda k: (-peaks[k], k)))

    def series(self, kind: Optional[str] = None) -> List[int]:
        """Live handles of ``kind`` at each sample (all kinds together when ``None``)."""
        if kind is None:
            return [s.total for s in self.samples]
        return [s.live.get(kind, 0) for s in self.samples]

    def rss_series(self) -> List[Optional[int]]:
        return [s.rss for s in self.samples]

    @property
    def has_rss(self) -> bool:
        return any(s.rss is not None for s in self.samples)

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return {
            "schema": TIMELINE_SCHEMA,
            "version": TIMELINE_VERSION,
            "label": self.label,
            "started_at": self.started_at,
            "interval": self.interval,
            "rss_source": self.rss_source,
            "errors": self.errors,
            "kinds": list(self.kinds),
            "samples": [
                {"t": round(s.t, 4), "rss": s.rss, "live": dict(s.live)} for s in self.samples
            ],
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "timeline") -> Timeline:
        """Rebuild a timeline from its JSON form; raises :class:`TimelineError` if malformed."""
        try:
            return _timeline_from_dict(data, source)
        except TimelineError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TimelineError(f"{source}: not a valid handletrace timeline ({exc!r})") from None


def _timeline_from_dict(data: Any, source: str) -> Timeline:
    if not isinstance(data, dict):
        raise TimelineError(f"{source}: the top level should be an object")
    if data.get("schema") != TIMELINE_SCHEMA:
        raise TimelineError(f"{source}: not a handletrace timeline (schema {data.get('schema')!r})")
    if data.get("version") != TIMELINE_VERSION:
        raise TimelineError(
            f"{source}: timeline version {data.get('version')!r} is not supported "
            f"(this handletrace reads version {TIMELINE_VERSION})"
        )
    samples = []
    last_t = -math.inf
    for index, raw in enumerate(data["samples"]):
        t = float(raw["t"])
        if not math.isfinite(t) or t < last_t:
            raise TimelineError(f"{source}: sample {index} has time {raw['t']!r} out of order")
        last_t = t
        rss = raw.get("rss")
        if rss is not None and (not isinstance(rss, int) or isinstance(rss, bool) or rss < 0):
            raise TimelineError(f"{source}: sample {index} has rss {rss!r}")
        live = raw["live"]
        if not isinstance(live, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in live.items()
        ):
            raise TimelineError(f"{source}: sample {index} has live counts {live!r}")
        samples.append(Sample(t, dict(live), rss))
    interval = float(data.get("interval", DEFAULT_INTERVAL))
    if not interval > 0:
        raise TimelineError(f"{source}: interval {interval!r} should be positive")
    return Timeline(
        samples=tuple(samples),
        interval=interval,
        started_at=float(data.get("started_at", 0.0)),
        label=str(data.get("label", "")),
        rss_source=str(data.get("rss_source", "")),
        errors=int(data.get("errors", 0)),
    )


# -- summary ------------------------------------------------------------------------------


@dataclass(frozen=True, **DATACLASS_SLOTS)
class TimelineSummary:
    """What a timeline shows in numbers.

    ``trend`` is ``"growing"`` when both the live count in the last fifth of the samples (its
    median) and the last sample are above the first fifth's median by more than
    ``max(2, 10% of the peak)``, ``"falling"`` when both are below it by as much, and
    ``"flat"`` otherwise: a run that ends where it started (everything released at the end)
    is not growing, however high it rose. ``slope`` is the least-squares fit of live handles
    per second.
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


def summarize(timeline: Timeline) -> TimelineSummary:
    """The first, last and peak live counts and RSS, the slope and the trend."""
    totals = timeline.series()
    if not totals:
        return TimelineSummary(0.0, 0, 0, 0, 0, 0.0, "flat")
    fifth = max(1, len(totals) // 5)
    head, tail = _median(totals[:fifth]), _median(totals[-fifth:])
    peak = max(totals)
    margin = max(2.0, 0.1 * peak)
    last = totals[-1]
    if tail - head > margin and last - head > margin:
        trend = "growing"
    elif head - tail > margin and head - last > margin:
        trend = "falling"
    else:
        trend = "flat"
    rss = [r for r in timeline.rss_series() if r is not None]
    return TimelineSummary(
        duration=timeline.duration,
        samples=len(totals),
        live_first=totals[0],
        live_last=totals[-1],
        live_peak=peak,
        slope=_slope([s.t for s in timeline.samples], totals),
        trend=trend,
        rss_first=rss[0] if rss else None,
        rss_last=rss[-1] if rss else None,
        rss_peak=max(rss) if rss else None,
        peaks={k: max(timeline.series(k)) for k in timeline.kinds},
    )


# -- sampling -----------------------------------------------------------------------------


def rss_reader() -> Tuple[Callable[[], Optional[int]], str, Callable[[], None]]:
    """A function returning the current RSS in bytes, its source, and a function to close it."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        fd = -1
    if fd >= 0:
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

        def read_statm() -> Optional[int]:
            return int(os.pread(fd, 128, 0).split()[1]) * page

        def close_statm() -> None:
            try:
                os.close(fd)
            except OSError:
                pass

        try:
            read_statm()
            return read_statm, "/proc/self/statm", close_statm
        except (OSError, ValueError, IndexError):
            close_statm()
    try:
        import psutil  # optional

        process = psutil.Process()
        process.memory_info()
        return (lambda: int(process.memory_info().rss)), "psutil", (lambda: None)
    except Exception:
        return (lambda: None), "", (lambda: None)


class Sampler:
    """Samples live handles per kind and RSS every ``interval`` seconds on a daemon thread.

    ``start()`` takes the first sample at once; ``stop()`` takes a last one, joins the thread
    and returns the :class:`Timeline`. Also a context manager (``timeline`` after exit).
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        *,
        registry: Optional[Registry] = None,
        rss: bool = True,
        label: str = "",
        max_samples: int = MAX_SAMPLES,
    ) -> None:
        if not (isinstance(interval, (int, float)) and 0.001 <= interval <= 3600):
            raise ValueError(f"interval must be from 0.001 to 3600 seconds; got {interval!r}")
        if max_samples < 2:
            raise ValueError(f"max_samples must be at least 2; got {max_samples!r}")
        if registry is None:
            registry = TRACKER.registry
        self.registry = registry
        self.interval = float(interval)
        self.label = label
        self.max_samples = max_samples
        self._want_rss = rss
        self._samples: List[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._t0 = 0.0
        self._started_at = 0.0
        self._errors = 0
        self._read_rss: Callable[[], Optional[int]] = lambda: None
        self._close_rss: Callable[[], None] = lambda: None
        self._rss_source = ""
        self.timeline: Optional[Timeline] = None

    def start(self) -> Sampler:
        if self._thread is not None:
            raise RuntimeError("this sampler was already started")
        if self._want_rss:
            self._read_rss, self._rss_source, self._close_rss = rss_reader()
        self._t0 = time.monotonic()
        self._started_at = time.time()
        self.sample_now()
        self._thread = threading.Thread(target=self._run, name="handletrace-timeline", daemon=True)
        self._thread.start()
        return self

    def sample_now(self) -> Optional[Sample]:
        """Take one sample now (also called by the thread); ``None`` if it failed."""
        try:
            stats = self.registry.stats()
            live = {kind: s.live for kind, s in stats.kinds.items() if s.live}
            sample = Sample(time.monotonic() - self._t0, live, self._read_rss())
        except Exception:
            self._errors += 1
            return None
        with self._lock:
            samples = self._samples
            if len(samples) >= self.max_samples:
                # Keep the run's whole span at half the resolution: memory stays bounded.
                del samples[1::2]
                self.interval *= 2
            samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_now()
            if self._errors > 100:  # something is badly wrong: stop sampling, keep running
                break

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The sampling thread (``None`` before :meth:`start`)."""
        return self._thread

    def snapshot(self) -> Timeline:
        """The timeline so far (the sampler keeps running)."""
        with self._lock:
            samples = tuple(self._samples)
        return Timeline(
            samples=samples,
            interval=self.interval,
            started_at=self._started_at,
            label=self.label,
            rss_source=self._rss_source,
            errors=self._errors,
        )

    def stop(self) -> Timeline:
        """Take a last sample, stop the thread and return the timeline (idempotent)."""
        if self.timeline is not None:
            return self.timeline
        thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join()
            self.sample_now()
        self._close_rss()
        self.timeline = self.snapshot()
        return self.timeline

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# -- shared drawing helpers ----------------------------------------------------------------


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


def _buckets(
    times: Sequence[float], values: Sequence[Optional[float]], width: int, span: float
) -> List[Optional[float]]:
    """``width`` columns over ``span`` seconds: the highest value in each column, gaps carried."""
    out: List[Optional[float]] = [None] * width
    for t, v in zip(times, values):
        if v is None:
            continue
        col = min(width - 1, int(t / span * width)) if span > 0 else 0
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


def _describe(summary: TimelineSummary) -> List[str]:
    lines = [
        f"live native handles {summary.live_first} -> {summary.live_last} "
        f"(peak {summary.live_peak}); trend: {summary.trend}"
        + (f", {summary.slope:+.1f} per second" if summary.trend != "flat" else "")
    ]
    if summary.rss_first is not None and summary.rss_last is not None:
        lines.append(
            f"RSS {format_bytes(summary.rss_first)} -> {format_bytes(summary.rss_last)} "
            f"(peak {format_bytes(summary.rss_peak or 0)})"
        )
    return lines


# -- terminal chart ------------------------------------------------------------------------

_EIGHTHS = " ▁▂▃▄▅▆▇█"


def _time_ticks(span: float, count: int) -> List[float]:
    step = nice_step(span, count)
    ticks = []
    t = 0.0
    while t <= span * (1 + 1e-9):
        ticks.append(t)
        t = round(t + step, 10)
    return ticks


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
) -> List[str]:
    """Lines of one column chart; the x axis runs from 0 to ``span`` (seconds by default)."""
    bottom, top = bounds
    scale = top - bottom
    columns = _buckets(times, values, width, span)
    labels = [label(bottom + scale * row / height) for row in range(height + 1)]
    pad = max(len(s) for s in labels)
    lines = [f"{' ' * (pad + 2)}{title}", ""]
    units = [None if v is None else (v - bottom) / scale * height * 8 for v in columns]
    for row in range(height, 0, -1):  # row ``height`` is the top line of cells
        cells = []
        for u in units:
            if u is None:
                cells.append(" ")
                continue
            fill = int(round(u - (row - 1) * 8))
            if row == 1 and u > 0 and fill < 1:
                fill = 1  # a value above the axis is always visible
            cells.append(_EIGHTHS[max(0, min(8, fill))])
        tick = row % 2 == 0 or row == height
        axis = f"{labels[row]:>{pad}} ┤" if tick else f"{'':>{pad}} │"
        lines.append(axis + style("".join(cells), colour))
    # x axis: ticks at round times since start.
    axis_chars = ["─"] * width
    label_chars = [" "] * (width + 8)
    for t in _time_ticks(span, max(2, width // 10)):
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
    times = [s.t - timeline.samples[0].t for s in timeline.samples]
    span = max(times[-1], timeline.interval)
    name = f" ({timeline.label})" if timeline.label else ""
    colour = "red" if summary.trend == "growing" else "green"
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
            )
        )
    lines.append("")
    described = _describe(summary)
    described[0] = described[0].replace(
        f"trend: {summary.trend}", "trend: " + style(summary.trend, "bold", colour)
    )
    lines.extend(described)
    if timeline.errors:
        lines.append(f"note: {timeline.errors} samples failed (caught)")
    return "\n".join(lines) + "\n"


# -- SVG -----------------------------------------------------------------------------------

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
    for t in _time_ticks(span, 6):
        xx = x(t)
        parts.append(
            f'<line x1="{xx:.1f}" y1="{top + height}" x2="{xx:.1f}" y2="{top + height + 5}" class="axis"/>'
        )
        parts.append(
            f'<text x="{xx:.1f}" y="{top + height + 18}" class="tick" text-anchor="middle">'
            f"{escape(format_seconds(t))}</text>"
        )
    return x, y


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
        "</style>",
        f'<rect width="{width}" height="{height:.0f}" fill="white"/>',
    ]
    if header:
        parts.append(f'<text x="20" y="26" class="title">{escape(heading)}</text>')
        for i, line in enumerate(_describe(summary)):
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
        parts.append(_polyline(_step_points(times, values2, x2, y2), "#0072B2", 2.0))
        parts.append(
            f'<text x="{left + plot_w + 20}" y="{top2 + 12}" class="legend">'
            f"{escape(timeline.rss_source or 'rss')}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def format_html(timeline: Timeline, *, title: Optional[str] = None) -> str:
    """A self-contained HTML page: the SVG chart and a table of peaks per kind."""
    summary = summarize(timeline)
    heading = title or "handletrace timeline" + (f": {timeline.label}" if timeline.label else "")
    rows = "\n".join(
        f"<tr><td>{escape(kind)}</td><td>{timeline.series(kind)[0]}</td>"
        f"<td>{timeline.series(kind)[-1]}</td><td>{summary.peaks.get(kind, 0)}</td></tr>"
        for kind in timeline.kinds
    )
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
(every {timeline.interval * 1000:.0f} ms). Trend:
<span class="trend-{summary.trend}">{summary.trend}</span>.</p>
<p>{"<br>".join(escape(line) for line in _describe(summary))}</p>
{format_svg(timeline, title=heading, header=False)}
<table>
<tr><th>kind</th><th>first</th><th>last</th><th>peak</th></tr>
{rows}
</table>
</body>
</html>
"""


# -- writing -------------------------------------------------------------------------------


def format_for_path(path: str) -> str:
    """The timeline format a file name asks for: .svg, .html/.htm, .json, else text."""
    return _format_for_path(path, TIMELINE_FORMATS)


def render_timeline(
    timeline: Timeline, file: IO[str], format: str = "text", *, style: Optional[Style] = None
) -> None:
    """Write ``timeline`` to ``file`` as ``text`` (chart), ``json``, ``svg`` or ``html``."""
    if format == "text":
        file.write(format_chart(timeline, style=style))
    elif format == "json":
        json.dump(timeline.to_dict(), file, indent=1)
        file.write("\n")
    elif format == "svg":
        file.write(format_svg(timeline))
    elif format == "html":
        file.write(format_html(timeline))
    else:
        raise TimelineError(
            f"timeline format must be one of {', '.join(TIMELINE_FORMATS)}; got {format!r}"
        )


def write_timeline(timeline: Timeline, path: str) -> str:
    """Write ``timeline`` to ``path`` in the format its extension names; returns the format."""
    fmt = format_for_path(path)
    with open(path, "w", encoding="utf-8") as out:
        render_timeline(timeline, out, fmt)
    return fmt
