"""The SDK's native handle table (read through ctypes) beside the Python registry."""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
import textwrap
from typing import Dict, List, Tuple

import handletrace
from handletrace.analysis import NativeCheck, NativeCounts, cross_check, read_native_counts

from . import sdk_objects

ENV = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}


def tracked_live() -> Dict[str, int]:
    return {kind: s.live for kind, s in handletrace.stats().kinds.items() if s.live}


def rows(check: NativeCheck) -> List[Tuple[str, int, int]]:
    return [(row.native_type, row.native, row.tracked) for row in check.rows]


def test_native_counts_are_read_from_the_sdk() -> None:
    """read_native_counts() gives the total and per-type counts the SDK exports."""
    config = sdk_objects.speech_config()
    counts = read_native_counts()
    assert counts is not None
    assert counts.types["ISpxSpeechConfig"] >= 1
    assert counts.total == sum(counts.types.values())
    del config


def test_native_counts_agree_with_the_registry_for_a_clean_scenario(no_gc: None) -> None:
    """Everything made after install() is tracked: native and registry counts agree."""
    gc.collect()
    baseline = read_native_counts()
    assert baseline is not None
    handletrace.install()
    transcriber = sdk_objects.transcriber()
    synthesizer = sdk_objects.synthesizer()
    config = sdk_objects.speech_config()
    check = cross_check(tracked_live(), read_native_counts(), baseline)  # type: ignore[arg-type]
    assert check.agrees
    assert rows(check) == [
        ("ISpxNamedProperties", 3, 3),  # the transcriber's, the synthesizer's, the config's
        ("ISpxRecognizer", 1, 1),
        ("ISpxSpeechConfig", 1, 1),
        ("ISpxSynthesizer", 1, 1),
    ]
    del transcriber, synthesizer, config


def test_native_counts_show_handles_made_before_install(no_gc: None) -> None:
    """A config made before install() is in the native table only: the check disagrees."""
    gc.collect()
    baseline = read_native_counts()
    assert baseline is not None
    config = sdk_objects.speech_config()
    handletrace.install()
    recognizer = sdk_objects.recognizer()
    check = cross_check(tracked_live(), read_native_counts(), baseline)  # type: ignore[arg-type]
    assert not check.agrees
    assert [(r.native_type, r.difference) for r in check.differences] == [
        ("ISpxNamedProperties", 1),
        ("ISpxSpeechConfig", 1),
    ]
    del config, recognizer


def test_sdk_makes_a_handle_at_import_that_the_registry_cannot_see() -> None:
    """Installed before the SDK is imported, the registry still misses the audio config the
    SDK makes for SpeechSynthesizer's default argument; the native table counts it."""
    code = textwrap.dedent(
        """
        import json, handletrace
        handletrace.install()
        import azure.cognitiveservices.speech
        check = handletrace.analysis.cross_check({}, handletrace.analysis.read_native_counts())
        print(json.dumps([[r.native_type, r.native, r.tracked] for r in check.rows]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [["ISpxAudioConfig", 1, 0]]


def test_reading_native_counts_never_imports_the_sdk() -> None:
    """Without the SDK imported there is nothing to read, and it is not imported for it."""
    code = (
        "import sys, handletrace; print(handletrace.analysis.read_native_counts(), "
        "'azure.cognitiveservices.speech' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "False"]


def test_cross_check_merges_async_operations_and_lists_unknown_kinds() -> None:
    """All CSpxAsyncOp<...> types are one row; tracked kinds with no native type get a row."""
    native = NativeCounts(3, {"CSpxAsyncOp<void>": 1, "CSpxAsyncOp<result>": 1, "ISpxX": 1})
    check = cross_check({"recognizer_async": 2, "made_up": 1}, native)
    assert rows(check) == [("CSpxAsyncOp<*>", 2, 2), ("ISpxX", 1, 0), ("", 0, 1)]
    assert [r.difference for r in check.rows] == [0, 1, -1]


def test_report_puts_native_counts_beside_the_registry(installed: None) -> None:
    """The report's JSON and text carry the native table."""
    recognizer = sdk_objects.recognizer()
    out, text = io.StringIO(), io.StringIO()
    handletrace.report(out, format="json")
    handletrace.report(text)
    native = json.loads(out.getvalue())["native"]
    by_type = {row["native_type"]: (row["native"], row["tracked"]) for row in native["rows"]}
    assert by_type["ISpxRecognizer"][1] == 1
    assert by_type["ISpxRecognizer"][0] >= 1
    assert "native handle table of the SDK: " in text.getvalue()
    assert "    native type" in text.getvalue()
    del recognizer


NATIVE_PROBE = """
import io, json, re, sys
import handletrace
{before_install}
handletrace.install()
from tests import sdk_objects
recognizer = sdk_objects.recognizer()  # tracked: the report has something to show
report = handletrace.build_report()
row = next(r for r in report.native.rows if r.native_type == "ISpxAudioConfig")
text = io.StringIO()
handletrace.report(text)
html = io.StringIO()
handletrace.report(html, format="html")
line = next(l for l in text.getvalue().splitlines() if l.strip().startswith("ISpxAudioConfig"))
html_row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*ISpxAudioConfig.*?</tr>", html.getvalue()).group(0)
print(json.dumps({{
    "row": [row.native, row.tracked, list(row.sdk_internal), row.unexplained],
    "agrees": report.native.agrees,
    "differences": [r.native_type for r in report.native.differences],
    "line": line,
    "html_row": html_row,
}}))
"""


def native_probe(before_install: str = "") -> Dict[str, object]:
    """What a fresh interpreter's report says of ISpxAudioConfig (the SDK's default audio
    config exists once per process, from the SDK's import on)."""
    result = subprocess.run(
        [sys.executable, "-c", NATIVE_PROBE.format(before_install=before_install)],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_sdk_default_audio_config_is_explained_not_flagged() -> None:
    """A program that makes no AudioConfig before install(): the one native audio config the
    registry misses is SpeechSynthesizer's default, named as the SDK's, and not a problem."""
    seen = native_probe()
    assert seen["row"] == [1, 0, ["the default audio config of SpeechSynthesizer"], 0], seen
    assert (seen["agrees"], seen["differences"]) == (True, []), seen
    line = str(seen["line"])
    assert line.endswith(
        "  1 made by the SDK at import (the default audio config of SpeechSynthesizer)"
    ), line
    assert "not tracked" not in line, line
    assert 'class="bad"' not in str(seen["html_row"]), seen["html_row"]
    assert "made by the SDK at import" in str(seen["html_row"]), seen["html_row"]


def test_audio_config_made_before_install_is_still_flagged() -> None:
    """An AudioConfig the program made before install() is one unexplained handle, flagged in
    text and HTML, beside the SDK's own."""
    seen = native_probe(
        "import azure.cognitiveservices.speech as speechsdk\n"
        "early = speechsdk.audio.AudioOutputConfig(use_default_speaker=True)"
    )
    assert seen["row"] == [2, 0, ["the default audio config of SpeechSynthesizer"], 1], seen
    assert (seen["agrees"], seen["differences"]) == (False, ["ISpxAudioConfig"]), seen
    assert str(seen["line"]).endswith(
        "  1 not tracked: made before install() or inside the SDK; "
        "1 made by the SDK at import (the default audio config of SpeechSynthesizer)"
    ), seen["line"]
    assert str(seen["html_row"]).startswith('<tr class="bad">'), seen["html_row"]


def test_sdk_internal_handles_name_the_default_argument_they_are() -> None:
    """sdk_internal_handles() finds SpeechSynthesizer's default audio_config from the SDK's
    own functions: its native type and what it is."""
    check_code = (
        "import json, handletrace, azure.cognitiveservices.speech\n"
        "from handletrace._sdk.native import sdk_internal_handles\n"
        "print(json.dumps([[h.native_type, h.what] for h in sdk_internal_handles()]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check_code],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        ["ISpxAudioConfig", "the default audio config of SpeechSynthesizer"]
    ]
