"""A full transcription session loop against the local speech service, installed vs not.

Each session: a ConversationTranscriber on a push stream, start, one second of audio,
session_stopped, stop, release (the fixed service: callbacks disconnected). The service runs
in its own process. Arms per round, in rotated order: uninstrumented, handletrace installed
(16-frame stacks), and uninstrumented again (A/A control). Two ratios per arm, each the
median over rounds of arm / uninstrumented in the same round: wall time per session, and
process CPU time per session (all threads: the SDK's callback threads make handles too), which
leaves out the time spent waiting for the service.

    python benchmarks/bench_session.py [--rounds 21] [--sessions 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import azure.cognitiveservices.speech as speechsdk  # noqa: E402
from _common import machine, rotated, write_json  # noqa: E402
from _service import ServiceProcess  # noqa: E402
from azure.cognitiveservices.speech import audio  # noqa: E402

import handletrace  # noqa: E402
from handletrace._core.state import TRACKER  # noqa: E402

PCM = bytes(32000)  # one second of 16 kHz 16-bit mono silence
TARGET = 1.02


def session(host: str) -> int:
    """One complete session, everything released before returning; the segments seen."""
    segments: List[str] = []
    stopped = threading.Event()
    stream = audio.PushAudioInputStream(audio.AudioStreamFormat(16000, 16, 1))
    transcriber = speechsdk.transcription.ConversationTranscriber(
        speech_config=speechsdk.SpeechConfig(host=host),
        audio_config=audio.AudioConfig(stream=stream),
    )
    transcriber.transcribed.connect(lambda evt: segments.append(evt.result.text))
    transcriber.session_stopped.connect(lambda evt: stopped.set())
    transcriber.start_transcribing_async().get()
    stream.write(PCM)
    stream.close()
    stopped.wait(10)
    transcriber.stop_transcribing_async().get()
    transcriber.transcribed.disconnect_all()
    transcriber.session_stopped.disconnect_all()
    del transcriber
    return len(segments)


ARMS = ("uninstrumented", "installed", "control")


def set_arm(name: str) -> None:
    TRACKER.reset_defaults()
    if name == "installed":
        handletrace.install(stack_depth=16, stack_sample=1)


def run(rounds: int, sessions: int) -> Dict[str, Any]:
    wall: Dict[str, List[float]] = {arm: [] for arm in ARMS}
    cpu: Dict[str, List[float]] = {arm: [] for arm in ARMS}
    segments = 0
    with ServiceProcess() as service:
        for _ in range(3):
            session(service.host)  # warm up
        for index in range(rounds):
            for arm in rotated(ARMS, index):
                set_arm(arm)
                gc.collect()
                started_wall, started_cpu = time.perf_counter(), time.process_time()
                for _ in range(sessions):
                    segments += session(service.host)
                wall[arm].append((time.perf_counter() - started_wall) / sessions)
                cpu[arm].append((time.process_time() - started_cpu) / sessions)
        TRACKER.reset_defaults()
    figures = {}
    for arm in ARMS:
        figures[arm] = {
            "wall_ratio": statistics.median(
                a / b for a, b in zip(wall[arm], wall["uninstrumented"])
            ),
            "cpu_ratio": statistics.median(a / b for a, b in zip(cpu[arm], cpu["uninstrumented"])),
            "wall_seconds": statistics.median(wall[arm]),
            "cpu_seconds": statistics.median(cpu[arm]),
        }
    return {
        "machine": machine(),
        "rounds": rounds,
        "sessions_per_round": sessions,
        "segments": segments,
        "target": TARGET,
        "arms": figures,
    }


def format_table(data: Dict[str, Any]) -> List[str]:
    lines = [
        f"Transcription session loop, {data['sessions_per_round']} sessions per arm per round, "
        f"median of {data['rounds']} rounds:",
        "",
        "| arm | wall per session | wall ratio | CPU per session | CPU ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for arm in ARMS:
        row = data["arms"][arm]
        mark = ""
        if arm == "installed":
            ok = row["wall_ratio"] <= data["target"]
            mark = f" {'✓' if ok else '✗'} (target ≤ {data['target']:.2f})"
        lines.append(
            f"| {arm} | {row['wall_seconds'] * 1000:.1f} ms | {row['wall_ratio']:.3f}×{mark} "
            f"| {row['cpu_seconds'] * 1000:.1f} ms | {row['cpu_ratio']:.3f}× |"
        )
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    data = run(args.rounds, args.sessions)
    print("\n".join(format_table(data)))
    write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
