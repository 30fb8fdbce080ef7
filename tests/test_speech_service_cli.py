"""Specification of ``python -m handletrace.testing``: its options for streaming, synthesis
and teardown (the basics are in test_speech_service.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import wave
from io import BytesIO
from typing import Any, Iterator, List

import azure.cognitiveservices.speech as speechsdk
import pytest

from handletrace.testing import (
    DEFAULT_SCRIPT,
    Phrase,
    Script,
    ServerClose,
    Synthesis,
    Teardown,
)
from handletrace.testing.__main__ import parse_script

from .speech_fixtures import run_streaming, synthesize, write_audio


def test_no_options_give_the_default_script() -> None:
    """Without options the service answers with DEFAULT_SCRIPT."""
    assert parse_script([]) == DEFAULT_SCRIPT


def test_recognition_options() -> None:
    """--phrase, --repeat, --phrase-duration, --end-silence and --at-end-of-audio make the
    script's phrases and streaming settings."""
    script = parse_script(
        [
            "--phrase",
            "one",
            "--phrase",
            "two",
            "--repeat",
            "--phrase-duration",
            "0.5",
            "--end-silence",
            "0.2",
            "--at-end-of-audio",
        ]
    )
    assert script == Script(
        phrases=(Phrase("one"), Phrase("two")),
        repeat=True,
        phrase_duration=0.5,
        end_silence=0.2,
        streaming=False,
    )


def test_delay_and_synthesis_options() -> None:
    """--start-delay, --message-delay, --synthesis-audio and --word-seconds."""
    script = parse_script(
        [
            "--start-delay",
            "0.1",
            "--message-delay",
            "0.2",
            "--synthesis-audio",
            "silence",
            "--word-seconds",
            "0.5",
        ]
    )
    assert (script.start_delay, script.message_delay, script.synthesis) == (
        0.1,
        0.2,
        Synthesis(audio="silence", word_seconds=0.5),
    )


def test_teardown_options() -> None:
    """The teardown options make the script's Teardown."""
    script = parse_script(
        [
            "--end-delay",
            "1",
            "--never-answer-close",
            "--close-delay",
            "2",
            "--server-close",
            "result",
            "--server-close-code",
            "1011",
            "--server-close-delay",
            "0.5",
            "--server-close-abort",
        ]
    )
    assert script.teardown == Teardown(
        end_delay=1.0,
        answer_close=False,
        close_delay=2.0,
        server_close=ServerClose("result", 1011, delay=0.5, abort=True),
    )


def test_never_answer_end() -> None:
    """--never-answer-end turns answer_end off."""
    assert parse_script(["--never-answer-end"]).teardown == Teardown(answer_end=False)


@pytest.mark.parametrize(
    "argv",
    [
        ["--close-delay", "-1"],
        ["--end-silence", "nan"],
        ["--word-seconds", "soon"],
        ["--server-close", "never"],
        ["--server-close", "result", "--server-close-code", "99"],
        ["--synthesis-audio", "noise"],
    ],
)
def test_bad_values_exit_with_status_2(argv: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A bad option value is a usage error naming the problem, not a traceback."""
    with pytest.raises(SystemExit) as exit_info:
        parse_script(argv)
    assert (exit_info.value.code, "error:" in capsys.readouterr().err) == (2, True)


class _ServiceAt:
    """Stands in for a SpeechService running in another process."""

    def __init__(self, host: str) -> None:
        self.host = host


@pytest.fixture(scope="module")
def cli_service() -> Iterator[_ServiceAt]:
    """``python -m handletrace.testing`` with repeated phrases and silent synthesis."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "handletrace.testing",
            "--phrase",
            "one",
            "--phrase",
            "two",
            "--repeat",
            "--synthesis-audio",
            "silence",
            "--word-seconds",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        yield _ServiceAt(process.stdout.readline().strip())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_cli_streams_repeated_phrases(cli_service: _ServiceAt) -> None:
    """--repeat: a 5 s stream gets one, two, one, two (the last under way when it ends)."""
    _, log = run_streaming(cli_service, lambda stream, log: write_audio(stream, 5.0))
    assert [text for text, *_ in log.named("recognized")] == ["one", "two", "one", "two"]


def test_cli_synthesizes_silence(cli_service: _ServiceAt) -> None:
    """--synthesis-audio silence --word-seconds 0.5: two words are 1 s of zero samples."""
    [result], _ = synthesize(cli_service, ["two words"])
    with wave.open(BytesIO(result.audio)) as wav:
        frames: Any = wav.readframes(wav.getnframes())
    assert (result.reason, frames) == (
        speechsdk.ResultReason.SynthesizingAudioCompleted,
        bytes(32_000),
    )
