"""Snapshot, report, ``release_all()`` and diagnosis at the size of a real service (issue 17).

Two parts, each printed as a table with its targets:

- **Live handles** (``--sizes``, default 10k, 100k, 300k): that many live handles (a third
  of them ``AudioConfig(stream=PushAudioInputStream())`` objects, three handles each) held
  in a list; timed once each: the first ``snapshot()`` (owners looked up), then
  ``report()`` (text, diagnosis on, to a string), then ``release_all()``; the baseline is
  dropping as many such objects uninstrumented (``del`` of the list), in the same run.
  Targets: snapshot + report <= 3 s and release_all <= 3 s at 300,000 live handles.
- **Diagnosis of a service-like heap** (``--heap`` objects, default 250,000): sessions,
  segments, word timings, request contexts on reference cycles (garbage a collection would
  free), 100 recognizers held by live sessions (paths from a root) and ``--leaked`` (1,000)
  recognizers leaked by the seed's mistake (a callback that captures its recognizer:
  cyclic garbage). ``diagnose()`` timed (median of ``--rounds``), the peak memory it adds
  (tracemalloc, per heap object scanned), and, unless ``--no-compare``, the same diagnosis
  with the previous heap code (``_heap_reference.py``): its time, and whether every
  handle's classification, subject, cycle, path, signals and findings are identical.
  Targets: <= 1 s, <= 40 bytes per heap object, identical results.

    python benchmarks/bench_scale.py [--sizes 10000,100000,300000] [--heap 250000]
                                     [--leaked 1000] [--rounds 3] [--no-compare] [--json F]

Automatic collection is off while the objects are built and measured (as in a service
that leaks them: the seed's recognizers are only freed by a collection).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_json  # noqa: E402

import handletrace  # noqa: E402

SNAPSHOT_REPORT_TARGET = 3.0  # seconds, at 300,000 live handles
RELEASE_ALL_TARGET = 3.0
DIAGNOSIS_TARGET = 1.0  # seconds, 250,000 heap objects
BYTES_PER_OBJECT_TARGET = 40
FAKE_KEY = "bench-not-a-key"
#: What the leaked and live recognizers of the heap part are kept in (module globals: roots).
SERVICE: Dict[str, Any] = {}


def timed(work: Callable[[], Any]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# -- live handles ----------------------------------------------------------------------------


def audio_configs(handles: int) -> List[Any]:
    from azure.cognitiveservices.speech import audio

    return [audio.AudioConfig(stream=audio.PushAudioInputStream()) for _ in range(handles // 3)]


def live_handles_row(handles: int) -> Dict[str, Any]:
    """The first snapshot, a report and release_all() with ``handles`` live handles, and
    the uninstrumented release of as many."""
    held = audio_configs(handles)
    plain = timed(held.clear)
    handletrace.install()
    try:
        held = audio_configs(handles)
        live = handletrace.stats().live
        snapshot = timed(handletrace.snapshot)
        report = timed(lambda: handletrace.report(io.StringIO()))
        # The list still holds the objects, as a program's would: release_all() releases
        # their handles anyway (that is what it is for).
        release_all = timed(lambda: handletrace.release_all(stop_timeout=0))
        held.clear()
        left = handletrace.stats().live
    finally:
        handletrace.uninstall()
    return {
        "handles": live,
        "snapshot_s": snapshot,
        "report_s": report,
        "release_all_s": release_all,
        "plain_release_s": plain,
        "left_after_release_all": left,
    }


# -- a service-like heap ---------------------------------------------------------------------


class Segment:
    """A transcribed segment: text, speaker, word timings."""

    def __init__(self, index: int) -> None:
        self.text = f"segment {index}"
        self.speaker = {"id": index % 7, "label": f"speaker-{index % 7}"}
        self.words = [(f"w{k}", k * 0.1, 0.1) for k in range(3)]


class RequestContext:
    """A handled request's context; ``previous`` and ``session`` make a cycle."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.headers = {"x-request": str(id(self))}
        self.previous: Any = self


class Session:
    """A live session: its user, segments, and a recognizer for some of them."""

    def __init__(self, index: int) -> None:
        self.user = {"name": f"user-{index}", "tags": [index, "tag"]}
        self.segments = [Segment(k) for k in range(4)]
        self.recognizer: Any = None
        self.last = RequestContext(self)


def leak_recognizer(config: Any) -> None:
    """The seed's leak: a callback that captures its recognizer (cyclic garbage)."""
    from azure.cognitiveservices.speech import SpeechRecognizer, audio

    recognizer = SpeechRecognizer(
        speech_config=config, audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream())
    )
    texts: List[Any] = []

    def on_recognized(evt: Any) -> None:
        texts.append((recognizer, evt))

    recognizer.recognized.connect(on_recognized)


def build_heap(objects: int, leaked: int) -> int:
    """Build the service heap up to ``objects`` tracked objects; how many there are."""
    from azure.cognitiveservices.speech import SpeechConfig, SpeechRecognizer, audio

    config = SpeechConfig(subscription=FAKE_KEY, region="westus")
    SERVICE["config"] = config
    sessions: Dict[int, Session] = {}
    SERVICE["sessions"] = sessions
    for _ in range(leaked):
        leak_recognizer(config)
    for index in range(100):
        session = sessions[index] = Session(index)
        session.recognizer = SpeechRecognizer(
            speech_config=config,
            audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream()),
        )
    index = len(sessions)
    while len(gc.get_objects()) < objects:
        for _ in range(200):
            session = Session(index)
            if index % 4 == 0:
                RequestContext(session).previous = RequestContext(session)  # garbage cycles
            if index % 3:
                sessions[index] = session  # the others are dropped: garbage (their cycle)
            index += 1
    return len(gc.get_objects())


def comparable(diagnosis: Any) -> Dict[int, Tuple[Any, ...]]:
    return {
        seq: (h.state, h.subject, h.cycle, h.path, h.signals, h.findings)
        for seq, h in diagnosis.handles.items()
    }


def with_reference_heap(work: Callable[[], Any]) -> Any:
    """``work()`` with the diagnosis using the previous heap code."""
    import _heap_reference

    from handletrace._analysis import diagnosis as module

    current = module.HeapGraph
    module.HeapGraph = _heap_reference.HeapGraph  # type: ignore[misc]
    try:
        return work()
    finally:
        module.HeapGraph = current  # type: ignore[misc]


def diagnosis_rows(objects: int, leaked: int, rounds: int, compare: bool) -> Dict[str, Any]:
    handletrace.install()
    try:
        heap = build_heap(objects, leaked)
        handletrace.snapshot()  # owners looked up once, as any earlier report would
        result = handletrace.diagnose()
        states = result.counts()
        times = [timed(handletrace.diagnose) for _ in range(rounds)]
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            scanned = handletrace.diagnose().objects_scanned
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        row: Dict[str, Any] = {
            "heap_objects": heap,
            "objects_scanned": scanned,
            "live_handles": handletrace.stats().live,
            "states": states,
            "cycles": len({h.cycle for h in result.handles.values() if h.cycle is not None}),
            "paths": sum(h.path is not None for h in result.handles.values()),
            "diagnose_s": statistics.median(times),
            "diagnose_max_s": max(times),
            "peak_bytes": peak,
            "bytes_per_object": peak / max(scanned, 1),
        }
        if compare:
            ours = comparable(result)
            del result
            reference_times = [
                timed(lambda: with_reference_heap(handletrace.diagnose)) for _ in range(rounds)
            ]
            theirs = comparable(with_reference_heap(handletrace.diagnose))
            differ = [seq for seq in ours if ours[seq] != theirs.get(seq)]
            row["reference_diagnose_s"] = statistics.median(reference_times)
            row["compared_handles"] = len(ours)
            row["identical"] = not differ and set(ours) == set(theirs)
            row["differing"] = [
                {
                    "seq": seq,
                    "ours": repr(ours[seq])[:300],
                    "reference": repr(theirs.get(seq))[:300],
                }
                for seq in differ[:3]
            ]
        SERVICE.clear()
    finally:
        handletrace.uninstall()
    return row


def child(argv: List[str]) -> Any:
    """Run one part of this benchmark in a new process; what it measured."""
    done = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000", help="live handles per row")
    parser.add_argument("--heap", type=int, default=250_000, help="heap objects to diagnose")
    parser.add_argument("--leaked", type=int, default=1000, help="leaked recognizers in it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-compare", action="store_true", help="skip the reference run")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)  # one, in a child
    args = parser.parse_args(argv)
    if args.part is not None:
        gc.disable()
        if args.part == "heap":
            data: Any = diagnosis_rows(args.heap, args.leaked, args.rounds, not args.no_compare)
        else:
            data = live_handles_row(int(args.part))
        print(json.dumps(data))
        return 0
    # Each row in a fresh process: what one leaves behind (a grown heap, freed arenas, the
    # records of 300,000 released handles) slowed the next one's figures by up to 2.5x.
    common = ["--heap", str(args.heap), "--leaked", str(args.leaked), "--rounds", str(args.rounds)]
    if args.no_compare:
        common.append("--no-compare")
    sizes = [size for size in args.sizes.split(",") if size]
    rows = [child([*common, "--part", size]) for size in sizes]
    heap = child([*common, "--part", "heap"])
    print("handletrace at scale: live handles (AudioConfig(stream=...): 3 handles each)")
    print(
        f"  {'live handles':>12} {'snapshot':>9} {'report':>8} {'snap+rep':>9} "
        f"{'release_all':>12} {'plain del':>10} {'ratio':>7}"
    )
    for row in rows:
        both = row["snapshot_s"] + row["report_s"]
        ratio = row["release_all_s"] / max(row["plain_release_s"], 1e-9)
        print(
            f"  {row['handles']:>12,} {row['snapshot_s']:>8.2f}s {row['report_s']:>7.2f}s "
            f"{both:>8.2f}s {row['release_all_s']:>11.2f}s {row['plain_release_s']:>9.2f}s "
            f"{ratio:>6.1f}x"
        )
    largest = max(rows, key=lambda r: r["handles"]) if rows else None
    if largest is not None:
        both = largest["snapshot_s"] + largest["report_s"]
        met = both <= SNAPSHOT_REPORT_TARGET and largest["release_all_s"] <= RELEASE_ALL_TARGET
        print(
            f"  targets at {largest['handles']:,}: snapshot + report <= "
            f"{SNAPSHOT_REPORT_TARGET:.0f} s ({both:.2f} s), release_all <= "
            f"{RELEASE_ALL_TARGET:.0f} s ({largest['release_all_s']:.2f} s): "
            f"{'met' if met else 'NOT met'}"
        )
    print(
        f"handletrace at scale: diagnosis of a service-like heap of {heap['heap_objects']:,} "
        f"objects ({args.leaked} leaked recognizers, {heap['live_handles']:,} live handles)"
    )
    print(
        f"  states {heap['states']}, distinct cycles {heap['cycles']}, "
        f"paths {heap['paths']}, objects scanned {heap['objects_scanned']:,}"
    )
    print(
        f"  diagnose(): {heap['diagnose_s']:.3f} s median of {args.rounds} "
        f"[max {heap['diagnose_max_s']:.3f} s]; target <= {DIAGNOSIS_TARGET:.0f} s: "
        f"{'met' if heap['diagnose_s'] <= DIAGNOSIS_TARGET else 'NOT met'}"
    )
    print(
        f"  peak memory added: {heap['peak_bytes'] / 2**20:.1f} MB, "
        f"{heap['bytes_per_object']:.1f} bytes per heap object; target <= "
        f"{BYTES_PER_OBJECT_TARGET}: "
        f"{'met' if heap['bytes_per_object'] <= BYTES_PER_OBJECT_TARGET else 'NOT met'}"
    )
    if "identical" in heap:
        print(
            f"  previous heap code (_heap_reference.py): {heap['reference_diagnose_s']:.3f} s; "
            f"results for {heap['compared_handles']:,} handles "
            f"{'identical' if heap['identical'] else 'DIFFER'}"
        )
        for item in heap["differing"]:
            print(
                f"    seq {item['seq']}: ours {item['ours']}\n      reference {item['reference']}"
            )
    write_json(args.json, {"machine": machine(), "live_handles": rows, "diagnosis": heap})
    return 0 if heap.get("identical", True) else 1


if __name__ == "__main__":
    sys.exit(main())
