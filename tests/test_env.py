"""HANDLETRACE=1 activation: validated variables, the .pth hook and the at-exit report."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Dict

import pytest

from handletrace._env import EnvSettings, settings_from_env

from . import subprocesses

LEAKY_SCRIPT = textwrap.dedent(
    """
    import azure.cognitiveservices.speech as speechsdk
    from azure.cognitiveservices.speech import audio, transcription

    def process_audio(segments):
        transcriber = transcription.ConversationTranscriber(
            speech_config=speechsdk.SpeechConfig(subscription="FAKEKEY-ENV-0001", region="westus"),
            audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream()),
        )
        transcriber.transcribed.connect(lambda evt: segments.append((transcriber, evt)))

    import gc
    gc.disable()
    process_audio([])
    print("script done")
    """
)


def run_script(
    tmp_path: Path, env: Dict[str, str], script: str = LEAKY_SCRIPT
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "service.py"
    path.write_text(script)
    return subprocesses.run_script(path, env)


@pytest.mark.parametrize("value", ["1", "true", "YES", "on", " 1 "])
def test_truthy_values_enable(value: str) -> None:
    """Accepted spellings of 'on' enable tracking."""
    settings, problems = settings_from_env({"HANDLETRACE": value})
    assert (settings.enabled, problems) == (True, [])


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off"])
def test_falsy_values_disable(value: str) -> None:
    """Accepted spellings of 'off' leave tracking off without a warning."""
    settings, problems = settings_from_env({"HANDLETRACE": value})
    assert (settings.enabled, problems) == (False, [])


def test_defaults_when_nothing_is_set() -> None:
    """No variables: tracking off, documented defaults."""
    assert settings_from_env({}) == (EnvSettings(), [])


def test_all_variables_are_read() -> None:
    """Every documented variable is honoured."""
    settings, problems = settings_from_env(
        {
            "HANDLETRACE": "1",
            "HANDLETRACE_STACK_DEPTH": "4",
            "HANDLETRACE_STACK_SAMPLE": "10",
            "HANDLETRACE_KINDS": "recognizer, property_bag",
            "HANDLETRACE_REPORT": "/tmp/leaks.json",
            "HANDLETRACE_STALE_AFTER": "300",
        }
    )
    assert problems == []
    assert settings == EnvSettings(
        enabled=True,
        stack_depth=4,
        stack_sample=10,
        kinds=frozenset({"recognizer", "property_bag"}),
        report="/tmp/leaks.json",
        report_format="json",
        stale_after=300.0,
    )


@pytest.mark.parametrize("value, seconds", [("300", 300.0), ("2.5", 2.5), (" 0.25 ", 0.25)])
def test_stale_after_is_a_number_of_seconds(value: str, seconds: float) -> None:
    """HANDLETRACE_STALE_AFTER takes whole or fractional seconds."""
    settings, problems = settings_from_env({"HANDLETRACE_STALE_AFTER": value})
    assert (settings.stale_after, problems) == (seconds, [])


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"HANDLETRACE_REPORT_FORMAT": "html"}, "html"),
        ({"HANDLETRACE_REPORT_FORMAT": " HTML "}, "html"),
        ({"HANDLETRACE_REPORT": "leaks.html"}, "html"),
        ({"HANDLETRACE_REPORT": "LEAKS.HTM"}, "html"),
        ({"HANDLETRACE_REPORT": "leaks.html", "HANDLETRACE_REPORT_FORMAT": "json"}, "json"),
        ({"HANDLETRACE_REPORT": "leaks.txt"}, "text"),
    ],
)
def test_report_format_html_from_the_variable_or_the_report_path(
    environ: Dict[str, str], expected: str
) -> None:
    """html is accepted, and is the default for an .html/.htm path; the variable wins."""
    settings, problems = settings_from_env(environ)
    assert (settings.report_format, problems) == (expected, [])


SAMPLE_ACCEPTED = "expected 1 (every handle), N from 2 to 2147483647 (one in N) or 0 (no stacks)"
STALE_ACCEPTED = "expected a number of seconds greater than 0, such as 300 or 2.5"


@pytest.mark.parametrize(
    "name, value, accepted",
    [
        ("HANDLETRACE", "maybe", "expected 1, true, yes or on to enable"),
        ("HANDLETRACE_STACK_DEPTH", "deep", "expected an integer from 0 to 256"),
        ("HANDLETRACE_STACK_DEPTH", "999", "expected an integer from 0 to 256"),
        ("HANDLETRACE_STACK_SAMPLE", "-1", SAMPLE_ACCEPTED),
        ("HANDLETRACE_KINDS", "recognizer;bag", "expected comma-separated kind names"),
        ("HANDLETRACE_REPORT", " ", "expected stderr, stdout, none, or a file path"),
        ("HANDLETRACE_REPORT_FORMAT", "xml", "expected text, json or html"),
        ("HANDLETRACE_STALE_AFTER", "5m", STALE_ACCEPTED),
        ("HANDLETRACE_STALE_AFTER", "0", STALE_ACCEPTED),
        ("HANDLETRACE_STALE_AFTER", "-30", STALE_ACCEPTED),
        ("HANDLETRACE_STALE_AFTER", "nan", STALE_ACCEPTED),
        ("HANDLETRACE_STALE_AFTER", "inf", STALE_ACCEPTED),
        ("HANDLETRACE_STALE_AFTER", "", STALE_ACCEPTED),
    ],
)
def test_invalid_value_gives_one_message_naming_variable_value_and_accepted(
    name: str, value: str, accepted: str
) -> None:
    """Each bad value yields exactly one message; the default is used."""
    settings, problems = settings_from_env({"HANDLETRACE": "1", name: value})
    assert len(problems) == 1
    assert problems[0].startswith(f"handletrace: ignoring {name}={value!r}: {accepted}")
    assert problems[0].endswith("using the default")


def test_env_var_prints_report_at_exit(tmp_path: Path) -> None:
    """HANDLETRACE=1 python script.py: the leak report is printed when the program exits."""
    result = run_script(tmp_path, {"HANDLETRACE": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "script done\n"
    err = result.stderr
    assert "handletrace: 2 live native handles in 1 group" in err
    assert re.search(r"1 x recognizer +ConversationTranscriber\n", err)
    assert f'File "{tmp_path / "service.py"}", line 6, in process_audio' in err
    assert "FAKEKEY-ENV-0001" not in err


def test_env_var_writes_json_report_to_a_file(tmp_path: Path) -> None:
    """HANDLETRACE_REPORT=path.json writes the JSON report there."""
    out = tmp_path / "report.json"
    result = run_script(tmp_path, {"HANDLETRACE": "1", "HANDLETRACE_REPORT": str(out)})
    assert result.returncode == 0, result.stderr
    assert "handletrace" not in result.stderr
    data = json.loads(out.read_text())
    assert (data["schema"], data["version"], data["summary"]["live"]) == (
        "handletrace.report",
        1,
        2,
    )
    assert "FAKEKEY-ENV-0001" not in out.read_text()


def test_invalid_env_value_warns_once_and_script_exits_zero(tmp_path: Path) -> None:
    """A bad value warns (naming variable, value, accepted) and the program runs on."""
    result = run_script(tmp_path, {"HANDLETRACE": "1", "HANDLETRACE_STACK_DEPTH": "lots"})
    assert result.returncode == 0
    assert result.stdout == "script done\n"
    assert result.stderr.count("HandleTraceWarning") == 1
    assert (
        "ignoring HANDLETRACE_STACK_DEPTH='lots': expected an integer from 0 to 256"
        in result.stderr
    )
    assert "handletrace: 2 live native handles" in result.stderr


def test_unset_variable_leaves_program_untouched(tmp_path: Path) -> None:
    """Without HANDLETRACE nothing is printed and handletrace is not even imported."""
    script = LEAKY_SCRIPT + "\nimport sys\nprint('handletrace' in sys.modules)\n"
    result = run_script(tmp_path, {}, script)
    assert result.returncode == 0
    assert result.stdout == "script done\nFalse\n"
    assert "handletrace" not in result.stderr


HELD_CONFIG_SCRIPT = textwrap.dedent(
    """
    import time
    import azure.cognitiveservices.speech as speechsdk

    CONFIG = speechsdk.SpeechConfig(subscription="FAKEKEY-ENV-0001", region="westus")
    time.sleep(0.05)
    print("script done")
    """
)


def test_stale_after_classifies_old_referenced_handles_in_the_at_exit_report(
    tmp_path: Path,
) -> None:
    """HANDLETRACE_STALE_AFTER: a handle still referenced and older than that is stale."""
    result = run_script(
        tmp_path, {"HANDLETRACE": "1", "HANDLETRACE_STALE_AFTER": "0.01"}, HELD_CONFIG_SCRIPT
    )
    assert result.returncode == 0, result.stderr
    diagnosis = result.stderr.splitlines()[2]
    assert diagnosis.startswith("diagnosis: 2 stale (heap scan of ")
    assert ", stale after 10 ms; " in diagnosis
    assert "    classification: 2 stale (still referenced, and older than" in result.stderr


def test_without_stale_after_referenced_handles_are_reachable_at_exit(tmp_path: Path) -> None:
    """No HANDLETRACE_STALE_AFTER: however old, a referenced handle is only reachable."""
    result = run_script(tmp_path, {"HANDLETRACE": "1"}, HELD_CONFIG_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[2].startswith("diagnosis: 2 reachable (heap scan of ")
    assert "    classification: 2 reachable" in result.stderr
    assert "stale after" not in result.stderr


def test_report_none_prints_nothing_at_exit(tmp_path: Path) -> None:
    """HANDLETRACE_REPORT=none tracks without writing a report."""
    result = run_script(tmp_path, {"HANDLETRACE": "1", "HANDLETRACE_REPORT": "none"})
    assert result.returncode == 0
    assert "handletrace" not in result.stderr
