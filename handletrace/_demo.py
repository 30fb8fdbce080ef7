"""``handletrace demo``: the seed's leaking transcription service next to the fixed one.

Starts the local speech service, sends N requests to the leaky service and N to the fixed
one (examples/transcription_service.py), and measures after every request: live native
recognizers (from the registry), native threads, open sockets and RSS. Prints both series
as charts like the seed's "Memory Usage Over 100 Requests", the leak report with the drawn
cycle, and a side-by-side table. Needs no network and no Azure account.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Callable, List, Optional, Sequence

__all__ = ["Measurement", "RunResult", "main", "measure", "run_demo"]

CHART_HEIGHT = 8
CHART_WIDTH = 50


@dataclass(frozen=True)
class Measurement:
    """The process's state after one request."""

    recognizers: int
    threads: int
    sockets: int
    rss: int


@dataclass(frozen=True)
class RunResult:
    """One service's run: the baseline, then one measurement per request."""

    label: str
    baseline: Measurement
    after: tuple  # Tuple[Measurement, ...]
    seconds: float
    segments: int

    def series(self, field: str) -> List[int]:
        return [getattr(m, field) for m in self.after]


def _count_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _count_sockets() -> int:
    count = 0
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                    count += 1
            except OSError:
                continue
    except OSError:
        return 0
    return count


def _rss() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def measure() -> Measurement:
    """Live native recognizers, native threads, open sockets and RSS right now."""
    from ._api import stats

    kinds = stats().kinds
    live = kinds["recognizer"].live if "recognizer" in kinds else 0
    return Measurement(live, _count_threads(), _count_sockets(), _rss())


def load_example_service() -> ModuleType:
    """The example service: shipped in the wheel, or examples/ beside a source checkout."""
    try:
        return importlib.import_module("handletrace._example_service")
    except ImportError:
        pass
    path = Path(__file__).resolve().parent.parent / "examples" / "transcription_service.py"
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
    """Send ``requests`` requests; measure before and after each."""
    baseline = measure()
    after = []
    segments = 0
    start = time.perf_counter()
    for index in range(requests):
        segments += len(process_audio(audio))
        after.append(measure())
        if progress is not None:
            progress.write(f"\r  {label}: {index + 1}/{requests} requests")
            progress.flush()
    if progress is not None:
        progress.write("\n")
    return RunResult(label, baseline, tuple(after), time.perf_counter() - start, segments)


def format_chart(title: str, values: Sequence[int], *, unit: str = "") -> str:
    """A column chart of one value per request, like the seed's drawing."""
    if not values:
        return f"{title}: no requests\n"
    top = max(max(values), 1)
    columns = min(len(values), CHART_WIDTH)
    # One column per bucket of requests (the last value of the bucket).
    buckets = [
        values[min(len(values) - 1, (i + 1) * len(values) // columns - 1)] for i in range(columns)
    ]
    label_width = max(len(f"{top}{unit}"), len(f"0{unit}"))
    lines = [f"  {title}"]
    for row in range(CHART_HEIGHT, 0, -1):
        level = top * row / CHART_HEIGHT
        middle = row == CHART_HEIGHT // 2 and top >= CHART_HEIGHT
        label = f"{round(level)}{unit}" if row == CHART_HEIGHT or middle else ""
        cells = "".join("█" if v >= level - top / (2 * CHART_HEIGHT) else " " for v in buckets)
        lines.append(f"  {label:>{label_width}} ┤{cells}")
    lines.append(f"  {'0' + unit:>{label_width}} └{'─' * columns}")
    lines.append(
        f"  {'':>{label_width}}  1{'requests':^{max(columns - 1 - len(str(len(values))), 8)}}"
        f"{len(values)}"
    )
    return "\n".join(lines) + "\n"


def format_comparison(leaky: RunResult, fixed: RunResult) -> str:
    """A table: baseline and end of each run, per measurement."""
    mib = 1024 * 1024
    rows = [
        ("live native recognizers", "recognizers", 1, ""),
        ("native threads", "threads", 1, ""),
        ("open sockets", "sockets", 1, ""),
        ("RSS", "rss", mib, " MiB"),
    ]
    lines = [
        f"  {'after N requests':<26}{'leaky service':>26}{'fixed service':>26}",
    ]

    def cell(run: RunResult, field: str, scale: int, unit: str) -> str:
        first = getattr(run.baseline, field) / scale
        last = getattr(run.after[-1], field) / scale if run.after else first
        fmt = "{:.0f}" if scale == 1 else "{:.1f}"
        change = f"{last - first:+.{0 if scale == 1 else 1}f}"
        return f"{fmt.format(first)} -> {fmt.format(last)}{unit} ({change})"

    for title, field, scale, unit in rows:
        leaky_cell, fixed_cell = cell(leaky, field, scale, unit), cell(fixed, field, scale, unit)
        lines.append(f"  {title:<26}{leaky_cell:>26}{fixed_cell:>26}")
    per = (
        (leaky.after[-1].rss - leaky.baseline.rss) / max(len(leaky.after), 1) / 1024
        if leaky.after
        else 0
    )
    lines.append(
        f"  {'time per request':<26}{leaky.seconds / max(len(leaky.after), 1) * 1000:>23.0f} ms"
        f"{fixed.seconds / max(len(fixed.after), 1) * 1000:>23.0f} ms"
    )
    lines.append(f"  leaky service: {per:.0f} KiB RSS per request while no cyclic GC runs")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handletrace demo",
        description=(
            "Run the seed's leaking transcription service and the fixed one against a local "
            "speech service, and show what handletrace sees. No network needed."
        ),
    )
    parser.add_argument(
        "--requests", type=int, default=100, help="requests per service (default 100)"
    )
    parser.add_argument(
        "--audio-seconds", type=float, default=1.0, help="seconds of generated audio per request"
    )
    parser.add_argument("--no-report", action="store_true", help="leave out the leak report")
    return parser


def run_demo(argv: Optional[Sequence[str]] = None, out: Optional[IO[str]] = None) -> int:
    """Run the demo; returns the exit status."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    if args.requests < 1 or args.audio_seconds <= 0:
        sys.stderr.write("handletrace demo: --requests must be >= 1 and --audio-seconds > 0\n")
        return 2
    out = out if out is not None else sys.stdout
    progress = sys.stderr if sys.stderr.isatty() else None

    from . import _api, _patching
    from .testing import Phrase, Script, SpeechService, silence_wav

    example = load_example_service()
    started_here = _patching.install()
    gc_was_enabled = gc.isenabled()
    script = Script(
        phrases=(
            Phrase("Good morning, this is the support line.", speaker_id="Guest-1"),
            Phrase("Hi, my transcription service keeps growing.", speaker_id="Guest-2"),
        )
    )
    audio = silence_wav(args.audio_seconds)
    report_text = io.StringIO()
    with SpeechService(script) as service:
        try:
            # Native memory never triggers a collection; with only Python allocations to go
            # by, the collector would run now and then. Off, as in the seed's service.
            gc.disable()
            leaky_service = example.LeakyTranscriptionService(service.host)
            marker = _api.TRACKER.registry.last_seq()
            leaky = run_service(
                "leaky", leaky_service.process_audio, audio, args.requests, progress
            )
            if not args.no_report:
                leaked = _api.snapshot().filter(since=marker, kinds=["recognizer", "property_bag"])
                _api.report(report_text, snap=leaked)
            gc.collect()  # the seed's workaround, before the fixed run's baseline
            time.sleep(0.2)  # native threads end shortly after their recognizer is released
            fixed_service = example.FixedTranscriptionService(service.host)
            fixed = run_service(
                "fixed", fixed_service.process_audio, audio, args.requests, progress
            )
        finally:
            if gc_was_enabled:
                gc.enable()
            gc.collect()  # release every transcriber before the service goes away
    if started_here:
        _patching.uninstall()

    n = args.requests
    out.write(f"handletrace demo: {n} requests to the leaky service, then {n} to the fixed one\n")
    out.write("(local speech service on 127.0.0.1; automatic cyclic GC off, as in production)\n\n")
    out.write("WITHOUT PROPER CLEANUP (leaky service)\n")
    out.write(
        format_chart(f"live native recognizers over {n} requests", leaky.series("recognizers"))
    )
    out.write(
        format_chart(
            f"RSS over {n} requests", [m.rss // (1024 * 1024) for m in leaky.after], unit=" MiB"
        )
    )
    out.write("\nWITH handletrace.disposing() (fixed service)\n")
    out.write(
        format_chart(f"live native recognizers over {n} requests", fixed.series("recognizers"))
    )
    out.write(
        format_chart(
            f"RSS over {n} requests", [m.rss // (1024 * 1024) for m in fixed.after], unit=" MiB"
        )
    )
    out.write("\n")
    out.write(format_comparison(leaky, fixed))
    stable = fixed.after[-1].recognizers == fixed.baseline.recognizers
    out.write(
        "  fixed service: "
        + (
            "no recognizer left alive: flat\n"
            if stable
            else "recognizers still alive (unexpected)\n"
        )
    )
    if report_text.getvalue():
        out.write("\nWhy the leaky service leaks (handletrace.report()):\n\n")
        out.write(report_text.getvalue())
    return 0


def main() -> int:
    return run_demo()
