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
