"""Shared helpers for the benchmark scripts: alternating rounds, ratios, JSON output.

Every figure is a ratio against an uninstrumented run measured in the same process: each
round runs every arm once, in an order rotated from round to round (so drift and warm-up hit
all arms alike), and the figure is the median of the per-round ratios arm / baseline.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rotated(items: Sequence[Any], round_index: int) -> List[Any]:
    """``items`` rotated by ``round_index`` (round 0 keeps the order)."""
    shift = round_index % len(items)
    return list(items[shift:]) + list(items[:shift])


def time_batch(work: Callable[[], Any], count: int) -> float:
    """Seconds per call of ``work`` over ``count`` calls (results dropped at once)."""
    start = time.perf_counter()
    for _ in range(count):
        work()
    return (time.perf_counter() - start) / count


def alternating(
    arms: Dict[str, Callable[[], None]],
    measure: Callable[[], float],
    rounds: int,
    baseline: str,
) -> Dict[str, Dict[str, float]]:
    """Run ``measure`` once per arm per round (``arms[name]()`` sets the arm up first).

    Returns, per arm: ``ratio`` (median of per-round arm/baseline), ``ratio_low`` /
    ``ratio_high`` (the quartiles of those ratios) and ``seconds`` (median per-op time).
    """
    names = list(arms)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for index in range(rounds):
        for name in rotated(names, index):
            arms[name]()
            gc.collect()
            times[name].append(measure())
    result: Dict[str, Dict[str, float]] = {}
    for name in names:
        ratios = [t / b for t, b in zip(times[name], times[baseline])]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        result[name] = {
            "ratio": statistics.median(ratios),
            "ratio_low": quartiles[0],
            "ratio_high": quartiles[-1],
            "seconds": statistics.median(times[name]),
        }
    return result


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux/macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process(os.getpid()).memory_info().rss)
    except ImportError:  # pragma: no cover - psutil is a test dependency
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def write_json(path: Optional[str], data: Any) -> None:
    """Write ``data`` as JSON to ``path`` (for run.py); nothing if ``path`` is None."""
    if path:
        Path(path).write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def machine() -> Dict[str, Any]:
    import platform

    try:
        from importlib.metadata import version

        sdk = version("azure-cognitiveservices-speech")
    except Exception:
        sdk = "unknown"
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "sdk": sdk,
    }
