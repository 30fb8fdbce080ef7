"""One heap scan per report, whatever the number of outputs: every front end builds the report
once and renders each of its outputs from that build. Counted with the diagnoses the tracker
announces (``TRACKER.on_diagnosis``: one per heap scan), in real runs."""

from __future__ import annotations

import io
import json
import os
import textwrap
from pathlib import Path
from typing import Any, Iterator, List

import pytest

import handletrace
from handletrace._core.state import TRACKER
from handletrace.cli import main

from . import subprocesses
from .test_pytest_plugin import PLUGIN, QUIET_PLUGINS, make_suite

pytest_plugins = ["pytester"]

PROGRAMS = Path(__file__).parent / "programs"
LEAKY = str(PROGRAMS / "leaky_service.py")


@pytest.fixture
def diagnoses() -> Iterator[List[Any]]:
    """The diagnoses made while the test runs (each one heap scan)."""
    seen: List[Any] = []
    TRACKER.on_diagnosis.append(seen.append)
    try:
        yield seen
    finally:
        TRACKER.on_diagnosis.remove(seen.append)


@pytest.fixture(autouse=True)
def _no_handletrace_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`handletrace run` applies the HANDLETRACE_* variables: in-process runs see none."""
    kept = ("HANDLETRACE_EXPECT_EXTENSION", "HANDLETRACE_NO_EXTENSIONS")
    for name in list(os.environ):
        if name.startswith("HANDLETRACE") and name not in kept:
            monkeypatch.delenv(name)


def test_run_with_a_json_report_scans_once_for_the_file_and_the_summary(
    tmp_path: Path, diagnoses: List[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """`handletrace run --report x.json`: the JSON file and the summary line on stderr come
    from one diagnosis."""
    out = tmp_path / "x.json"
    assert main(["run", "--report", str(out), LEAKY, "3", "0"]) == 0
    err = capsys.readouterr().err
    data = json.loads(out.read_text())
    assert len(diagnoses) == 1, f"{len(diagnoses)} heap scans"
    assert data["summary"]["live"] == 6, data["summary"]
    assert f"handletrace: 6 live handles in 1 group; report written to {out}" in err, err


def test_report_then_render_in_other_formats_scans_once(
    installed: None, no_gc: None, diagnoses: List[Any]
) -> None:
    """handletrace.report() then handletrace.render() in JSON and HTML: one heap scan, and
    the JSON is the data report() returned."""
    import azure.cognitiveservices.speech as speechsdk

    config = speechsdk.SpeechConfig(subscription="FAKEKEY-BUILDS-001", region="westus")
    text, as_json, as_html = io.StringIO(), io.StringIO(), io.StringIO()
    data = handletrace.report(text)
    handletrace.render(data, as_json, "json")
    handletrace.render(data, as_html, "html")
    assert len(diagnoses) == 1, f"{len(diagnoses)} heap scans"
    assert json.loads(as_json.getvalue()) == json.loads(json.dumps(data.to_dict()))
    assert text.getvalue().startswith("handletrace: 2 live native handles"), text.getvalue()
    assert as_html.getvalue().lstrip().lower().startswith("<!doctype html"), as_html.getvalue()[:80]
    del config


AT_EXIT_SCRIPT = textwrap.dedent(
    """
    import gc, sys
    gc.disable()
    import azure.cognitiveservices.speech as speechsdk
    from handletrace._core.state import TRACKER

    TRACKER.on_diagnosis.append(lambda diagnosis: sys.stderr.write("HEAP SCAN\\n"))
    CONFIG = speechsdk.SpeechConfig(subscription="FAKEKEY-BUILDS-002", region="westus")
    print("script done")
    """
)


def test_at_exit_report_to_a_file_scans_once(tmp_path: Path) -> None:
    """HANDLETRACE_REPORT=x.json: the file comes from one heap scan (and stderr stays quiet)."""
    out = tmp_path / "x.json"
    path = tmp_path / "service.py"
    path.write_text(AT_EXIT_SCRIPT)
    result = subprocesses.run_script(path, {"HANDLETRACE": "1", "HANDLETRACE_REPORT": str(out)})
    assert result.returncode == 0, result.stderr
    assert result.stderr == "HEAP SCAN\n", result.stderr
    assert json.loads(out.read_text())["summary"]["live"] == 2


def test_at_exit_report_on_stderr_scans_once(tmp_path: Path) -> None:
    """HANDLETRACE=1 with the text report on stderr: one heap scan."""
    path = tmp_path / "service.py"
    path.write_text(AT_EXIT_SCRIPT)
    result = subprocesses.run_script(path, {"HANDLETRACE": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("HEAP SCAN") == 1, result.stderr
    assert "handletrace: 2 live native handles in 1 group" in result.stderr, result.stderr


def test_pytest_plugin_scans_once_per_failure_section_and_once_for_the_session_report(
    pytester: pytest.Pytester, diagnoses: List[Any]
) -> None:
    """With --handletrace and a JSON session report: each leaking test's failure section is one
    heap scan; the session's JSON report (nothing alive by then) needs none."""
    make_suite(
        pytester,
        """
        def test_leaky_one():
            leaky_transcriber()

        def test_leaky_two():
            leaky_transcriber()
        """,
    )
    out = pytester.path / "session.json"
    result = pytester.runpytest(
        *PLUGIN, *QUIET_PLUGINS, "--handletrace", f"--handletrace-report={out}"
    )
    result.assert_outcomes(failed=2)
    assert len(diagnoses) == 2, f"{len(diagnoses)} heap scans"
    assert json.loads(out.read_text())["summary"]["live"] == 0
