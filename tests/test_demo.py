"""`handletrace demo`: the leaky and the fixed service side by side."""

from __future__ import annotations

import gc
import io
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Tuple

import pytest

import handletrace
from handletrace import cli
from handletrace.cli.demo import (
    METRICS,
    Measurement,
    RunResult,
    format_metric_charts,
    format_verdict,
    run_demo,
)

RECOGNIZERS = METRICS[0]


def run(label: str, recognizers: list, *, threads: int = 3, sockets: int = 3) -> RunResult:
    """A run of len(recognizers) - 1 requests; element 0 is the baseline."""
    measurements = [
        Measurement(n, threads + 2 * n, sockets + n, 1000 + 100 * n, 5000, 0) for n in recognizers
    ]
    return RunResult(label, measurements[0], tuple(measurements[1:]), 1.0, 0)


def test_demo_shows_both_charts_the_table_and_the_cycle(capsys: pytest.CaptureFixture[str]) -> None:
    """`handletrace demo --requests 10` draws leaky and fixed side by side, the table, the cycle."""
    assert cli.main(["demo", "--requests", "10"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(
        "WITHOUT PROPER CLEANUP (leaky service)" in line and "WITH handletrace.disposing()" in line
        for line in lines
    )
    for title in ("live native recognizers", "native threads", "open sockets", "memory (RSS)"):
        assert any(f"{title}: leaky" in line and f"{title}: fixed" in line for line in lines)
    assert re.search(r"live native recognizers +0 -> 10 \(\+10\) +0 -> 0 \(\+0\)", out)
    assert re.search(r"leaky service, per request: \+1\.00 live recognizers, \+2\.00 native", out)
    assert "fixed service: flat." in out
    # Why the fixed service is slower per request: it pays the native teardown in the request.
    assert re.search(r"its native teardown, \d+ ms of \d+ ms: dispose\(\) closes", out), out
    assert re.search(r"leaves that to the collector: \d+ ms\n *for its 10 transcribers", out), out
    assert "function on_transcribed (closure cell 'transcriber')" in out


def test_demo_leaves_tracking_and_gc_as_it_found_them() -> None:
    """The demo installs handletrace for its run only, and restores automatic GC."""
    assert run_demo(["--requests", "2", "--no-report"], io.StringIO()) == 0
    assert not handletrace.is_installed()
    assert gc.isenabled()


def test_demo_writes_the_timeline_it_was_asked_for(tmp_path: Path) -> None:
    """--timeline PATH.svg records live handles and RSS over the demo as an SVG."""
    path = tmp_path / "demo.svg"
    out = io.StringIO()
    assert run_demo(["--requests", "2", "--no-report", "--timeline", str(path)], out) == 0
    assert path.read_text().startswith("<svg ")
    assert f"timeline (svg) written to {path}" in out.getvalue()


def test_demo_rejects_a_bad_request_count(capsys: pytest.CaptureFixture[str]) -> None:
    """A request count below 1 is one clear error, exit 2."""
    assert run_demo(["--requests", "0"]) == 2
    assert "--requests must be >= 1" in capsys.readouterr().err


def test_charts_of_one_metric_share_one_axis() -> None:
    """The fixed chart is drawn on the leaky chart's scale, so flat looks flat."""
    leaky, fixed = run("leaky", [0, 1, 2, 3, 4]), run("fixed", [0, 0, 0, 0, 0])
    lines = format_metric_charts(RECOGNIZERS, leaky, fixed, width=4).splitlines()
    assert lines[0].split() == ["live", "native", "recognizers:", "leaky"] + [
        "live",
        "native",
        "recognizers:",
        "fixed",
    ]
    rows = lines[2:10]  # the chart rows, top (4) to bottom, of both charts
    assert rows[0].startswith("  4 ┤   █")  # the leaky run reaches the top of the axis
    assert rows[0].endswith("4 ┤")  # the fixed chart's axis tops at 4 too ...
    assert all(row.endswith(("┤", "│")) for row in rows)  # ... and nothing is drawn above 0


def test_verdict_gives_the_leak_per_request() -> None:
    """Growth over the leaky run divided by its requests, per measurement."""
    text = format_verdict(run("leaky", [0, 1, 2, 3, 4]), run("fixed", [0, 0, 0, 0, 0]))
    assert "per request: +1.00 live recognizers, +2.00 native threads, +1.00 sockets," in text
    assert "+0 KiB native heap" in text
    assert "fixed service: flat." in text


def test_verdict_says_when_the_fixed_run_is_not_flat() -> None:
    """A recognizer alive after a fixed request is reported, never called flat."""
    text = format_verdict(run("leaky", [0, 1, 2]), run("fixed", [0, 1, 0]))
    assert "fixed service: NOT flat: recognizers +0 (at most 1 alive)" in text
    assert "flat." not in text


def test_demo_in_a_subprocess_exits_cleanly() -> None:
    """python -m handletrace demo: exit 0, no native abort, no 'Exception ignored'."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    result = subprocess.run(
        [sys.executable, "-m", "handletrace", "demo", "--requests", "20"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "FATAL" not in result.stdout + result.stderr
    assert "Exception ignored" not in result.stderr
    assert "0 -> 20 (+20)" in result.stdout


ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "transcription_service.py"


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` containing ``text``."""
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def installed_wheel(tmp_path: Path) -> Tuple[Path, Path]:
    """A fresh virtual environment with handletrace installed from a wheel built from this
    checkout (SDK, wrapt and websockets from the test environment): its bin directory and
    its site-packages."""
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"

    def run(*command: object) -> str:
        result = subprocess.run(
            [str(c) for c in command], capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        return result.stdout

    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT)
    run(sys.executable, "-m", "venv", venv)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    site_packages = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    )
    # The test environment's packages come after the venv's own (path lines of a .pth file:
    # the .pth files there, such as an editable install's of handletrace, are not read).
    paths = dict.fromkeys(sysconfig.get_path(name) for name in ("purelib", "platlib"))
    (site_packages / "test_environment.pth").write_text("\n".join(paths) + "\n")
    (wheel,) = wheels.glob("handletrace-*.whl")
    # --ignore-installed: the test environment may have handletrace installed too (CI does).
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q",
        wheel)
    return bin_dir, site_packages


def test_installed_demo_blames_the_example_services_lines(tmp_path: Path) -> None:
    """`handletrace demo` from an installed wheel, where the example service ships inside the
    handletrace package, says where the service created and connected its transcribers (not
    bin/handletrace)."""
    if not (ROOT / "pyproject.toml").exists() or not EXAMPLE.exists():
        pytest.skip("needs the source checkout (pyproject.toml, examples/) to build a wheel")
    bin_dir, site_packages = installed_wheel(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    result = subprocess.run(
        [str(bin_dir / "handletrace"), "demo", "--requests", "3"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    service = site_packages / "handletrace" / "_example_service.py"  # the installed copy
    created = line_of(EXAMPLE, "speechsdk.transcription.ConversationTranscriber(")
    connected = line_of(EXAMPLE, "transcriber.transcribed.connect(on_transcribed)")
    groups = re.findall(r"handles created at (\S+):(\d+) in (\S+)", out)
    assert [(Path(path), int(line), name) for path, line, name in groups] == [
        (service, created, "process_audio")
    ], out
    assert f"{service}:{connected}  connect transcribed" in out, out
    assert "bin/handletrace:" not in out, out  # no line blamed on the console script
