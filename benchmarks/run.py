"""Run every benchmark, print the tables, and write them into benchmarks/README.md.

Each benchmark runs in its own process (so no state, patch or memory tracer carries over):
``bench_overhead.py``, ``bench_memory.py``, ``bench_session.py``, ``bench_instructions.py``,
``bench_peers.py``, ``bench_startup.py``, ``bench_service_report.py`` and
``bench_seed_service.py`` give JSON and a table; the other helpers' ``bench_metrics.py``,
``bench_diagnosis.py``, ``bench_release.py`` and ``bench_scale.py`` are run as they are,
if present, and their output is included verbatim.
The results go between the ``results`` markers of benchmarks/README.md, replacing what was
there; the rest of the README is left alone.

    python benchmarks/run.py [--quick] [--no-write]
        [--only overhead,memory,session,instructions,peers,startup,service-report,
                seed-service,others]
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"

#: name -> (script, full arguments, quick arguments, section title)
OURS: Dict[str, Tuple[str, List[str], List[str], str]] = {
    "overhead": (
        "bench_overhead.py",
        [],
        ["--quick"],
        "Per-handle overhead: create + release, ratio to uninstrumented",
    ),
    "memory": (
        "bench_memory.py",
        [],
        ["--records", "20000"],
        "Memory of the tracker itself",
    ),
    "session": (
        "bench_session.py",
        [],
        ["--rounds", "5"],
        "Full transcription session loop (local speech service)",
    ),
    "instructions": (
        "bench_instructions.py",
        [],
        ["--objects", "20"],
        "Instructions added per object (callgrind), the noise-free view",
    ),
    "peers": (
        "bench_peers.py",
        [],
        ["--rounds", "1"],
        "Peers on the seed's leaky service: handletrace, tracemalloc, memray",
    ),
    "startup": (
        "bench_startup.py",
        [],
        ["--rounds", "5"],
        "Start-up: HANDLETRACE=1 on an empty program (target ≤ 15 ms, ≤ 2 MB) and at the "
        "SDK's import",
    ),
    "service-report": (
        "bench_service_report.py",
        [],
        ["--rounds", "1", "--objects", "100000"],
        "handletrace.report() from inside an asyncio handler: how long the loop is held",
    ),
    "seed-service": (
        "bench_seed_service.py",
        [],
        ["--rounds", "1"],
        "Seed-shaped service, 60 requests, GC on: HANDLETRACE=1 with the at-exit report "
        "(target ≤ 1.05× wall and peak RSS; the report names the leak, its line, its cycle)",
    ),
}
OTHERS: Dict[str, str] = {
    "bench_metrics.py": "OpenTelemetry metrics on/off (bench_metrics.py)",
    "bench_diagnosis.py": "Report + diagnosis time (bench_diagnosis.py)",
    "bench_release.py": "dispose() and friends (bench_release.py)",
    "bench_scale.py": "Snapshot, report, release_all() and diagnosis at scale (bench_scale.py)",
}


def run_script(argv: List[str]) -> Tuple[int, str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=HERE.parent, timeout=3600
    )
    output = done.stdout if done.returncode == 0 else done.stdout + done.stderr
    return done.returncode, output.rstrip(), time.perf_counter() - started


def machine_line(data: Dict[str, object]) -> str:
    m = data.get("machine", {})
    assert isinstance(m, dict)
    return (
        f"{m.get('implementation')} {m.get('python')}, azure-cognitiveservices-speech "
        f"{m.get('sdk')}, {m.get('cpus')} CPUs, {m.get('platform')}"
    )


def collect(quick: bool, only: Optional[List[str]]) -> List[str]:
    """Run the benchmarks; the Markdown of the results section."""
    lines: List[str] = []
    machine = ""
    with tempfile.TemporaryDirectory() as tmp:
        for name, (script, full, fast, title) in OURS.items():
            if only and name not in only:
                continue
            out = Path(tmp) / f"{name}.json"
            argv = [str(HERE / script), *(fast if quick else full), "--json", str(out)]
            print(f"running {script} ...", file=sys.stderr, flush=True)
            code, text, seconds = run_script(argv)
            lines += [f"### {title}", ""]
            if code != 0 or not out.exists():
                lines += [f"`{script}` failed (exit {code}):", "", "```", text, "```", ""]
                continue
            data = json.loads(out.read_text())
            machine = machine or machine_line(data)
            shown = " ".join(["python", f"benchmarks/{script}", *argv[1:-2]])
            lines += [text, "", f"*`{shown}`, {seconds:.0f} s*", ""]
        if not only or "others" in only:
            for script, title in OTHERS.items():
                if not (HERE / script).exists():
                    continue
                print(f"running {script} ...", file=sys.stderr, flush=True)
                code, text, seconds = run_script([str(HERE / script)])
                status = "" if code == 0 else f" (exit {code})"
                footer = f"*`python benchmarks/{script}`{status}, {seconds:.0f} s*"
                lines += [f"### {title}", "", "```", text, "```", "", footer, ""]
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = [f"Measured {stamp}{' (--quick)' if quick else ''} on {machine or 'this machine'}.", ""]
    return head + lines


def write_readme(section: List[str]) -> None:
    text = README.read_text(encoding="utf-8") if README.exists() else f"{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    body = "\n".join(section).rstrip("\n")
    README.write_text(f"{before}{START}\n{body}\n{END}{after}", encoding="utf-8")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument(
        "--only",
        help="comma-separated: overhead,memory,session,instructions,peers,startup,"
        "service-report,seed-service,others",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None
    section = collect(args.quick, only)
    print("\n".join(section))
    if not args.no_write:
        write_readme(section)
        print(f"\nwritten into {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
