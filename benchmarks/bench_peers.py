"""handletrace next to tracemalloc and memray on the seed's leaky service (100 requests).

The workload is the project's example of the seed's service, ``examples/request_driver.py
--requests 100 --host HOST`` (``LeakyTranscriptionService``: one ConversationTranscriber per
request, kept alive by a callback closure that captures it; automatic GC off), against the
local speech service in its own process (``leaky_workload.py`` here, the same pattern with the
SDK only, if the examples are missing). Each tool runs it the way its documentation says to:

- none:        ``python request_driver.py ...``
- handletrace: ``python -m handletrace run --report report.txt request_driver.py ...``
- tracemalloc: ``python -X tracemalloc=16 tracemalloc_run.py request_driver.py ...`` (the
  documentation's "top 10" and "traceback" recipes at exit)
- memray:      ``memray run --native -o run.bin request_driver.py ...``, then ``memray stats``,
  ``memray summary`` and ``memray transform csv --leaks`` (its leak view), timed separately
- handletrace-no-report: ``HANDLETRACE=1 HANDLETRACE_REPORT=none python request_driver.py ...``
  (tracking only: what the at-exit report and its diagnosis add to the handletrace row)

Wall time and peak RSS (the child's ``ru_maxrss``, spawned from a small launcher,
``_measure.py``) are ratios against ``none`` in the same round (rounds rotate the order;
medians reported). Then each tool's own output (everything it printed and wrote) is searched,
with the same patterns for every tool:

(a) shows native recognizers leaked: a line naming a recognizer or transcriber together with
    a native marker (``native``, ``ISpx...``, a ``.so`` frame, a ``*_create_*`` native entry);
(b) names the creation line: the service file with the line number of its
    ``ConversationTranscriber(`` call, in any of the usual forms (``file:N``,
    ``File "file", line N``, ``file;N``);
(c) explains the cycle: the word "cycle" and the name of the callback whose closure captures
    the transcriber both appear.

The creation line and the callback are read from the service's source (``ast``), not typed in.

    python benchmarks/bench_peers.py [--rounds 3] [--requests 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, rotated, write_json  # noqa: E402
from _service import ServiceProcess  # noqa: E402

HERE = Path(__file__).resolve().parent
# The seed's service as the project ships it (examples/), driven for N requests; this
# directory's leaky_workload.py (the same pattern, SDK only) if the examples are not there.
EXAMPLE_DRIVER = ROOT / "examples" / "request_driver.py"
EXAMPLE_SERVICE = ROOT / "examples" / "transcription_service.py"
OWN_WORKLOAD = HERE / "leaky_workload.py"
TRACEMALLOC_RUN = HERE / "tracemalloc_run.py"
MEASURE = HERE / "_measure.py"
TOOLS = ("none", "handletrace", "tracemalloc", "memray", "handletrace-no-report")

RECOGNIZER = re.compile(r"recogni[sz]er|transcriber", re.IGNORECASE)
NATIVE = re.compile(r"native|ISpx|\.so\b|\w_create_\w", re.IGNORECASE)


def workload(host: str, requests: int) -> Tuple[List[str], Path]:
    """The workload's command line and the file that creates the transcribers."""
    if EXAMPLE_DRIVER.exists() and EXAMPLE_SERVICE.exists():
        driver = [str(EXAMPLE_DRIVER), "--requests", str(requests), "--host", host]
        return driver, EXAMPLE_SERVICE
    return [str(OWN_WORKLOAD), host, str(requests)], OWN_WORKLOAD


def creation_site(source: Path) -> Tuple[int, str]:
    """The line of the leaky ``ConversationTranscriber(`` call, and the name of the callback
    whose closure captures the transcriber (the cycle), both read from ``source``."""
    tree = ast.parse(source.read_text())
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        line = None
        for node in ast.walk(function):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == (
                "ConversationTranscriber"
            ):
                line = node.lineno
        if line is None:
            continue
        for inner in function.body:
            if isinstance(inner, ast.FunctionDef) and any(
                isinstance(n, ast.Name) and n.id == "transcriber" for n in ast.walk(inner)
            ):
                return line, inner.name
    raise RuntimeError(f"{source.name}: no ConversationTranscriber captured by a callback")


def memray_command() -> Optional[List[str]]:
    exe = shutil.which("memray")
    if exe is not None:
        return [exe]
    try:
        import memray  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "memray"]


def native_works(memray: List[str], workdir: Path) -> bool:
    """Whether ``memray run --native`` works here (it needs libunwind support)."""
    probe = workdir / "probe.py"
    probe.write_text("print('ok')\n")
    result = subprocess.run(
        [*memray, "run", "--native", "-f", "-o", str(workdir / "probe.bin"), str(probe)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode == 0


def command(
    tool: str, host: str, requests: int, workdir: Path, memray: List[str], native: bool
) -> List[str]:
    args = workload(host, requests)[0]
    if tool in ("none", "handletrace-no-report"):
        return [sys.executable, *args]
    if tool == "handletrace":
        report = str(workdir / "handletrace-report.txt")
        return [sys.executable, "-m", "handletrace", "run", "--report", report, *args]
    if tool == "tracemalloc":
        return [sys.executable, "-X", "tracemalloc=16", str(TRACEMALLOC_RUN), *args]
    flags = ["--native"] if native else []
    return [*memray, "run", *flags, "-f", "-o", str(workdir / "memray.bin"), *args]


def run_child(argv: List[str], cwd: Path, env: Dict[str, str]) -> Dict[str, Any]:
    """Run ``argv`` through ``_measure.py``: wall seconds, the child's peak RSS, its output."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env)
    out, err, figures = cwd / "stdout.txt", cwd / "stderr.txt", cwd / "measure.json"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        subprocess.run(
            [sys.executable, str(MEASURE), str(figures), "--", *argv],
            stdout=stdout, stderr=stderr, cwd=cwd, env=environment, check=True,
        )  # fmt: skip
    measured = json.loads(figures.read_text())
    measured["output"] = out.read_text() + err.read_text()
    return measured


def memray_reports(memray: List[str], workdir: Path) -> Tuple[str, float]:
    """memray's text reports of the run (stats, summary, leaks as CSV) and their time."""
    results = str(workdir / "memray.bin")
    environment = {**os.environ, "COLUMNS": "240", "TERM": "dumb"}
    texts = []
    started = time.perf_counter()
    for argv in (
        [*memray, "stats", results],
        [*memray, "summary", "-r", "20", results],
        [*memray, "transform", "csv", "--leaks", "-f", "-o", str(workdir / "leaks.csv"), results],
    ):
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=600, env=environment,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        texts.append(done.stdout + done.stderr)
    seconds = time.perf_counter() - started
    leaks = workdir / "leaks.csv"
    if leaks.exists():
        texts.append(leaks.read_text())
    return "\n".join(texts), seconds


def tool_output(
    tool: str, run: Dict[str, Any], workdir: Path, memray: List[str]
) -> Tuple[str, float]:
    """Everything ``tool`` printed and wrote, and the time of any separate report step."""
    text = run["output"]
    if tool == "handletrace":
        report = workdir / "handletrace-report.txt"
        if report.exists():
            text += "\n" + report.read_text()
    if tool == "memray":
        extra, seconds = memray_reports(memray, workdir)
        return text + "\n" + extra, seconds
    return text, 0.0


QUESTIONS = ("native_recognizers_leaked", "names_creation_line", "explains_cycle")


def first_line(
    text: str, pattern: re.Pattern[str], also: Optional[re.Pattern[str]] = None
) -> Optional[str]:
    """The first line matching ``pattern`` (and ``also``): the parts around the matches."""
    for line in text.splitlines():
        found = pattern.search(line)
        other = also.search(line) if also is not None else found
        if found is None or other is None:
            continue
        windows: List[List[int]] = []
        for match in sorted({found, other}, key=lambda m: m.start()):
            start, end = max(0, match.start() - 40), min(len(line), match.end() + 100)
            if windows and start <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], end)
            else:
                windows.append([start, end])
        parts = [line[start:end].strip() for start, end in windows]
        head = "…" if windows[0][0] else ""
        tail = "…" if windows[-1][1] < len(line) else ""
        return head + " … ".join(parts) + tail
    return None


def findings(text: str, source: Path, line: int, callback: str) -> Dict[str, Optional[str]]:
    """The evidence (a line of output) for each question, or None."""
    site = re.compile(rf"{re.escape(source.name)}(?::|\", line |;){line}\b")
    cycle_word = re.compile(r"\bcycle\b", re.IGNORECASE)
    cycle = None
    if cycle_word.search(text) and callback in text:
        cycle = first_line(text, cycle_word)
    return {
        "native_recognizers_leaked": first_line(text, RECOGNIZER, NATIVE),
        "names_creation_line": first_line(text, site),
        "explains_cycle": cycle,
    }


def run(rounds: int, requests: int) -> Dict[str, Any]:
    memray = memray_command()
    source = workload("", requests)[1]
    line, callback = creation_site(source)
    results: Dict[str, Any] = {tool: {"runs": []} for tool in TOOLS}
    with tempfile.TemporaryDirectory() as tmp:
        native = memray is not None and native_works(memray, Path(tmp))
        tools = [t for t in TOOLS if t != "memray" or memray is not None]
        for index in range(rounds):
            for tool in rotated(tools, index):
                workdir = Path(tmp) / f"{tool}-{index}"
                workdir.mkdir()
                with ServiceProcess() as service:  # a fresh service for every run
                    argv = command(tool, service.host, requests, workdir, memray or [], native)
                    env = (
                        {"HANDLETRACE": "1", "HANDLETRACE_REPORT": "none"}
                        if tool == "handletrace-no-report"
                        else {}
                    )
                    outcome = run_child(argv, workdir, env)
                text, report_seconds = tool_output(tool, outcome, workdir, memray or [])
                outcome["report_seconds"] = report_seconds
                outcome["findings"] = findings(text, source, line, callback)
                outcome["output_chars"] = len(text)
                del outcome["output"]
                results[tool]["runs"].append(outcome)
    for tool in TOOLS:
        runs = results[tool]["runs"]
        if not runs:
            results[tool]["missing"] = "memray is not installed (pip install memray)"
            continue
        base = results["none"]["runs"]
        results[tool]["wall_ratio"] = statistics.median(
            r["seconds"] / b["seconds"] for r, b in zip(runs, base)
        )
        results[tool]["rss_ratio"] = statistics.median(
            r["peak_rss"] / b["peak_rss"] for r, b in zip(runs, base)
        )
        results[tool]["seconds"] = statistics.median(r["seconds"] for r in runs)
        results[tool]["peak_rss"] = statistics.median(r["peak_rss"] for r in runs)
        results[tool]["report_seconds"] = statistics.median(r["report_seconds"] for r in runs)
        results[tool]["exit_codes"] = sorted({r["exit_code"] for r in runs})
        results[tool]["findings"] = runs[-1]["findings"]
    return {
        "machine": machine(),
        "rounds": rounds,
        "requests": requests,
        "workload": " ".join(
            Path(a).name if "/" in a else a for a in workload("HOST", requests)[0]
        ),
        "creation_site": f"{source.name}:{line}",
        "callback": callback,
        "memray_native": native,
        "tools": results,
    }


def format_table(data: Dict[str, Any]) -> List[str]:
    mark = {True: "yes", False: "no"}
    lines = [
        f"Seed's leaky service (`{data['workload']}`), median of {data['rounds']} rounds "
        f"(memray {'with' if data['memray_native'] else 'without'} --native); the leaked "
        f"transcribers are created at `{data['creation_site']}`, the cycle goes through the "
        f"callback `{data['callback']}`:",
        "",
        "| tool | wall time | peak RSS | separate report step | (a) native recognizers "
        "leaked | (b) creation line | (c) explains the cycle |",
        "|---|---:|---:|---:|:---:|:---:|:---:|",
    ]
    for tool in TOOLS:
        row = data["tools"][tool]
        if "missing" in row:
            lines.append(f"| {tool} | {row['missing']} | | | | | |")
            continue
        found = row["findings"]
        cells = [mark[found[key] is not None] for key in QUESTIONS]
        report = f"{row['report_seconds']:.1f} s" if row["report_seconds"] else "–"
        lines.append(
            f"| {tool} | {row['wall_ratio']:.2f}× ({row['seconds']:.1f} s) "
            f"| {row['rss_ratio']:.2f}× ({row['peak_rss'] / 2**20:.0f} MB) | {report} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", "Evidence (first matching line of each tool's output):", ""]
    for tool in TOOLS[1:]:
        row = data["tools"][tool]
        for key, value in row.get("findings", {}).items():
            if value is not None:
                lines.append(f"- {tool}, {key.replace('_', ' ')}: `{value}`")
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    data = run(args.rounds, args.requests)
    print("\n".join(format_table(data)))
    write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
