"""Memory of the tracker itself: bytes per live record, and 100,000 live records.

Creates ``--records`` live handles (AudioConfig(filename=...) objects kept alive, two handles
each) with handletrace off, counting only, and with 16-frame stacks, created 30 frames deep.
The tracker's memory is what tracemalloc sees allocated in addition to the uninstrumented
run for the same objects: the records, their weak references and the registry's tables.

    python benchmarks/bench_memory.py [--records 100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import current_rss_bytes, machine, write_json  # noqa: E402
from azure.cognitiveservices.speech import audio  # noqa: E402
from bench_overhead import at_depth, silent_wav  # noqa: E402

import handletrace  # noqa: E402
from handletrace._core.state import TRACKER  # noqa: E402

TARGET_MB_PER_100K = 50.0
ARMS: Dict[str, Optional[Dict[str, int]]] = {
    "uninstrumented": None,
    "counting": {"stack_sample": 0},
    "stacks16": {"stack_depth": 16, "stack_sample": 1},
}


def measure(options: Optional[Dict[str, int]], objects: int, wav: str) -> Dict[str, float]:
    """Python bytes and RSS per object for ``objects`` live AudioConfigs."""
    TRACKER.reset_defaults()
    if options is not None:
        handletrace.install(**options)
    make = at_depth(30, lambda: audio.AudioConfig(filename=wav))
    gc.collect()
    rss_before = current_rss_bytes()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = [make() for _ in range(objects)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss_after = current_rss_bytes()
    live = handletrace.stats().live
    del keep
    gc.collect()
    TRACKER.reset_defaults()
    return {
        "python_bytes_per_object": (after - before) / objects,
        "rss_bytes_per_object": (rss_after - rss_before) / objects,
        "live_records": live,
    }


def run(records: int) -> Dict[str, Any]:
    objects = records // 2  # two handles (audio_config, property_bag) per AudioConfig
    with tempfile.TemporaryDirectory() as tmp:
        wav = silent_wav(tmp)
        measure(None, 1000, wav)  # warm up
        results = {name: measure(options, objects, wav) for name, options in ARMS.items()}
    base = results["uninstrumented"]["python_bytes_per_object"]
    for name in ("counting", "stacks16"):
        row = results[name]
        per_record = (row["python_bytes_per_object"] - base) / 2
        row["tracker_bytes_per_record"] = per_record
        row["tracker_mb_per_100k"] = per_record * 100_000 / 1e6
    return {
        "machine": machine(),
        "records": records,
        "arms": results,
        "target_mb_per_100k": TARGET_MB_PER_100K,
    }


def format_table(data: Dict[str, Any]) -> List[str]:
    lines = [
        f"Tracker memory with {data['records']:,} live records "
        "(tracemalloc, in addition to the uninstrumented run):",
        "",
        "| arm | live records | bytes per record | MB per 100,000 records |",
        "|---|---:|---:|---:|",
    ]
    for name in ("counting", "stacks16"):
        row = data["arms"][name]
        mb = row["tracker_mb_per_100k"]
        mark = "✓" if mb < data["target_mb_per_100k"] else "✗"
        lines.append(
            f"| {name} | {row['live_records']:,} | {row['tracker_bytes_per_record']:.0f} "
            f"| {mb:.1f} {mark} (target < {data['target_mb_per_100k']:.0f}) |"
        )
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    data = run(args.records)
    print("\n".join(format_table(data)))
    write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
