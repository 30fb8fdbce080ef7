"""What ``handletrace.report()`` costs when a handler of an asyncio service calls it.

An asyncio program with a service-like heap (session records until the collector tracks
``--objects`` objects) and ``--leaked`` leaked ConversationTranscribers (the seed's
closure cycle; automatic GC off while they are made), handletrace installed. A ticker task
wakes every millisecond and records how late it ran: the longest delay is how long the event
loop was held. Measured, each the median over rounds:

- ``report() in the handler``: the text report written from the handler (the loop is held
  for the whole snapshot, heap scan, diagnosis and rendering);
- ``report() + render(json)``: text and JSON from one build (``handletrace.render``);
- ``report() twice``: text, then ``report(format="json")``: two heap scans;
- ``build_report() in a thread``: ``await asyncio.to_thread(handletrace.build_report)``,
  then ``render()`` on the loop. The heap scan holds the GIL, so the loop still stalls,
  but in slices of the interpreter's switch interval rather than in one piece;
- ``report(diagnose=False)``: counts, groups and creation stacks, no heap scan.

    python benchmarks/bench_service_report.py [--objects 250000] [--leaked 100] [--rounds 3]
                                              [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_json  # noqa: E402

import handletrace  # noqa: E402

FAKE_KEY = "bench-not-a-key"
SESSIONS: Dict[str, Any] = {}  # the service's heap (a module global, as a real cache is)
CONTAINERS_PER_SESSION = 5  # objects the collector tracks per session (dicts and lists)


def build_heap(objects: int) -> None:
    """Session records (dicts, lists, strings, floats) until the collector tracks about
    ``objects`` objects (what a heap scan walks)."""
    missing = max(0, objects - len(gc.get_objects()))
    for index in range(missing // CONTAINERS_PER_SESSION):
        SESSIONS[f"session-{index}"] = {
            "user": f"user-{index}",
            "segments": [f"segment {index} {n}" for n in range(8)],
            "timings": [float(n) for n in range(6)],
            "meta": {"lang": "en-US", "turn": index, "tags": ["a", "b"]},
        }


def leak_transcribers(count: int) -> None:
    from azure.cognitiveservices.speech import SpeechConfig, audio, transcription

    for _ in range(count):
        transcriber = transcription.ConversationTranscriber(
            speech_config=SpeechConfig(subscription=FAKE_KEY, region="westus"),
            audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream()),
        )

        def on_transcribed(evt: Any, transcriber: Any = transcriber) -> None:
            print(transcriber, evt)

        transcriber.transcribed.connect(on_transcribed)


async def held_loop(handler: Callable[[], Awaitable[Any]]) -> Dict[str, float]:
    """Run ``handler`` on the loop while a 1 ms ticker measures how late it wakes."""
    done = asyncio.Event()
    delays: List[float] = []

    async def ticker() -> None:
        while not done.is_set():
            expected = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            delays.append(time.perf_counter() - expected)

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.05)  # the ticker is running
    delays.clear()
    started = time.perf_counter()
    await handler()
    seconds = time.perf_counter() - started
    done.set()
    await tick
    return {"seconds": seconds, "held": max(delays, default=0.0)}


def text_only() -> Callable[[], Awaitable[Any]]:
    async def handler() -> None:
        handletrace.report(io.StringIO())

    return handler


def text_and_json_one_build() -> Callable[[], Awaitable[Any]]:
    async def handler() -> None:
        data = handletrace.report(io.StringIO())
        handletrace.render(data, io.StringIO(), "json")

    return handler


def text_and_json_two_reports() -> Callable[[], Awaitable[Any]]:
    async def handler() -> None:
        handletrace.report(io.StringIO())
        handletrace.report(io.StringIO(), "json")

    return handler


def without_diagnosis() -> Callable[[], Awaitable[Any]]:
    async def handler() -> None:
        handletrace.report(io.StringIO(), diagnose=False)

    return handler


def built_in_a_thread() -> Callable[[], Awaitable[Any]]:
    async def handler() -> None:
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, handletrace.build_report)
        handletrace.render(data, io.StringIO())

    return handler


CASES: Dict[str, Callable[[], Callable[[], Awaitable[Any]]]] = {
    "report() in the handler": text_only,
    "report() + render(json)": text_and_json_one_build,
    "report() twice (text, json)": text_and_json_two_reports,
    "build_report() in a thread": built_in_a_thread,
    "report(diagnose=False)": without_diagnosis,
}


def run(objects: int, leaked: int, rounds: int) -> Dict[str, Any]:
    handletrace.install()
    build_heap(objects)
    gc.disable()  # the leaked cycles stay until a collection: none runs while measuring
    leak_transcribers(leaked)
    heap = len(gc.get_objects())
    scans: List[Any] = []
    from handletrace._core.state import TRACKER

    TRACKER.on_diagnosis.append(scans.append)
    handletrace.report(io.StringIO())  # warm: the report's modules are loaded on first use
    figures: Dict[str, List[Dict[str, float]]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, case in CASES.items():
            before = len(scans)
            result = asyncio.run(held_loop(case()))
            result["scans"] = len(scans) - before
            figures[name].append(result)
    return {
        "machine": machine(),
        "objects": heap,
        "leaked": leaked,
        "rounds": rounds,
        "cases": {
            name: {
                "seconds": statistics.median(r["seconds"] for r in runs),
                "held": statistics.median(r["held"] for r in runs),
                "scans": runs[-1]["scans"],
            }
            for name, runs in figures.items()
        },
    }


def format_table(data: Dict[str, Any]) -> List[str]:
    lines = [
        f"An asyncio handler asks for the report: {data['objects']:,} objects tracked by the "
        f"collector, {data['leaked']} leaked transcribers; median of {data['rounds']} rounds. "
        "Loop held: the longest a 1 ms ticker task waited past its time.",
        "",
        "| in the handler | heap scans | handler time | loop held |",
        "|---|---:|---:|---:|",
    ]
    for name, row in data["cases"].items():
        lines.append(
            f"| {name} | {row['scans']} | {row['seconds'] * 1000:.0f} ms "
            f"| {row['held'] * 1000:.0f} ms |"
        )
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=250_000)
    parser.add_argument("--leaked", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    data = run(args.objects, args.leaked, args.rounds)
    print("\n".join(format_table(data)))
    write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
