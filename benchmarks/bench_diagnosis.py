"""Report + diagnosis time for N leaked ConversationTranscribers (the seed's leak).

Each transcriber is the seed's: a ``transcribed`` callback whose closure captures it, so
every one is cyclic garbage (automatic GC is off, as in production). Measured, median over
rounds:

- ``report``: ``handletrace.report(diagnose=True)`` to a string (snapshot, heap scan,
  cycles, signals, access records, patterns, native counts, grouping, text);
- ``diagnose``: ``handletrace.diagnose()`` alone;
- ``report_plain``: ``handletrace.report(diagnose=False)`` (what the diagnosis adds to);
- ``reachable``: the same N transcribers held in a module-global list instead (each needs
  a reference path from a root: one more walk over the heap).

Target (issue 5): report + diagnosis of 1,000 leaked transcribers in under 5 s.

    python benchmarks/bench_diagnosis.py [--count 1000] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, peak_rss_bytes, write_json  # noqa: E402

import handletrace  # noqa: E402

TARGET_SECONDS = 5.0
FAKE_KEY = "bench-not-a-key"
HELD: List[Any] = []  # the "reachable" arm keeps its transcribers here (a module global)


def make_leaky_transcriber(hold: bool) -> None:
    from azure.cognitiveservices.speech import SpeechConfig, audio, transcription

    transcriber = transcription.ConversationTranscriber(
        speech_config=SpeechConfig(subscription=FAKE_KEY, region="westus"),
        audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream()),
    )
    segments: List[Any] = []

    def on_transcribed(evt: Any) -> None:
        segments.append((transcriber, evt))

    transcriber.transcribed.connect(on_transcribed)
    if hold:
        HELD.append(transcriber)


def timed(work: Callable[[], Any]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def run(count: int, rounds: int) -> Dict[str, Any]:
    handletrace.install()
    gc.disable()
    results: Dict[str, Any] = {}
    try:
        for _ in range(count):
            make_leaky_transcriber(hold=False)
        peak_before = peak_rss_bytes()
        data = handletrace.build_report()
        results["peak_rss_added_mb"] = round((peak_rss_bytes() - peak_before) / 2**20, 1)
        groups = [g for g in data.groups if g.cycle is not None]
        results["groups_with_cycle"] = len(groups)
        results["cycle"] = groups[0].cycle.text if groups and groups[0].cycle else ""
        results["live_handles"] = data.live
        results["objects_scanned"] = data.diagnosis.objects_scanned if data.diagnosis else 0
        results["findings"] = [f"{f.pattern} x{f.count}" for g in data.groups for f in g.findings]
        del data, groups
        times: Dict[str, List[float]] = {"report": [], "diagnose": [], "report_plain": []}
        for _ in range(rounds):
            times["report"].append(timed(lambda: handletrace.report(io.StringIO())))
            times["diagnose"].append(timed(handletrace.diagnose))
            times["report_plain"].append(
                timed(lambda: handletrace.report(io.StringIO(), diagnose=False))
            )
        gc.collect()  # release the garbage arm's transcribers before the reachable arm
        for _ in range(count):
            make_leaky_transcriber(hold=True)
        times["reachable"] = [
            timed(lambda: handletrace.report(io.StringIO())) for _ in range(rounds)
        ]
        data = handletrace.build_report()
        results["reachable_path"] = next(
            (g.root_path.text for g in data.groups if g.root_path is not None), ""
        )
        del data
        HELD.clear()
        gc.collect()
    finally:
        gc.enable()
        handletrace.uninstall()
    results["seconds"] = {name: statistics.median(values) for name, values in times.items()}
    results["seconds_max"] = {name: max(values) for name, values in times.items()}
    return results


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="leaked transcribers")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    results = run(args.count, args.rounds)
    seconds = results["seconds"]
    print(f"handletrace diagnosis benchmark: {args.count} leaked ConversationTranscribers")
    print(
        f"  live handles {results['live_handles']}, heap objects scanned "
        f"{results['objects_scanned']:,}, groups with a cycle {results['groups_with_cycle']}"
    )
    print(f"  cycle: {results['cycle']}")
    print(f"  findings: {', '.join(results['findings'])}")
    print(f"  reachable path: {results['reachable_path']}")
    print(f"  peak RSS added by the first report + diagnosis: {results['peak_rss_added_mb']} MB")
    print(f"  median of {args.rounds} rounds (max in brackets):")
    for name in ("report", "diagnose", "report_plain", "reachable"):
        print(f"    {name:<13} {seconds[name]:7.3f} s  [{results['seconds_max'][name]:.3f} s]")
    ok = seconds["report"] < TARGET_SECONDS and seconds["reachable"] < TARGET_SECONDS
    print(
        f"  report + diagnosis: {seconds['report']:.2f} s (cyclic garbage), "
        f"{seconds['reachable']:.2f} s (reachable); target < {TARGET_SECONDS:.0f} s: "
        f"{'met' if ok else 'NOT met'}"
    )
    write_json(args.json, {"machine": machine(), "count": args.count, **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
