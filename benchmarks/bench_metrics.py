"""Overhead of handletrace.metrics on handle creation: metrics on vs off, same process.

Both arms track handles (``handletrace.install()``); the "on" arm also has metrics enabled on
an SDK ``MeterProvider`` and its reader collects once after each round (outside the timing:
collection is not part of handle creation; its own cost is printed separately, with its share
at a 15 s collection interval). Each round runs the arms in a shuffled order; the figure is the
median of the per-round ratios on/off. An A/A control (off vs off) shows the noise floor.

    python benchmarks/bench_metrics.py [--rounds 31] [--objects 500] [--what speech_config]

Prints ratios only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from random import Random
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import azure.cognitiveservices.speech as speechsdk  # noqa: E402
from azure.cognitiveservices.speech import audio  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

import handletrace  # noqa: E402
from handletrace import metrics  # noqa: E402


def make_speech_config() -> Any:
    return speechsdk.SpeechConfig(subscription="bench-not-a-key", region="westus")


def make_recognizer() -> Any:
    return speechsdk.SpeechRecognizer(
        speech_config=make_speech_config(),
        audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream()),
    )


WORKLOADS: Dict[str, Callable[[], Any]] = {
    "speech_config": make_speech_config,  # 2 handles: speech_config + property_bag
    "recognizer": make_recognizer,  # 8 handles
}


def run_round(
    make: Callable[[], Any], objects: int, reader: Optional[InMemoryMetricReader]
) -> float:
    """Seconds to create and release ``objects`` SDK objects (then one collection if on)."""
    start = time.perf_counter()
    for _ in range(objects):
        make()
    elapsed = time.perf_counter() - start
    if reader is not None:
        reader.collect()
    return elapsed


def measure(what: str, rounds: int, objects: int) -> Dict[str, Any]:
    make = WORKLOADS[what]
    shuffle = Random(20261128).shuffle  # a fixed seed: the same arm orders on every run
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    handletrace.install(stack_sample=1)
    for _ in range(max(1, objects // 10)):  # warm up the SDK and the wrappers
        make()
    handles_per_object = _handles_per_object(make)
    ratios: List[float] = []
    controls: List[float] = []
    on_times: List[float] = []
    off_times: List[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection landing in one arm only would swamp the difference
    try:
        for _ in range(rounds):
            times: Dict[str, float] = {}
            order = ["off", "on", "off2"]
            shuffle(order)
            for arm in order:
                if arm == "on":
                    metrics.enable(provider)
                    times[arm] = run_round(make, objects, reader)
                    metrics.disable()
                else:
                    times[arm] = run_round(make, objects, None)
                gc.collect()
            ratios.append(times["on"] / times["off"])
            controls.append(times["off2"] / times["off"])
            on_times.append(times["on"])
            off_times.append(times["off"])
        collect_seconds = _collection_cost(provider, reader)
    finally:
        if gc_was_enabled:
            gc.enable()
        handletrace.uninstall()
    return {
        "what": what,
        "rounds": rounds,
        "objects": objects,
        "handles_per_object": handles_per_object,
        "median_ratio": statistics.median(ratios),
        "min_ratio": min(ratios),
        "max_ratio": max(ratios),
        "median_control": statistics.median(controls),
        "median_on_us_per_object": statistics.median(on_times) / objects * 1e6,
        "median_off_us_per_object": statistics.median(off_times) / objects * 1e6,
        "collect_us": collect_seconds * 1e6,
    }


def _handles_per_object(make: Callable[[], Any]) -> int:
    before = handletrace.stats().created
    make()
    return handletrace.stats().created - before


def _collection_cost(provider: MeterProvider, reader: InMemoryMetricReader) -> float:
    """Median seconds of one reader.collect() with metrics on (whole SDK pipeline)."""
    metrics.enable(provider)
    try:
        samples = []
        for _ in range(51):
            start = time.perf_counter()
            reader.collect()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)
    finally:
        metrics.disable()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--objects", type=int, default=500, help="SDK objects per round")
    parser.add_argument("--what", choices=sorted(WORKLOADS), default="speech_config")
    args = parser.parse_args(argv)
    result = measure(args.what, args.rounds, args.objects)
    print(
        f"handle creation with metrics on / off ({result['what']}: "
        f"{result['handles_per_object']} handles each, {result['objects']} per round, "
        f"{result['rounds']} rounds):"
    )
    print(
        f"  median ratio {result['median_ratio']:.3f} "
        f"(min {result['min_ratio']:.3f}, max {result['max_ratio']:.3f}); "
        f"A/A control off/off {result['median_control']:.3f}"
    )
    print(
        f"  per object: on {result['median_on_us_per_object']:.1f} us, "
        f"off {result['median_off_us_per_object']:.1f} us"
    )
    print(
        f"  one collection (reader.collect(), whole SDK pipeline): {result['collect_us']:.0f} us, "
        f"{result['collect_us'] / 15e6:.1e} of one core at a 15 s interval"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
