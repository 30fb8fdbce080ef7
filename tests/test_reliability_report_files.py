"""Reliability: the at-exit report file of ``HANDLETRACE_REPORT`` in multiprocessing programs,
next to other users and links (issue #18.5).

multiprocessing's spawn workers, its forkserver and its resource tracker inherit
``HANDLETRACE=1`` and exited writing their own, empty report over the program's (the
forkserver and the resource tracker exit after the program). Now a ``{pid}`` in the path
names each process's report; a process started by multiprocessing writes only if it
tracked a handle, and never over the program's report; every report is written whole
(temporary file, then rename), mode 0600, and a symbolic link at the path is refused.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

#: A program keeping one push stream alive at exit, running two workers that track nothing
#: (and, with ``child-tracks``, a third keeping a push stream of its own) in a given context.
PROGRAM = """
import multiprocessing, os, sys
import azure.cognitiveservices.speech as speechsdk

def square(n):
    return n * n

def keep_a_stream():
    global KEPT
    KEPT = speechsdk.audio.PushAudioInputStream()

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    kept = speechsdk.audio.PushAudioInputStream()
    targets = [square, square] + ([keep_a_stream] if sys.argv[2:] == ["child-tracks"] else [])
    for target in targets:
        worker = context.Process(target=target, args=(3,) if target is square else ())
        worker.start()
        worker.join()
        print("child", worker.pid, worker.exitcode)
    print("parent", os.getpid())
"""


def run_program(tmp_path: Path, report: str, *args: str) -> Dict[str, List[int]]:
    """Run PROGRAM under HANDLETRACE=1 with ``HANDLETRACE_REPORT=report``; the pids printed
    ("parent", "child"). Returns once every process holding its output has exited (the
    forkserver and the resource tracker too)."""
    if args[0] not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no multiprocessing start method {args[0]!r} on this platform")
    script = tmp_path / "program.py"
    script.write_text(PROGRAM, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    environment.update({"HANDLETRACE": "1", "HANDLETRACE_REPORT": report})
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "handletrace" not in result.stderr, result.stderr
    pids: Dict[str, List[int]] = {"parent": [], "child": []}
    for line in result.stdout.splitlines():
        who, pid = line.split()[:2]
        pids[who].append(int(pid))
    return pids


def reports_in(directory: Path) -> Dict[str, dict]:
    """Every file in ``directory`` but the program, read as JSON (a torn file fails here)."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.name != "program.py":
            text = path.read_text(encoding="utf-8")
            try:
                found[path.name] = json.loads(text)
            except ValueError:
                raise AssertionError(f"{path.name} is not JSON: {text[:200]!r}") from None
    return found


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_helper_processes_leave_the_programs_report_alone(tmp_path: Path, method: str) -> None:
    """Workers, the forkserver and the resource tracker that tracked nothing write no report:
    the one file at the path is the program's, with its live push stream."""
    out = tmp_path / "reports"
    out.mkdir()
    pids = run_program(tmp_path, str(out / "leaks.json"), method)
    reports = reports_in(out)
    assert list(reports) == ["leaks.json"], list(reports)
    report = reports["leaks.json"]
    assert (report["pid"], report["summary"]["live"]) == (pids["parent"][0], 1), report["summary"]


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_pid_placeholder_names_each_processs_report(tmp_path: Path, method: str) -> None:
    """``{pid}`` in the path is replaced by each writer's process id: the program's report is
    ``leaks-<its pid>.json`` and a helper that tracked nothing writes none."""
    out = tmp_path / "reports"
    out.mkdir()
    pids = run_program(tmp_path, str(out / "leaks-{pid}.json"), method)
    reports = reports_in(out)
    parent = pids["parent"][0]
    assert list(reports) == [f"leaks-{parent}.json"], (list(reports), pids)
    assert reports[f"leaks-{parent}.json"]["pid"] == parent


@pytest.mark.parametrize("report", ["leaks-{pid}.json", "leaks.json"])
def test_a_spawned_worker_that_tracked_a_handle_writes_its_own_report(
    tmp_path: Path, report: str
) -> None:
    """A spawn worker keeping a push stream at its exit writes its own report: at its
    ``{pid}`` path, or (no placeholder) at the path with ``.<pid>`` before the extension; the
    program's report stays the program's."""
    out = tmp_path / "reports"
    out.mkdir()
    pids = run_program(tmp_path, str(out / report), "spawn", "child-tracks")
    parent, tracker = pids["parent"][0], pids["child"][-1]
    reports = reports_in(out)
    if "{pid}" in report:
        expected = {f"leaks-{parent}.json": parent, f"leaks-{tracker}.json": tracker}
    else:
        expected = {"leaks.json": parent, f"leaks.{tracker}.json": tracker}
    assert {name: r["pid"] for name, r in reports.items()} == expected, pids
    assert [r["summary"]["live"] for r in reports.values()] == [1, 1]


def program_keeping_a_stream(tmp_path: Path) -> Path:
    script = tmp_path / "keep.py"
    script.write_text(
        "import azure.cognitiveservices.speech as speechsdk\n"
        "kept = speechsdk.audio.PushAudioInputStream()\n",
        encoding="utf-8",
    )
    return script


def run_keeping_a_stream(tmp_path: Path, report: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    environment.update({"HANDLETRACE": "1", "HANDLETRACE_REPORT": str(report)})
    return subprocess.run(
        [sys.executable, str(program_keeping_a_stream(tmp_path))],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        # A permissive umask: the report's mode must not depend on the user's.
        preexec_fn=lambda: os.umask(0o022) and None,
    )


def test_the_report_file_is_private_to_its_owner(tmp_path: Path) -> None:
    """The report (stack traces, source lines) is created with mode 0600, and an existing
    world-readable file at the path is replaced by a private one."""
    report = tmp_path / "leaks.json"
    report.write_text("old", encoding="utf-8")
    report.chmod(0o644)
    result = run_keeping_a_stream(tmp_path, report)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    mode = stat.S_IMODE(report.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert json.loads(report.read_text(encoding="utf-8"))["summary"]["live"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_symbolic_link_at_the_report_path_is_not_followed(tmp_path: Path) -> None:
    """A link at the report path: the file it points to is untouched, the link stays, and
    stderr has one line saying why and what to do."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours", encoding="utf-8")
    link = tmp_path / "leaks.json"
    link.symlink_to(target)
    result = run_keeping_a_stream(tmp_path, link)
    assert result.returncode == 0, result.stderr
    assert target.read_text(encoding="utf-8") == "not yours"
    assert link.is_symlink()
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "symbolic link" in lines[0], lines
    assert "HANDLETRACE_REPORT" in lines[0], lines


def test_handletrace_run_writes_its_report_file_as_the_environment_does(tmp_path: Path) -> None:
    """``handletrace run --report``: the file is private (0600), written whole, and a link at
    the path is refused with one line and exit 2, the file it points to untouched."""
    script = tmp_path / "keep.py"
    script.write_text(
        "import azure.cognitiveservices.speech as speechsdk\n"
        "KEPT = speechsdk.audio.PushAudioInputStream()\n",
        encoding="utf-8",
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}

    def run(report: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "handletrace", "run", "--report", str(report), str(script)],
            capture_output=True,
            text=True,
            env=environment,
            cwd=tmp_path,
            timeout=120,
            preexec_fn=lambda: os.umask(0o022) and None,
        )

    report = tmp_path / "leaks.json"
    result = run(report)
    assert result.returncode == 0, result.stdout + result.stderr
    mode = stat.S_IMODE(report.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert json.loads(report.read_text(encoding="utf-8"))["summary"]["live"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours", encoding="utf-8")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    result = run(link)
    print(result.stdout, result.stderr)
    assert result.returncode == 2, result.stdout + result.stderr
    assert target.read_text(encoding="utf-8") == "not yours"
    assert [line for line in result.stderr.splitlines() if "symbolic link" in line], result.stderr
