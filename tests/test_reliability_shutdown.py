"""Reliability: interpreter shutdown with live handles under ``HANDLETRACE=1``.

At shutdown module globals are cleared and objects finalised in no particular order, while a
daemon thread may still be making handles. The report must still print, the exit code must
be the program's, and handletrace must add no "Exception ignored in" line to stderr (each
case also runs without handletrace as a control: the program itself prints none).
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path
from typing import Dict, List

import pytest

from . import subprocesses

PROGRAM = textwrap.dedent(
    """
    import gc
    import sys
    import threading
    import time

    import azure.cognitiveservices.speech as speechsdk
    from azure.cognitiveservices.speech import audio, transcription

    gc.disable()  # as in production: the leaked cycle is never collected before exit
    KEPT = []  # a module global: cleared, and its handles finalised, at interpreter shutdown


    def config():
        return speechsdk.SpeechConfig(subscription="not-a-key", region="westus")


    def leak_transcriber():
        transcriber = transcription.ConversationTranscriber(
            speech_config=config(),
            audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream()),
        )
        transcriber.transcribed.connect(lambda evt: KEPT.append((transcriber, evt)))


    def churn():  # still making and dropping handles while the interpreter shuts down
        while True:
            config()
            time.sleep(0.001)


    leak_transcriber()
    KEPT.append(speechsdk.SpeechRecognizer(
        speech_config=config(),
        audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream()),
    ))
    threading.Thread(target=churn, daemon=True).start()
    time.sleep(0.05)
    print("program done", flush=True)
    ENDING
    """
)

ENDINGS = {
    "normal exit": ("", 0),
    "sys.exit(3)": ("sys.exit(3)", 3),
    "uncaught exception": ("raise RuntimeError('program failed')", 1),
}


def run(tmp_path: Path, ending: str, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "program.py"
    path.write_text(PROGRAM.replace("ENDING", ending))
    return subprocesses.run_script(path, env)


def ignored_lines(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if "Exception ignored" in line]


def exception_lines(stderr: str) -> List[str]:
    """The "SomeError: message" lines of the tracebacks printed (none from handletrace)."""
    return re.findall(r"^\w+(?:Error|Exception|Exit)\b.*$", stderr, re.MULTILINE)


@pytest.mark.parametrize("case", list(ENDINGS))
def test_report_prints_at_shutdown_and_handletrace_adds_no_ignored_exception(
    tmp_path: Path, case: str
) -> None:
    """Live handles at exit: the report prints, the exit code is kept, no "Exception ignored"."""
    ending, code = ENDINGS[case]
    control = run(tmp_path, ending, {})
    traced = run(tmp_path, ending, {"HANDLETRACE": "1"})
    assert control.returncode == traced.returncode == code, traced.stderr
    assert traced.stdout == control.stdout == "program done\n"
    assert ignored_lines(control.stderr) == []
    assert ignored_lines(traced.stderr) == []
    assert "handletrace: " in traced.stderr and "live native handle" in traced.stderr
    assert "ConversationTranscriber" in traced.stderr
    assert "SpeechRecognizer" in traced.stderr
    assert exception_lines(traced.stderr) == exception_lines(control.stderr)


def test_report_to_a_file_at_shutdown_is_complete_json(tmp_path: Path) -> None:
    """HANDLETRACE_REPORT=file.json at shutdown: a complete JSON document, nothing on stderr."""
    import json

    out = tmp_path / "report.json"
    traced = run(tmp_path, "", {"HANDLETRACE": "1", "HANDLETRACE_REPORT": str(out)})
    assert traced.returncode == 0, traced.stderr
    assert ignored_lines(traced.stderr) == []
    report = json.loads(out.read_text())
    assert report["schema"] == "handletrace.report"
    owners = {handle["owner"] for group in report["groups"] for handle in group["handles"]}
    assert {"ConversationTranscriber", "SpeechRecognizer"} <= owners
