"""Run a script under tracemalloc and print what the documentation's recipes print.

    python -X tracemalloc=16 benchmarks/tracemalloc_run.py script.py [args...]

At exit: the "display the top 10" recipe (lines allocating the most memory still allocated,
with their source line) and the "get the traceback of a memory block" recipe for the three
biggest tracebacks, both from https://docs.python.org/3/library/tracemalloc.html, with the
documentation's filters (no importlib, no <unknown>).
"""

from __future__ import annotations

import linecache
import runpy
import sys
import tracemalloc


def display_top(snapshot: tracemalloc.Snapshot, limit: int = 10) -> None:
    snapshot = snapshot.filter_traces(
        (
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<unknown>"),
        )
    )
    top_stats = snapshot.statistics("lineno")
    print(f"Top {limit} lines")
    for index, stat in enumerate(top_stats[:limit], 1):
        frame = stat.traceback[0]
        print(f"#{index}: {frame.filename}:{frame.lineno}: {stat.size / 1024:.1f} KiB")
        line = linecache.getline(frame.filename, frame.lineno).strip()
        if line:
            print(f"    {line}")
    other = top_stats[limit:]
    if other:
        print(f"{len(other)} other: {sum(stat.size for stat in other) / 1024:.1f} KiB")
    print(f"Total allocated size: {sum(stat.size for stat in top_stats) / 1024:.1f} KiB")


def display_tracebacks(snapshot: tracemalloc.Snapshot, limit: int = 3) -> None:
    for stat in snapshot.statistics("traceback")[:limit]:
        print(f"{stat.count} memory blocks: {stat.size / 1024:.1f} KiB")
        for line in stat.traceback.format():
            print(line)


def main() -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start(16)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        snapshot = tracemalloc.take_snapshot()
        display_top(snapshot)
        display_tracebacks(snapshot)


if __name__ == "__main__":
    main()
