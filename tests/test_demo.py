"""`handletrace demo`: the leaky and the fixed service side by side."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from handletrace import cli
from handletrace._demo import format_chart, run_demo


def test_demo_shows_both_charts_the_table_and_the_cycle(capsys: pytest.CaptureFixture[str]) -> None:
    """`handletrace demo --requests 10` prints the two runs, the comparison and the report."""
    assert cli.main(["demo", "--requests", "10"]) == 0
    out = capsys.readouterr().out
    assert "WITHOUT PROPER CLEANUP (leaky service)" in out
    assert "WITH handletrace.disposing() (fixed service)" in out
    assert re.search(r"live native recognizers +0 -> 10 \(\+10\) +0 -> 0 \(\+0\)", out)
    assert "fixed service: no recognizer left alive: flat" in out
    assert "function on_canceled (closure cell 'transcriber')" in out


def test_demo_leaves_tracking_as_it_found_it() -> None:
    """The demo installs handletrace for its run only, and restores automatic GC."""
    import gc

    import handletrace

    assert run_demo(["--requests", "2", "--no-report"], io.StringIO()) == 0
    assert not handletrace.is_installed()
    assert gc.isenabled()


def test_demo_rejects_a_bad_request_count(capsys: pytest.CaptureFixture[str]) -> None:
    """A request count below 1 is one clear error, exit 2."""
    assert run_demo(["--requests", "0"]) == 2
    assert "--requests must be >= 1" in capsys.readouterr().err


def test_chart_has_one_column_per_request_up_to_its_width() -> None:
    """A growing series fills the chart like a staircase; zero stays empty."""
    chart = format_chart("live", [1, 2, 3, 4]).splitlines()
    assert chart[0] == "  live"
    assert chart[1].endswith("┤   █")
    assert chart[-2].endswith("└────")


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
