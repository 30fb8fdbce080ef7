"""Reliability: a subscription key or token never appears in anything handletrace writes.

The program below passes a recognisable fake key and token every way the SDK takes them, as
literals on the very lines that create handles (so source lines shown in stacks must be
masked), captured in a callback closure, and as the key of a dict that holds a recognizer
(so a reference path would name it). A recognizer made from the same secrets is then
stopped synchronously and released on an event loop called with the key as an argument:
with ``slow_release=0`` those are recorded, so the blocking section has their sites and
stacks. Then every output is searched for both strings: text, JSON and HTML reports (their
blocking and native sections included), the diagnosis, drawn cycles, stacks, access records,
counted errors, ``handletrace run`` (report, timeline), ``handletrace report`` and the pytest
plugin.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
from html import escape
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import handletrace
from handletrace import cli
from handletrace._core.state import TRACKER
from handletrace._report.html import format_html

from . import subprocesses

pytest_plugins = ["pytester"]

KEY = "FAKEKEY-7f3a9c0d41e2-SECRET"
TOKEN = "FAKETOKEN-b41e59d2aa07-SECRET"
SECRETS = (KEY, TOKEN)

# Handle-creating lines with the secrets on them, as long as people write them.
TRANSCRIBER_LINE = (
    "transcriber = transcription.ConversationTranscriber(speech_config=speechsdk.SpeechConfig("
    f'subscription="{KEY}", region="westus"), audio_config=push())'
)
RECOGNIZER_LINE = (
    "recognizer = speechsdk.SpeechRecognizer(speech_config=speechsdk.SpeechConfig("
    f'auth_token="{TOKEN}", region="westus"), audio_config=push())'
)
PROGRAM = (
    textwrap.dedent(
        f"""
    import asyncio
    import gc
    import sys

    import azure.cognitiveservices.speech as speechsdk
    from azure.cognitiveservices.speech import audio, transcription

    SESSIONS = {{}}  # keyed by subscription key: a reference path from here would name it
    SEGMENTS = []


    def push():
        return audio.AudioConfig(stream=audio.PushAudioInputStream())


    def make_session():
        config = speechsdk.SpeechConfig(subscription="{KEY}", region="westus")
        config.authorization_token = "{TOKEN}"
        TRANSCRIBER_LINE
        credentials = {{"subscription": "{KEY}", "{KEY}": "{TOKEN}"}}

        def on_transcribed(evt, key="{KEY}", token=credentials):
            SEGMENTS.append((transcriber, evt, key, token))  # the seed's closure cycle

        transcriber.transcribed.connect(on_transcribed)
        RECOGNIZER_LINE
        recognizer.authorization_token = "{TOKEN}"
        SESSIONS["{KEY}"] = (recognizer, config)


    async def on_the_loop(subscription_key):
        RECOGNIZER_LINE
        recognizer.stop_continuous_recognition()  # a synchronous call on the loop
        del recognizer  # released on the loop


    def main():
        gc.disable()
        for _ in range(2):
            make_session()
        asyncio.run(on_the_loop(subscription_key="{KEY}"))
        print("served")


    if __name__ == "__main__":
        main()
    """
    )
    .replace("TRANSCRIBER_LINE", TRANSCRIBER_LINE)
    .replace("RECOGNIZER_LINE", RECOGNIZER_LINE)
)
#: Every release and call is recorded as blocking (the threshold is 0 s).
EVERY_RELEASE = {"HANDLETRACE_SLOW_RELEASE": "0"}


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} found in {where}"
        assert secret.lower() not in text.lower(), f"{secret} (any case) found in {where}"


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "service.py"
    path.write_text(PROGRAM)
    return path


@pytest.fixture
def sessions(program: Path, installed: None, no_gc: None) -> Iterator[Any]:
    """The program's sessions made in this process, with handletrace installed."""
    spec = importlib.util.spec_from_file_location("secret_service", program)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module.make_session()
        module.make_session()
        yield module, caught
    module.SESSIONS.clear()
    module.SEGMENTS.clear()


def test_no_secret_in_reports_diagnosis_stacks_or_access_records(sessions: Any) -> None:
    """In-process: every rendering of every record of the program's handles."""
    module, caught = sessions
    snapshot = handletrace.snapshot()
    assert len(snapshot.records) == 8  # 2 leaked transcribers, 1 recognizer + its config
    report = handletrace.build_report(snapshot, diagnose=True)
    text, data = io.StringIO(), io.StringIO()
    handletrace.report(text, snap=snapshot)
    handletrace.report(data, "json", snap=snapshot)
    outputs = {
        "text report": text.getvalue(),
        "JSON report": data.getvalue(),
        "HTML report": format_html(report),
        "diagnosis": repr(handletrace.diagnose(snapshot)),
        "records": "\n".join(repr(record) for record in snapshot.records),
        "stacks": "\n".join("\n".join(record.traceback.format()) for record in snapshot.records),
        "counted errors": "\n".join(TRACKER.registry.last_errors),
        "warnings": "\n".join(str(w.message) for w in caught),
    }
    owners = [record.owner_ref() for record in snapshot.records]
    outputs["access records"] = "\n".join(
        str(access) for owner in owners if owner is not None
        for access in handletrace.analysis.access_records(owner)
    )  # fmt: skip
    cycles = [handletrace.analysis.find_cycle(owner) for owner in owners if owner is not None]
    outputs["drawn cycles"] = "\n".join(
        handletrace.analysis.to_dot(c) for c in cycles if c is not None
    )
    assert "ConversationTranscriber" in outputs["text report"]
    assert "speech_config" in outputs["JSON report"]
    assert "SpeechConfig(subscription=" in outputs["stacks"]  # the masked creation line
    assert outputs["drawn cycles"] != ""
    for where, output in outputs.items():
        assert_no_secret(where, output)


def test_no_secret_in_the_blocking_and_native_sections(program: Path) -> None:
    """The blocking section (sites, stacks, findings, releases of the secret-made objects on
    an event loop) and the native section, in text, JSON and HTML: no secret."""
    spec = importlib.util.spec_from_file_location("secret_service_loop", program)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handletrace.install(slow_release=0)
    asyncio.run(module.on_the_loop(subscription_key=KEY))
    report = handletrace.build_report()
    blocking = report.blocking
    assert blocking is not None and blocking.findings, blocking
    calls = [site for site in blocking.sites if site.what == "call"]
    assert [site.name for site in calls] == ["SpeechRecognizer.stop_continuous_recognition()"]
    lines = [frame.line for site in blocking.sites for frame in (*site.site, *site.created)]
    assert "del recognizer  # released on the loop" in lines, lines
    assert any("SpeechConfig(auth_token='***'" in line for line in lines), lines
    text, data = io.StringIO(), io.StringIO()
    handletrace.report(text)
    handletrace.report(data, "json")
    assert "blocking: " in text.getvalue(), text.getvalue()
    assert report.native is not None and "threads" in data.getvalue()
    outputs = {
        "text report": text.getvalue(),
        "JSON report": data.getvalue(),
        "HTML report": format_html(report),
        "blocking events": repr(handletrace.blocking()),
    }
    for where, output in outputs.items():
        assert_no_secret(where, output)


def assert_html_shows_the_leaked_transcriber(page: str, program: Path) -> None:
    """The page names the transcriber's kind and its creation line (source masked)."""
    line = PROGRAM.splitlines().index(f"    {TRANSCRIBER_LINE}") + 1
    where = escape(str(program))
    assert f'created at <span class="where">{where}:{line} in <code>make_session</code>' in page
    assert f'<span class="frame-user">  File "{where}", line {line}, in make_session' in page
    assert '<td class="l mono">recognizer</td><td class="l">ConversationTranscriber</td>' in page
    masked = "ConversationTranscriber(speech_config=speechsdk.SpeechConfig(subscription=&#x27;***"
    assert masked in page


def test_report_as_html_shows_the_leak_and_no_secret(sessions: Any, program: Path) -> None:
    """handletrace.report(format="html") writes the page the CLI draws, without the secrets."""
    out = io.StringIO()
    data = handletrace.report(out, "html")
    page = out.getvalue()
    assert page.startswith("<!DOCTYPE html>\n")
    assert data.live == 8
    assert_html_shows_the_leaked_transcriber(page, program)
    assert_no_secret("report(format='html')", page)


@pytest.mark.parametrize(
    "environment, written",
    [
        ({"HANDLETRACE_REPORT": "leaks.html"}, "leaks.html"),
        ({"HANDLETRACE_REPORT": "leaks.out", "HANDLETRACE_REPORT_FORMAT": "html"}, "leaks.out"),
    ],
)
def test_html_report_at_exit_shows_the_leak_and_no_secret(
    program: Path, environment: Dict[str, str], written: str
) -> None:
    """HANDLETRACE=1 with an .html report path, or HANDLETRACE_REPORT_FORMAT=html: the page."""
    result = subprocesses.run_script(
        program, {"HANDLETRACE": "1", **EVERY_RELEASE, **environment}
    )
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("served\n", "")
    page = (program.parent / written).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>\n")
    assert "<h2>What blocked</h2>" in page
    assert_html_shows_the_leaked_transcriber(page, program)
    assert_no_secret(f"the at-exit HTML report {written}", page)


def run_cli(argv: List[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    environment.update(EVERY_RELEASE)
    return subprocess.run(
        [sys.executable, "-m", "handletrace", *argv],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=180,
    )


def test_no_secret_in_anything_handletrace_run_and_report_write(
    program: Path, tmp_path: Path
) -> None:
    """``handletrace run`` (text, JSON and HTML reports, timeline) and ``handletrace report``."""
    outputs = {}
    text = run_cli(["run", str(program)], tmp_path)
    assert text.returncode == 0, text.stderr
    outputs["run: stdout"] = text.stdout
    outputs["run: stderr (text report)"] = text.stderr
    for suffix in ("json", "html"):
        result = run_cli(["run", "--report", f"report.{suffix}", str(program)], tmp_path)
        assert result.returncode == 0, result.stderr
        outputs[f"run: {suffix} report"] = (tmp_path / f"report.{suffix}").read_text()
        outputs[f"run: {suffix} stderr"] = result.stderr
    timeline = run_cli(["run", "--timeline", "timeline.json", str(program)], tmp_path)
    assert timeline.returncode == 0, timeline.stderr
    outputs["run: timeline"] = (tmp_path / "timeline.json").read_text()
    renderings = {"report.json": ("text", "json", "html"), "timeline.json": ("text", "svg", "html")}
    for source, formats in renderings.items():
        for form in formats:
            out = tmp_path / f"rendered-{source}.{form}"
            code = cli.main(["report", str(tmp_path / source), "--format", form, "-o", str(out)])
            assert code in (0, 3)
            outputs[f"report {source} as {form}"] = out.read_text()
    assert "ConversationTranscriber" in outputs["run: stderr (text report)"]
    assert "blocking: " in outputs["run: stderr (text report)"]
    assert json.loads(outputs["run: json report"])["blocking"]["sites"]
    for where, output in outputs.items():
        assert_no_secret(where, output)


def test_no_secret_in_the_pytest_plugin_failure_report(
    pytester: pytest.Pytester, program: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test that leaks the program's sessions (and releases a recognizer on a loop) fails
    with a report, blocking part included, that shows no secret."""
    pytester.makepyfile(
        service=program.read_text(),
        test_leak=f"""
        import asyncio

        import service

        def test_leaks():
            service.make_session()
            asyncio.run(service.on_the_loop(subscription_key="{KEY}"))
        """,
    )
    monkeypatch.setenv("HANDLETRACE_SLOW_RELEASE", "0")
    result = pytester.runpytest_subprocess("--handletrace", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = "\n".join(result.outlines + result.errlines)
    assert "ConversationTranscriber" in output
    assert "blocking: " in output
    assert_no_secret("pytest plugin output", output)
