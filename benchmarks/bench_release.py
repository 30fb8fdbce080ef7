"""Cost of ``handletrace.dispose()`` on an idle recognizer, against a plain ``del``.

Each round times every arm once per object (``--objects`` of them), in an order rotated from
round to round; the per-op time of an arm in a round is the median over its objects, and
the figure is the median of the per-round ratios arm / ``del``. The recognizer is created
outside the timing in every arm. Arms:

- ``del``: ``del recognizer`` (reference counting runs ``_Handle.__del__``: the SDK's own
  release);
- ``dispose``: ``dispose(recognizer); del recognizer`` (disconnect, stop in a worker thread
  with a bounded wait, release, neutralise);
- ``dispose_no_stop``: the same with ``stop_timeout=0`` (no stop calls, no worker thread);
- ``cycle_gc``: what users do today for a recognizer in a callback cycle: ``del`` plus
  ``gc.collect()`` (its cost grows with the size of the heap; this process's heap is small).

    python benchmarks/bench_release.py [--rounds 21] [--objects 50] [--installed] [--json F]

Prints figures only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import azure.cognitiveservices.speech as speechsdk  # noqa: E402
from azure.cognitiveservices.speech import audio  # noqa: E402

import handletrace  # noqa: E402
from benchmarks._common import machine, rotated, write_json  # noqa: E402

CONFIG = speechsdk.SpeechConfig(subscription="bench-not-a-key", region="westus")
AUDIO = audio.AudioConfig(stream=audio.PushAudioInputStream())


def make_recognizer() -> Any:
    return speechsdk.SpeechRecognizer(CONFIG, audio_config=AUDIO)


def make_cyclic_recognizer() -> Any:
    recognizer = make_recognizer()
    recognizer.recognized.connect(lambda evt: recognizer)
    return recognizer


def arm_del() -> float:
    recognizer = make_recognizer()
    start = time.perf_counter()
    del recognizer
    return time.perf_counter() - start


def arm_dispose() -> float:
    recognizer = make_recognizer()
    start = time.perf_counter()
    handletrace.dispose(recognizer)
    del recognizer
    return time.perf_counter() - start


def arm_dispose_no_stop() -> float:
    recognizer = make_recognizer()
    start = time.perf_counter()
    handletrace.dispose(recognizer, stop_timeout=0)
    del recognizer
    return time.perf_counter() - start


def arm_cycle_gc() -> float:
    recognizer = make_cyclic_recognizer()
    start = time.perf_counter()
    del recognizer
    gc.collect()
    return time.perf_counter() - start


ARMS: Dict[str, Callable[[], float]] = {
    "del": arm_del,
    "dispose": arm_dispose,
    "dispose_no_stop": arm_dispose_no_stop,
    "cycle_gc": arm_cycle_gc,
}


def run(rounds: int, objects: int) -> Dict[str, Dict[str, float]]:
    times: Dict[str, List[float]] = {name: [] for name in ARMS}
    for name in ARMS:  # warm-up
        for _ in range(5):
            ARMS[name]()
    for index in range(rounds):
        for name in rotated(list(ARMS), index):
            times[name].append(statistics.median(ARMS[name]() for _ in range(objects)))
    result = {}
    for name, per_round in times.items():
        ratios = [t / b for t, b in zip(per_round, times["del"])]
        result[name] = {
            "microseconds": statistics.median(per_round) * 1e6,
            "ratio_to_del": statistics.median(ratios),
        }
    return result


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--installed", action="store_true", help="handletrace.install() first")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    gc.disable()  # as in production: no automatic collection during the timings
    if args.installed:
        handletrace.install(stack_depth=0)
    figures = run(args.rounds, args.objects)
    print(
        f"idle SpeechRecognizer, {args.rounds} rounds x {args.objects} objects, "
        f"handletrace {'installed' if args.installed else 'not installed'}"
    )
    for name, figure in figures.items():
        print(
            f"  {name:16s} {figure['microseconds']:8.1f} us   x{figure['ratio_to_del']:.2f} of del"
        )
    write_json(args.json, {"machine": machine(), "installed": args.installed, "arms": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
