"""Instructions handletrace adds per object, counted by valgrind (callgrind), not timed.

Timing a recognizer cannot resolve 1 %: its own time varies by tens of microseconds from one
object to the next (the SDK's native threads), and an A/A comparison moves by 1-2 %. An
instruction count of the thread creating and releasing the objects is repeatable: each arm
runs the workload N and 3N times under ``valgrind --tool=callgrind --separate-threads=yes``,
and the figure per object is (count at 3N - count at N) / 2N in the main thread (start-up
and warm-up cancel out; the hash seed is fixed). Native SDK threads are left out: they run
the same native code in every arm, and their instruction counts vary with scheduling.

    python benchmarks/bench_instructions.py [--objects 100] [--json out.json]

Needs valgrind on PATH (prints why not, and exits 0, when it is missing).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_json  # noqa: E402

#: workload -> (label, objects per run relative to --objects)
WORKLOADS: Dict[str, Any] = {
    "audio_config_file": ("AudioConfig(filename=...)", 10),
    "speech_recognizer": ("SpeechRecognizer (shared configs)", 1),
}
ARMS = ("uninstrumented", "counting", "stacks16")
DEPTH = 30  # as bench_overhead.py: the workload runs 30 frames deep


def worker(workload: str, arm: str, objects: int) -> None:
    """Run in the measured process: warm up, then make and drop ``objects`` objects."""
    import azure.cognitiveservices.speech as speechsdk
    from azure.cognitiveservices.speech import audio
    from bench_overhead import silent_wav

    import handletrace

    directory = tempfile.mkdtemp()
    wav = silent_wav(directory)
    speech = speechsdk.SpeechConfig(subscription="bench-not-a-key", region="westus")
    shared_audio = audio.AudioConfig(filename=wav)
    makers: Dict[str, Callable[[], Any]] = {
        "audio_config_file": lambda: audio.AudioConfig(filename=wav),
        "speech_recognizer": lambda: speechsdk.SpeechRecognizer(
            speech_config=speech, audio_config=shared_audio
        ),
    }
    make = makers[workload]

    def nested(level: int) -> Any:
        return make() if level <= 0 else nested(level - 1)

    if arm == "counting":
        handletrace.install(stack_sample=0)
    elif arm == "stacks16":
        handletrace.install(stack_depth=16)
    for _ in range(30):
        nested(DEPTH)
    for _ in range(objects):
        nested(DEPTH)
    shutil.rmtree(directory, ignore_errors=True)


def main_thread_instructions(workload: str, arm: str, objects: int, directory: str) -> int:
    out = os.path.join(directory, f"{workload}.{arm}.{objects}.out")
    command = [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}",
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        workload,
        arm,
        str(objects),
    ]
    # A fixed hash seed: string hashes (and so dictionary probe lengths) are the same in
    # every run, as are the instruction counts.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(
        command, check=True, capture_output=True, cwd=Path(__file__).parent.parent, env=env
    )
    text = Path(out + "-01").read_text(encoding="utf-8", errors="replace")  # thread 1: main
    found = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no instruction total in {out}-01")
    return int(found.group(1))


def run(objects: int) -> Dict[str, Any]:
    results: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        for workload, (label, scale) in WORKLOADS.items():
            n = objects * scale
            per_object: Dict[str, float] = {}
            for arm in ARMS:
                low = main_thread_instructions(workload, arm, n, directory)
                high = main_thread_instructions(workload, arm, 3 * n, directory)
                per_object[arm] = (high - low) / (2 * n)
            results[workload] = {"label": label, "objects": n, "per_object": per_object}
    return {"machine": machine(), "workloads": results}


def format_table(data: Dict[str, Any]) -> List[str]:
    lines = [
        "| workload | uninstrumented | counting only | 16-frame stacks |",
        "|---|---:|---:|---:|",
    ]
    for row in data["workloads"].values():
        base = row["per_object"]["uninstrumented"]
        cells = [f"{base:,.0f}"]
        for arm in ARMS[1:]:
            count = row["per_object"][arm]
            cells.append(f"{count:,.0f} ({count / base:.3f}×, +{count - base:,.0f})")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Instructions per object (create + release) in the thread that makes them, counted by",
        "callgrind: (count at 3N objects - count at N) / 2N, N as in the rows' `objects`.",
    ]
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100, help="N for recognizers")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--worker", nargs=3, metavar=("WORKLOAD", "ARM", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        workload, arm, n = args.worker
        worker(workload, arm, int(n))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: no instruction counts (apt-get install valgrind)")
        return 0
    data = run(args.objects)
    print("\n".join(format_table(data)))
    write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
