"""``handletrace demo``: a transcription service that leaks a recognizer per request (its
callback closure captures the recognizer), next to the same service fixed.

Starts the local speech service, sends N requests to the fixed service and N to the leaky
one (examples/transcription_service.py), and measures before the first request and after
every request: live native recognizers (from the registry), native threads
(``/proc/self/task``), open sockets (socket descriptors in ``/proc/self/fd``), the native heap
in use (glibc ``mallinfo2()``, where there is one), RSS, and the Python objects waiting for a
collection. Prints each measurement as two charts side by side on one axis (leaky left, fixed
right), then a table, the per-request cost of the leak, and the leak report with the drawn
cycle. Needs no network and no Azure account.

Compute and render are separate: :func:`run_service` returns a :class:`RunResult`;
``format_*`` turn results into text; :func:`run_demo` is the thin front end.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import io
import os
import re
import sys
import time
from ctypes import CDLL, Structure, c_size_t
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Callable, List, Optional, Sequence, Tuple

from .._core.compat import DATACLASS_SLOTS
from .._report.terminal import Style

__all__ = [
    "METRICS",
    "Measurement",
    "Metric",
    "RunResult",
    "format_comparison",
    "format_metric_charts",
    "format_verdict",
    "load_example_service",
    "main",
    "measure",
    "run_demo",
    "run_service",
]

CHART_WIDTH = 30  # columns per chart: two charts side by side fit 80 columns
GAP = "    "
MIB = 1024 * 1024


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Measurement:
    """The process's state at one moment."""

    recognizers: int  #: live native recognizers (handletrace's registry)
    threads: int  #: native threads of the process
    sockets: int  #: open socket descriptors of the process
    native_heap: int  #: bytes in use in malloc's heap, all arenas (-1: not measurable here)
    rss: int  #: resident set size in bytes (0 where it cannot be read)
    gc_pending: int  #: Python objects allocated since the last collection, net


@dataclass(frozen=True, **DATACLASS_SLOTS)
class RunResult:
    """One service's run: the baseline, then one measurement after each request."""

    label: str
    baseline: Measurement
    after: Tuple[Measurement, ...]
    seconds: float
    segments: int

    @property
    def requests(self) -> int:
        return len(self.after)

    @property
    def last(self) -> Measurement:
        return self.after[-1] if self.after else self.baseline

    def series(self, field: str) -> List[int]:
        """``field`` at the baseline (index 0) and after each request (index i)."""
        return [getattr(self.baseline, field)] + [getattr(m, field) for m in self.after]

    def growth(self, field: str) -> int:
        return int(getattr(self.last, field) - getattr(self.baseline, field))


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Metric:
    """One measured quantity and how it is drawn."""

    field: str
    title: str
    height: int
    scale: int = 1  #: divide by this to draw (bytes -> MiB)
    unit: str = ""
    from_zero: bool = True  #: counts start at 0; RSS axes start a little below the lowest value


METRICS = (
    Metric("recognizers", "live native recognizers", 8),
    Metric("threads", "native threads", 6),
    Metric("sockets", "open sockets", 6),
    Metric("native_heap", "native heap in use", 6, MIB, " MB", from_zero=False),
    Metric("rss", "resident memory (RSS)", 8, MIB, " MB", from_zero=False),
)


# -- measuring -----------------------------------------------------------------------------


def _count_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _count_sockets() -> int:
    count = 0
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    for fd in names:
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def _rss() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _MallInfo2(Structure):
    _fields_ = [
        (name, c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo2() -> Optional[Callable[[], _MallInfo2]]:
    try:
        function = CDLL(None).mallinfo2  # glibc 2.33 and later
    except (OSError, AttributeError, TypeError):
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return function  # type: ignore[no-any-return]


_MALLINFO2 = _mallinfo2()


def _native_heap() -> int:
    """Bytes the process's malloc has handed out and not freed (-1 without glibc)."""
    if _MALLINFO2 is None:
        return -1
    info = _MALLINFO2()
    return int(info.uordblks + info.hblkhd)


def measure() -> Measurement:
    """Live native recognizers, threads, sockets, native heap, RSS, pending objects now."""
    from .._api import stats

    kinds = stats().kinds
    live = kinds["recognizer"].live if "recognizer" in kinds else 0
    return Measurement(
        live, _count_threads(), _count_sockets(), _native_heap(), _rss(), gc.get_count()[0]
    )


def available(metric: Metric, run: RunResult) -> bool:
    """Whether ``metric`` could be measured (there is no native heap figure without glibc)."""
    return bool(getattr(run.baseline, metric.field) >= 0)


def load_example_service() -> ModuleType:
    """The example service: shipped in the wheel, or examples/ of a source checkout."""
    try:
        return importlib.import_module("handletrace._example_service")
    except ImportError:
        pass
    path = Path(__file__).resolve().parents[3] / "examples" / "transcription_service.py"
    spec = importlib.util.spec_from_file_location("handletrace_example_service", path)
    if spec is None or spec.loader is None or not path.exists():
        raise ImportError(f"the example service is missing ({path})")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_service(
    label: str,
    process_audio: Callable[[bytes], list],
    audio: bytes,
    requests: int,
    progress: Optional[IO[str]] = None,
) -> RunResult:
    """Send ``requests`` requests; measure before the first and after each (the last once
    the native threads and sockets have settled: they start and end a little after the
    request that makes or releases them returns)."""
    baseline = measure_at_rest()
    after = []
    segments = 0
    start = time.perf_counter()
    for index in range(requests):
        segments += len(process_audio(audio))
        after.append(measure())
        if progress is not None:
            progress.write(f"\r  {label}: {index + 1}/{requests} requests")
            progress.flush()
    seconds = time.perf_counter() - start
    after[-1] = measure_at_rest()
    if progress is not None:
        progress.write("\n")
    return RunResult(label, baseline, tuple(after), seconds, segments)


def measure_at_rest(timeout: float = 3.0) -> Measurement:
    """A measurement once native threads and sockets have stopped changing (the same in two
    measurements 0.1 s apart), or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = measure()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = measure()
        if (now.threads, now.sockets) == (last.threads, last.sockets):
            return now
        last = now
    return last


def _settle(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Native threads and websockets end shortly after their recognizer is released."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


# -- rendering -----------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _visible(text: str) -> int:
    return len(_ANSI.sub("", text))


def _side_by_side(left: Sequence[str], right: Sequence[str]) -> List[str]:
    width = max((_visible(line) for line in left), default=0)
    rows = max(len(left), len(right))
    out = []
    for i in range(rows):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        out.append((a + " " * (width - _visible(a)) + GAP + b).rstrip())
    return out


def format_metric_charts(
    metric: Metric,
    leaky: RunResult,
    fixed: RunResult,
    *,
    width: int = CHART_WIDTH,
    style: Optional[Style] = None,
) -> str:
    """The leaky and the fixed run of one metric as two charts side by side, on one axis."""
    from .._report.timeline import _chart_lines, axis_range, format_count

    style = style or Style(False)
    runs = (leaky, fixed)
    values = [[v / metric.scale for v in run.series(metric.field)] for run in runs]
    everything = [v for series in values for v in series]
    bounds = axis_range(
        min(everything),
        max(everything),
        zero=metric.from_zero,
        intervals=metric.height // 2,
        integral=metric.scale == 1,
    )
    charts = []
    for run, series in zip(runs, values):
        colour = "red" if run.growth(metric.field) > 0 and metric.scale == 1 else "green"
        if metric.scale != 1:
            colour = "cyan"
        charts.append(
            _chart_lines(
                f"{metric.title}: {run.label}",
                [float(i) for i in range(len(series))],
                series,
                float(max(run.requests, 1)),
                bounds,
                width=width,
                height=metric.height,
                label=lambda v: f"{format_count(v)}{metric.unit}",
                style=style,
                colour=colour,
                x_label=lambda t: f"{t:.0f}",
                x_caption="requests",
            )
        )
    return "\n".join(_side_by_side(charts[0], charts[1])) + "\n"


def _cell(run: RunResult, metric: Metric) -> str:
    first = getattr(run.baseline, metric.field) / metric.scale
    last = getattr(run.last, metric.field) / metric.scale
    if metric.scale == 1:
        return f"{first:.0f} -> {last:.0f} ({last - first:+.0f})"
    return f"{first:.1f} -> {last:.1f}{metric.unit} ({last - first:+.1f})"


def format_comparison(leaky: RunResult, fixed: RunResult) -> str:
    """A table: each measurement before the first request and after the last, per service."""
    lines = [f"  {'before -> after':<26}{'leaky service':>26}{'fixed service':>26}"]
    for metric in METRICS:
        if available(metric, leaky):
            left, right = _cell(leaky, metric), _cell(fixed, metric)
            lines.append(f"  {metric.title:<26}{left:>26}{right:>26}")
    pending = Metric("gc_pending", "Python objects awaiting GC", 0)
    lines.append(f"  {pending.title:<26}{_cell(leaky, pending):>26}{_cell(fixed, pending):>26}")
    lines.append(f"  {'segments transcribed':<26}{leaky.segments:>26}{fixed.segments:>26}")
    per_request = [f"{run.seconds / max(run.requests, 1) * 1000:.0f} ms" for run in (leaky, fixed)]
    lines.append(f"  {'time per request':<26}{per_request[0]:>26}{per_request[1]:>26}")
    return "\n".join(lines) + "\n"


def format_verdict(leaky: RunResult, fixed: RunResult) -> str:
    """What each run amounts to: the leak's cost per request, and whether the fix stays flat."""
    n = max(leaky.requests, 1)
    heap = available(METRICS[3], leaky)
    lines = [
        "  leaky service, per request: "
        f"{leaky.growth('recognizers') / n:+.2f} live recognizers, "
        f"{leaky.growth('threads') / n:+.2f} native threads, "
        f"{leaky.growth('sockets') / n:+.2f} sockets,",
        "    "
        + (f"{leaky.growth('native_heap') / n / 1024:+.0f} KiB native heap, " if heap else "")
        + f"{leaky.growth('rss') / n / 1024:+.0f} KiB RSS (while no collection runs)",
    ]
    most = max(m.recognizers for m in fixed.after) if fixed.after else 0
    counts_back = all(fixed.growth(f) == 0 for f in ("recognizers", "threads", "sockets"))
    if most == fixed.baseline.recognizers and counts_back:
        lines.append(
            "  fixed service: flat. No recognizer alive after any request; native threads "
            "and sockets"
        )
        lines.append(
            "    back to baseline"
            + (f"; native heap {fixed.growth('native_heap') / MIB:+.1f} MB" if heap else "")
            + f" over {fixed.requests} requests"
        )
    else:
        lines.append(
            f"  fixed service: NOT flat: recognizers {fixed.growth('recognizers'):+d} "
            f"(at most {most} alive), threads {fixed.growth('threads'):+d}, "
            f"sockets {fixed.growth('sockets'):+d}"
        )
    pending = fixed.growth("gc_pending")
    if pending > 0:
        lines.append(
            f"  Both RSS series also grow by Python garbage ({fixed.growth('rss') / n / 1024:.0f}"
            f" KiB, {pending / n:.0f} objects per request for the fixed"
        )
        lines.append(
            "    service): reference cycles the SDK's ctypes.cast() calls leave behind. Any "
            "collection"
        )
        lines.append("    frees them; the automatic one is off here.")
    return "\n".join(lines) + "\n"


def release_seconds(blocking: Any, cause: str) -> float:
    """Seconds spent in native releases of ``cause`` (``forced``: dispose(); ``gc``: the
    collector) among those recorded (the demo records every release)."""
    return sum(site.total for site in blocking.sites if site.last.cause == cause)


def format_teardown(
    leaky: RunResult, fixed: RunResult, fixed_teardown: float, cleanup_teardown: float
) -> str:
    """Why the fixed service takes longer per request: it pays the native teardown."""
    n = max(fixed.requests, 1)
    per_request = fixed.seconds / n * 1000
    teardown = fixed_teardown / n * 1000
    return (
        f"  time per request: the fixed service releases each transcriber inside the request\n"
        f"    (its native teardown, {teardown:.0f} ms of {per_request:.0f} ms: dispose() closes "
        "the websocket\n"
        f"    and joins its threads); the leaky one leaves that to the collector: "
        f"{cleanup_teardown * 1000:.0f} ms\n"
        f"    for its {leaky.requests} transcribers at the cleanup collection, and never while "
        "they leak.\n"
    )


# -- front end -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handletrace demo",
        description=(
            "Run a transcription service that leaks one recognizer per request (a callback "
            "closure captures it) and the same service fixed, against a local speech "
            "service, and show what handletrace sees. No network needed."
        ),
    )
    parser.add_argument(
        "--requests", type=int, default=100, help="requests per service (default 100)"
    )
    parser.add_argument(
        "--audio-seconds",
        type=float,
        default=1.0,
        help="seconds of generated audio per request (default 1)",
    )
    parser.add_argument("--no-report", action="store_true", help="leave out the leak report")
    parser.add_argument(
        "--timeline",
        metavar="PATH",
        help="also record live handles and RSS over time and write them to PATH "
        "(.svg, .html, .json, else a text chart)",
    )
    return parser


def run_demo(argv: Optional[Sequence[str]] = None, out: Optional[IO[str]] = None) -> int:
    """Run the demo; returns the exit status."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    if args.requests < 1 or args.audio_seconds <= 0:
        sys.stderr.write("handletrace demo: --requests must be >= 1 and --audio-seconds > 0\n")
        return 2
    out = out if out is not None else sys.stdout
    progress = sys.stderr if sys.stderr.isatty() else None
    started = time.perf_counter()

    from .. import _api
    from .._instrument import install as _patching
    from .._report.timeline import Sampler, write_timeline
    from ..testing import Phrase, Script, SpeechService, silence_wav

    example = load_example_service()
    # Every release recorded (slow_release=0): the fixed run pays each transcriber's native
    # teardown inside the request, the leaky one defers it; the table says how much.
    started_here = _patching.install(slow_release=0.0)
    gc_was_enabled = gc.isenabled()
    script = Script(
        phrases=(
            Phrase("Good morning, this is the support line.", speaker_id="Guest-1"),
            Phrase("Hi, my transcription service keeps growing.", speaker_id="Guest-2"),
        )
    )
    audio = silence_wav(args.audio_seconds)
    report_text = io.StringIO()
    sampler = Sampler(0.05, label="handletrace demo: fixed, then leaky") if args.timeline else None
    try:
        with SpeechService(script) as service:
            try:
                # Native memory never triggers a collection; with only Python allocations to
                # go by, the collector would run now and then. Off, as in a busy service.
                gc.disable()
                fixed_service = example.FixedTranscriptionService(service.host)
                leaky_service = example.LeakyTranscriptionService(service.host)
                fixed_service.process_audio(audio)  # warm-up: the SDK's shared threads start
                _settle(lambda: service.active_connections == 0)
                _api.TRACKER.blocking.clear()  # the warm-up's releases are not the run's
                if sampler is not None:
                    sampler.start()
                    sampler.mark("fixed service")
                # The fixed run first: each run starts from the same state, which the fixed
                # run leaves as it found it (a leaky run first would leave memory behind).
                fixed = run_service(
                    "fixed", fixed_service.process_audio, audio, args.requests, progress
                )
                _settle(lambda: service.active_connections == 0)
                fixed_teardown = release_seconds(_api.blocking(), "forced")
                marker = _api.TRACKER.registry.last_seq()
                if sampler is not None:
                    sampler.mark("leaky service")
                leaky = run_service(
                    "leaky", leaky_service.process_audio, audio, args.requests, progress
                )
                if not args.no_report:
                    # The record holds every release of the run (slow_release=0, for the
                    # figures above), none of them slow: not what the leak report is about.
                    _api.TRACKER.blocking.clear()
                    leaked = _api.snapshot().filter(
                        since=marker, kinds=["recognizer", "property_bag"]
                    )
                    _api.report(report_text, snapshot=leaked)
            finally:
                if sampler is not None:
                    sampler.mark("cleanup")
                _api.TRACKER.blocking.clear()
                gc.collect()  # release every leaked transcriber before the service goes away
                cleanup_teardown = release_seconds(_api.blocking(), "gc")
                if gc_was_enabled:
                    gc.enable()
                if sampler is not None and sampler.thread is not None:
                    time.sleep(0.1)  # the drop after the collection
                    sampler.stop()
    finally:
        if started_here:
            _patching.uninstall()

    style = Style.for_stream(out)
    n = args.requests
    out.write(
        f"handletrace demo: a transcription service, {n} requests leaky and {n} fixed\n"
        "(local speech service on 127.0.0.1; automatic garbage collection off, as in a busy\n"
        " service where native memory never triggers one; measured before the first request\n"
        " and after each)\n\n"
    )
    header = _side_by_side(
        [style("WITHOUT PROPER CLEANUP (leaky service)", "bold", "red")],
        [style("WITH handletrace.disposing() (fixed)", "bold", "green")],
    )
    out.write(header[0] + "\n")
    for metric in METRICS:
        if not available(metric, leaky):
            continue
        out.write("\n")
        out.write(format_metric_charts(metric, leaky, fixed, style=style))
    out.write("\n")
    out.write(format_comparison(leaky, fixed))
    out.write("\n")
    out.write(format_verdict(leaky, fixed))
    if started_here:
        out.write(format_teardown(leaky, fixed, fixed_teardown, cleanup_teardown))
    if report_text.getvalue():
        out.write("\nWhy the leaky service leaks (handletrace.report()):\n\n")
        out.write(report_text.getvalue())
    status = 0
    if sampler is not None and sampler.timeline is not None:
        try:
            fmt = write_timeline(sampler.timeline, args.timeline)
            out.write(f"\ntimeline ({fmt}) written to {args.timeline}\n")
        except OSError as exc:
            sys.stderr.write(f"handletrace demo: cannot write {args.timeline}: {exc}\n")
            status = 1
    out.write(f"\ndemo took {time.perf_counter() - started:.1f} s\n")
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``handletrace demo`` with ``argv`` (``sys.argv[1:]`` when ``None``)."""
    return run_demo(argv)
