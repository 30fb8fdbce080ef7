"""HANDLETRACE=1 activation: validated variables, the .pth hook and the at-exit report."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import textwrap
import warnings
from pathlib import Path
from typing import Dict, Tuple

import pytest

import handletrace
from handletrace import cli
from handletrace._env import EnvSettings, settings_from_env
from handletrace._sdk.kinds import unknown_kinds_message
from handletrace.pytest_plugin import SettingsError, resolve_settings

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


# -- boundaries: values that must be accepted, and values that must not ---------------------

DEPTH_ACCEPTED = "expected an integer from 0 to 256"
KINDS_SYNTAX = "expected comma-separated kind names such as recognizer,property_bag, or all"
RECOGNISER = (
    "unknown handle kind 'recogniser' (did you mean 'recognizer'?); known kinds: audio_config, "
)


@pytest.mark.parametrize(
    ("name", "field", "value", "expected"),
    [
        ("HANDLETRACE", "enabled", " 1 ", True),
        ("HANDLETRACE", "enabled", "On", True),
        ("HANDLETRACE", "enabled", "", False),
        ("HANDLETRACE", "enabled", "off", False),
        ("HANDLETRACE_STACK_DEPTH", "stack_depth", "0", 0),
        ("HANDLETRACE_STACK_DEPTH", "stack_depth", "256", 256),
        ("HANDLETRACE_STACK_DEPTH", "stack_depth", " 3 ", 3),
        ("HANDLETRACE_STACK_SAMPLE", "stack_sample", "0", 0),
        ("HANDLETRACE_STACK_SAMPLE", "stack_sample", "1", 1),
        ("HANDLETRACE_STACK_SAMPLE", "stack_sample", " 3 ", 3),
        ("HANDLETRACE_STACK_SAMPLE", "stack_sample", "2147483647", 2147483647),
        ("HANDLETRACE_KINDS", "kinds", "recognizer", frozenset({"recognizer"})),
        ("HANDLETRACE_KINDS", "kinds", " recognizer , speech_config ", {"recognizer",
                                                                         "speech_config"}),
        ("HANDLETRACE_KINDS", "kinds", "ALL", None),
        ("HANDLETRACE_KINDS", "kinds", "", None),
        ("HANDLETRACE_REPORT", "report", " leaks.json ", "leaks.json"),
        ("HANDLETRACE_REPORT", "report", "none", "none"),
        ("HANDLETRACE_REPORT_FORMAT", "report_format", " JSON ", "json"),
        ("HANDLETRACE_STALE_AFTER", "stale_after", "0.001", 0.001),
        ("HANDLETRACE_STALE_AFTER", "stale_after", " 3 ", 3.0),
        ("HANDLETRACE_METRICS", "metrics", " OTEL ", "otel"),
        ("HANDLETRACE_METRICS", "metrics", "", "none"),
    ],
)  # fmt: skip
def test_boundary_values_that_are_accepted(
    name: str, field: str, value: str, expected: object
) -> None:
    """The edges of what each variable accepts are used as given, without a message."""
    settings, problems = settings_from_env({name: value})
    assert (getattr(settings, field), problems) == (expected, [])


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("HANDLETRACE", "2", "expected 1, true, yes or on to enable"),
        ("HANDLETRACE", "-1", "expected 1, true, yes or on to enable"),
        ("HANDLETRACE", "1.5", "expected 1, true, yes or on to enable"),
        ("HANDLETRACE_STACK_DEPTH", "257", DEPTH_ACCEPTED),
        ("HANDLETRACE_STACK_DEPTH", "-1", DEPTH_ACCEPTED),
        ("HANDLETRACE_STACK_DEPTH", "1.5", DEPTH_ACCEPTED),
        ("HANDLETRACE_STACK_DEPTH", "", DEPTH_ACCEPTED),
        ("HANDLETRACE_STACK_DEPTH", "+3", DEPTH_ACCEPTED),
        ("HANDLETRACE_STACK_DEPTH", "1_6", DEPTH_ACCEPTED),
        ("HANDLETRACE_STACK_DEPTH", "\u0661", DEPTH_ACCEPTED),  # ARABIC-INDIC DIGIT ONE
        ("HANDLETRACE_STACK_SAMPLE", "2147483648", SAMPLE_ACCEPTED),
        ("HANDLETRACE_STACK_SAMPLE", "-1", SAMPLE_ACCEPTED),
        ("HANDLETRACE_STACK_SAMPLE", "1.5", SAMPLE_ACCEPTED),
        ("HANDLETRACE_STACK_SAMPLE", "", SAMPLE_ACCEPTED),
        ("HANDLETRACE_KINDS", "recogniser", RECOGNISER),
        ("HANDLETRACE_KINDS", "recognizer,", KINDS_SYNTAX),
        ("HANDLETRACE_KINDS", "all,recognizer", "unknown handle kind 'all'"),
        ("HANDLETRACE_REPORT", "", "expected stderr, stdout, none, or a file path"),
        ("HANDLETRACE_REPORT_FORMAT", "", "expected text, json or html"),
        ("HANDLETRACE_REPORT_FORMAT", "svg", "expected text, json or html"),
        ("HANDLETRACE_STALE_AFTER", "-0.0", STALE_ACCEPTED),
        ("HANDLETRACE_STALE_AFTER", "-1", STALE_ACCEPTED),
        ("HANDLETRACE_METRICS", "1", "expected otel or none"),
        ("HANDLETRACE_METRICS", "otlp", "expected otel or none"),
    ],
)
def test_boundary_values_that_are_rejected_with_one_message_and_the_default(
    name: str, value: str, accepted: str
) -> None:
    """Just past each edge: one message naming variable and value, and the default is used."""
    settings, problems = settings_from_env({name: value})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"handletrace: ignoring {name}={value!r}: {accepted}"), problems
    assert problems[0].endswith("; using the default")
    assert settings == EnvSettings(), settings


@pytest.mark.parametrize(
    ("value", "python_hooks", "warns"),
    [("1", True, False), (" TRUE ", True, False), ("0", False, False), ("", False, False),
     ("2", False, True), ("1.5", False, True)],
)  # fmt: skip
def test_no_extensions_boundary_values(
    monkeypatch: pytest.MonkeyPatch, value: str, python_hooks: bool, warns: bool
) -> None:
    """HANDLETRACE_NO_EXTENSIONS: an on word picks the Python hooks; a bad value warns."""
    from handletrace._instrument.hooks import speedups

    monkeypatch.delenv("HANDLETRACE_NO_EXTENSIONS", raising=False)
    built = speedups() is not None
    monkeypatch.setenv("HANDLETRACE_NO_EXTENSIONS", value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = speedups()
    messages = [str(w.message) for w in caught]
    assert len(messages) == (1 if warns else 0), messages
    assert (module is not None) == (built and not python_hooks), (module, built)


def test_stack_depth_past_the_limit_does_not_turn_tracking_off(tmp_path: Path) -> None:
    """HANDLETRACE_STACK_DEPTH=257: one warning, and the leak is still reported (default 16)."""
    result = run_script(tmp_path, {"HANDLETRACE": "1", "HANDLETRACE_STACK_DEPTH": "257"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("HandleTraceWarning") == 1, result.stderr
    assert "ignoring HANDLETRACE_STACK_DEPTH='257'" in result.stderr
    assert "handletrace: 2 live native handles in 1 group" in result.stderr, result.stderr


# -- install() takes what it is not given from the environment ------------------------------

INSTALL_SCRIPT = """
import io, json
import handletrace
started = handletrace.install({arguments})
{again}
import azure.cognitiveservices.speech as speechsdk

def outer():
    return inner()

def inner():
    return speechsdk.SpeechConfig(subscription="FAKEKEY-ENV-0002", region="westus")

KEEP = outer()
data = handletrace.report(io.StringIO(), "json")
print(json.dumps({{
    "started": started,
    "live": data.live,
    "kinds": sorted(kind for g in data.groups for kind, _, _ in g.kinds),
    "frames": [len(g.traceback) for g in data.groups],
}}))
"""


def run_install(
    tmp_path: Path, env: Dict[str, str], arguments: str = "", again: str = ""
) -> Tuple[Dict[str, object], str]:
    """Run INSTALL_SCRIPT with ``install(arguments)``; (what it printed, its stderr)."""
    script = INSTALL_SCRIPT.format(arguments=arguments, again=again)
    result = run_script(tmp_path, env, script)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_bare_install_takes_stack_depth_sample_and_kinds_from_the_environment(
    tmp_path: Path,
) -> None:
    """install() with no arguments uses HANDLETRACE_STACK_DEPTH, _STACK_SAMPLE and _KINDS."""
    seen, err = run_install(
        tmp_path, {"HANDLETRACE_STACK_DEPTH": "2", "HANDLETRACE_KINDS": "speech_config"}
    )
    assert (seen, err) == (
        {"started": True, "live": 1, "kinds": ["speech_config"], "frames": [2]}, ""
    )
    seen, err = run_install(tmp_path, {"HANDLETRACE_STACK_SAMPLE": "0"})
    assert (seen["live"], set(seen["frames"]), err) == (2, {0}, ""), seen  # no stack at all


def test_install_arguments_win_over_the_environment(tmp_path: Path) -> None:
    """install(stack_depth=3, kinds=[...]) ignores the variables for what it is given."""
    seen, err = run_install(
        tmp_path,
        {"HANDLETRACE_STACK_DEPTH": "2", "HANDLETRACE_KINDS": "speech_config"},
        'stack_depth=3, kinds=["speech_config", "property_bag"]',
    )
    assert (seen["kinds"], seen["frames"], err) == (["property_bag", "speech_config"], [3], "")


def test_misspelt_kind_in_the_environment_warns_once_and_tracks_every_kind(
    tmp_path: Path,
) -> None:
    """HANDLETRACE_KINDS=recogniser: one warning with the closest kind, and no all-clear."""
    seen, err = run_install(
        tmp_path, {"HANDLETRACE_KINDS": "recogniser"}, again="handletrace.uninstall(); "
        "handletrace.install()"
    )
    assert err.count("HandleTraceWarning") == 1, err
    assert (
        "HandleTraceWarning: handletrace: ignoring HANDLETRACE_KINDS='recogniser': unknown handle "
        "kind 'recogniser' (did you mean 'recognizer'?); known kinds: audio_config, " in err
    ), err
    assert seen["live"] == 2, seen


def test_misspelt_kind_with_handletrace_1_warns_once_and_the_leak_is_reported(
    tmp_path: Path,
) -> None:
    """HANDLETRACE=1 HANDLETRACE_KINDS=recogniser: one warning, the at-exit report lists leaks."""
    result = run_script(tmp_path, {"HANDLETRACE": "1", "HANDLETRACE_KINDS": "recogniser"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("HandleTraceWarning") == 1, result.stderr
    assert "(did you mean 'recognizer'?)" in result.stderr
    assert "handletrace: 2 live native handles in 1 group" in result.stderr, result.stderr


def test_install_with_an_unknown_kind_raises_naming_the_closest_and_the_known_ones() -> None:
    """install(kinds=["recogniser"]) is refused: a typo would otherwise track nothing."""
    with pytest.raises(ValueError) as info:
        handletrace.install(kinds=["recogniser", "property_bag"])
    assert str(info.value).startswith(RECOGNISER), info.value
    assert not handletrace.is_installed()


def test_install_with_a_stack_sample_too_large_for_the_hooks_raises() -> None:
    """A sampling interval the C hooks cannot hold is refused, not every handle an error."""
    with pytest.raises(ValueError, match="at most 2147483647"):
        handletrace.install(stack_sample=2**63)
    assert not handletrace.is_installed()


def _kinds_message_from(front_end: str) -> str:
    """What each front end says about the kind 'recogniser'."""
    if front_end == "install()":
        with pytest.raises(ValueError) as info:
            handletrace.install(kinds="recogniser")
        return str(info.value)
    if front_end == "HANDLETRACE_KINDS":
        return settings_from_env({"HANDLETRACE_KINDS": "recogniser"})[1][0]
    if front_end == "handletrace run --kinds":
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert cli.main(["run", "--kinds", "recogniser", "x.py"]) == cli.EXIT_USAGE
        return err.getvalue()
    with pytest.raises(SettingsError) as error:
        resolve_settings({"allow": "recogniser"}, {}, {})
    return str(error.value)


@pytest.mark.parametrize(
    "front_end",
    ["install()", "HANDLETRACE_KINDS", "handletrace run --kinds", "pytest --handletrace-allow"],
)
def test_every_front_end_words_an_unknown_kind_the_same(front_end: str) -> None:
    """One helper words the message: the closest kind and the known kinds, everywhere."""
    message = _kinds_message_from(front_end)
    assert unknown_kinds_message(["recogniser"]) in message, message
