"""Diagnosis: classification of live handles, and what the report shows of it."""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
import textwrap
from typing import Any, Dict, List

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace import Report
from handletrace._report.model import GroupSummary

from . import sdk_objects

HELD: List[Any] = []
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository


def make_leak(signal: str = "transcribed") -> None:
    """One transcriber whose callback on ``signal`` captures it (same line every time)."""
    transcriber = sdk_objects.transcriber()

    def on_event(evt: Any) -> None:  # leak callback
        print(transcriber, evt)

    getattr(transcriber, signal).connect(on_event)  # leak connect


def line_of(text: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if text in line and "line_of(" not in line:
                return number
    raise AssertionError(text)


def states(diagnosis: handletrace.Diagnosis) -> Dict[str, int]:
    return diagnosis.counts()


# -- classification --------------------------------------------------------------------------


def test_handles_of_a_dropped_self_capturing_transcriber_are_cyclic_garbage(
    installed: None, no_gc: None
) -> None:
    """The seed's leak: recognizer and property bag, both waiting for the cyclic GC."""
    make_leak()
    assert states(handletrace.diagnose()) == {"cyclic-garbage": 2}


def test_handles_of_a_referenced_transcriber_are_reachable(installed: None) -> None:
    """A transcriber still held by a variable is reachable."""
    transcriber = sdk_objects.transcriber()
    assert states(handletrace.diagnose()) == {"reachable": 2}
    del transcriber


def test_dropped_future_is_orphaned(installed: None) -> None:
    """A ResultFuture dropped without get(): its async handle has no Python owner left."""
    transcriber = sdk_objects.transcriber()
    transcriber.start_transcribing_async()
    diagnosis = handletrace.diagnose()
    assert states(diagnosis) == {"orphaned": 1, "reachable": 2}
    transcriber.stop_transcribing_async().get()


def test_referenced_handles_older_than_the_threshold_are_stale(installed: None) -> None:
    """stale_after splits reachable handles by age (HikariCP-style leak threshold)."""
    transcriber = sdk_objects.transcriber()
    assert states(handletrace.diagnose(stale_after=0)) == {"stale": 2}
    assert states(handletrace.diagnose(stale_after=3600)) == {"reachable": 2}
    del transcriber


def test_cyclic_garbage_is_never_stale(installed: None, no_gc: None) -> None:
    """Classification puts the leak first: garbage stays garbage however old."""
    make_leak()
    assert states(handletrace.diagnose(stale_after=0)) == {"cyclic-garbage": 2}


def test_handles_released_after_the_snapshot_are_marked_released(installed: None) -> None:
    """Diagnosing an older snapshot says which of its handles are gone since."""
    config = sdk_objects.speech_config()
    snap = handletrace.snapshot()
    del config
    assert states(handletrace.diagnose(snap)) == {"released": 2}


def test_frozen_objects_are_unknown_to_the_scan(installed: None) -> None:
    """Objects moved out of the collector's reach by gc.freeze() are not classified."""
    config = sdk_objects.speech_config()
    gc.freeze()
    try:
        assert states(handletrace.diagnose()) == {"unknown": 2}
    finally:
        gc.unfreeze()
    del config


def test_diagnosis_without_live_handles_scans_nothing(installed: None) -> None:
    """No records: no heap scan, an empty diagnosis."""
    diagnosis = handletrace.diagnose()
    assert (diagnosis.handles, diagnosis.objects_scanned) == ({}, 0)


def test_signals_tree_lists_every_signal_and_what_is_connected() -> None:
    """Found from the SDK classes (derived class first), with the connected callables."""
    transcriber = sdk_objects.transcriber()
    transcriber.canceled.connect(print)
    tree = handletrace.analysis.signals_tree(transcriber)
    assert [(s.name, s.declared_by, s.created, s.connected) for s in tree] == [
        ("transcribing", "ConversationTranscriber", False, False),
        ("transcribed", "ConversationTranscriber", False, False),
        ("canceled", "ConversationTranscriber", True, True),
        ("session_started", "Recognizer", False, False),
        ("session_stopped", "Recognizer", False, False),
        ("token_requested", "Recognizer", False, False),
        ("speech_start_detected", "Recognizer", False, False),
        ("speech_end_detected", "Recognizer", False, False),
    ]
    assert [str(cb) for cb in tree[2].callbacks] == ["print"]
    transcriber.canceled.disconnect_all()


class HostileSynthesizer(speechsdk.SpeechSynthesizer):
    """Every attribute read fails once armed (a broken proxy, say)."""

    armed = False

    def __getattribute__(self, name: str) -> Any:
        if type(self).armed:
            raise RuntimeError("hostile attribute")
        return super().__getattribute__(name)


class HostileCallback:
    """A callable whose attributes cannot be read."""

    def __call__(self, evt: Any) -> None:
        pass

    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError("hostile callback")


def test_signals_tree_survives_a_hostile_object_and_callback(installed: None) -> None:
    """A failing __getattribute__ on the object or a callback: the tree is still returned,
    the callback named by its type, the failure counted (it raised before)."""
    synthesizer = HostileSynthesizer(speech_config=sdk_objects.speech_config(), audio_config=None)
    synthesizer.synthesis_started.connect(HostileCallback())
    errors = handletrace.stats().instrumentation_errors
    HostileSynthesizer.armed = True
    try:
        tree = handletrace.analysis.signals_tree(synthesizer)
    finally:
        HostileSynthesizer.armed = False
    connected = [(s.name, [str(cb) for cb in s.callbacks]) for s in tree if s.connected]
    assert connected == [("synthesis_started", ["HostileCallback"])]
    assert len(tree) == 8, tree
    assert handletrace.stats().instrumentation_errors == errors + 1
    synthesizer.synthesis_started.disconnect_all()
    del synthesizer


# -- in the report ---------------------------------------------------------------------------


def test_same_site_and_cycle_shape_make_one_group_with_a_count(
    installed: None, no_gc: None
) -> None:
    """Three leaks from one line with one cycle shape are one group of six handles."""
    for _ in range(3):
        make_leak()
    (group,) = handletrace.build_report().groups
    assert (group.count, group.classification) == (6, (("cyclic-garbage", 6),))
    assert [(f.pattern, f.count) for f in group.findings] == [("callback-captures-owner", 3)]


def test_same_site_with_another_cycle_shape_is_another_group(installed: None, no_gc: None) -> None:
    """One creation site, two cycle shapes: two groups, two fingerprints."""
    make_leak("transcribed")
    make_leak("canceled")
    groups = handletrace.build_report().groups
    assert [g.site == groups[0].site for g in groups] == [True, True]
    assert [g.cycle.text.split(" -> ")[1] for g in groups if g.cycle] == [
        "EventSignal (transcribed)",
        "EventSignal (canceled)",
    ]
    assert groups[0].fingerprint != groups[1].fingerprint


def test_fingerprint_of_a_group_without_a_cycle_is_unchanged_by_the_diagnosis(
    installed: None,
) -> None:
    """Allow-lists made before diagnoses existed keep matching groups without a cycle."""
    HELD.append(sdk_objects.transcriber())
    try:
        plain = [g.fingerprint for g in handletrace.build_report(diagnose=False).groups]
        diagnosed = [g.fingerprint for g in handletrace.build_report().groups]
        assert plain == diagnosed
    finally:
        HELD.clear()


def test_fingerprint_is_stable_across_runs(tmp_path: Any) -> None:
    """The same leak in two separate processes has the same fingerprint."""
    script = tmp_path / "leak.py"
    script.write_text(
        textwrap.dedent(
            """
            import gc, handletrace
            gc.disable()
            handletrace.install()
            import azure.cognitiveservices.speech as sdk
            from azure.cognitiveservices.speech import audio, transcription

            def leak():
                t = transcription.ConversationTranscriber(
                    speech_config=sdk.SpeechConfig(subscription="k", region="westus"),
                    audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream()))
                t.transcribed.connect(lambda evt: print(t))

            for _ in range(2):
                leak()
            print(*(g.fingerprint for g in handletrace.build_report().groups))
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    runs = [
        subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert len(runs[0].stdout.split()) == 1


def test_json_report_with_a_diagnosis_round_trips(installed: None, no_gc: None) -> None:
    """Every diagnosis field survives to_dict / from_dict."""
    make_leak()
    transcriber = sdk_objects.transcriber()
    transcriber.start_transcribing_async()
    HELD.append(transcriber)
    try:
        out = io.StringIO()
        data = handletrace.report(out, format="json", stale_after=3600)
        loaded = Report.from_dict(json.loads(out.getvalue()))
        assert loaded == data
        assert loaded.diagnosis is not None and loaded.native is not None
        assert {bool(g.cycle) for g in loaded.groups} == {True, False}
        assert any(g.root_path for g in loaded.groups)
        assert any(g.access for g in loaded.groups)
    finally:
        transcriber.stop_transcribing_async().get()
        HELD.clear()


def test_json_group_has_the_documented_diagnosis_fields(installed: None, no_gc: None) -> None:
    """classification, cycle, subject, signals, access, findings; and top-level diagnosis."""
    make_leak()
    out = io.StringIO()
    handletrace.report(out, format="json")
    data = json.loads(out.getvalue())
    group = data["groups"][0]
    assert group["classification"] == {"cyclic-garbage": 2}
    assert group["cycle"]["kind"] == "cycle"
    assert group["cycle"]["text"].startswith("ConversationTranscriber -> EventSignal")
    assert group["subject"] == "ConversationTranscriber"
    assert [s["name"] for s in group["signals"] if s["callbacks"]] == ["transcribed"]
    assert [(a["action"], a["target"], a["disconnected"]) for a in group["access"]] == [
        ("connect", "transcribed", False)
    ]
    assert [f["pattern"] for f in group["findings"]] == ["callback-captures-owner"]
    assert data["diagnosis"]["classification"] == {"cyclic-garbage": 2}
    assert data["diagnosis"]["gc_collected"] is False


def test_report_without_diagnosis_fields_still_loads(installed: None, no_gc: None) -> None:
    """A version-1 report written before diagnoses existed loads, with empty fields."""
    make_leak()
    data = handletrace.build_report().to_dict()
    del data["diagnosis"], data["native"]
    for group in data["groups"]:
        for key in (
            "classification",
            "cycle",
            "root_path",
            "subject",
            "signals",
            "access",
            "findings",
        ):
            group.pop(key, None)
    loaded = Report.from_dict(data)
    assert (loaded.diagnosis, loaded.native) == (None, None)
    assert (loaded.groups[0].classification, loaded.groups[0].cycle) == ((), None)
    assert loaded.groups[0].diagnosis is None


def test_report_without_diagnosis_has_no_diagnosis_fields(installed: None, no_gc: None) -> None:
    """diagnose=False: plain groups, nothing added to the JSON."""
    make_leak()
    data = handletrace.build_report(diagnose=False)
    assert (data.diagnosis, data.native) == (None, None)
    assert "classification" not in data.to_dict()["groups"][0]


def test_text_report_explains_the_seed_leak(installed: None, no_gc: None) -> None:
    """The group's text: classification, cycle, callback line, finding, signals, access."""
    make_leak()
    out = io.StringIO()
    handletrace.report(out)
    lines = out.getvalue().splitlines()
    callback, connect = line_of("# leak callback"), line_of("# leak connect")
    start = lines.index(
        "    classification: 2 cyclic-garbage (unreachable; only a cyclic "
        "garbage collection would release it)"
    )
    assert lines[start + 1 : start + 4] == [
        "    cycle: ConversationTranscriber -> EventSignal (transcribed) -> list -> function "
        "on_event (closure cell 'transcriber') -> ConversationTranscriber",
        f"        function on_event is defined at {__file__}:{callback}",
        f"    finding [callback-captures-owner] at {__file__}:{callback}: A signal callback "
        "keeps its recognizer alive",
    ]
    signals = lines.index("    signals of ConversationTranscriber:")
    assert lines[signals + 1 : signals + 11] == [
        "    ├── transcribing ................. never used",
        "    ├── transcribed .................. connected: "
        f"make_leak.<locals>.on_event ({__file__}:{callback})",
        "    ├── canceled ..................... never used",
        "    └── (inherits from Recognizer)",
        "        ├── session_started .......... never used",
        "        ├── session_stopped .......... never used",
        "        ├── token_requested .......... never used",
        "        ├── speech_start_detected .... never used",
        "        └── speech_end_detected ...... never used",
        "    access (ConversationTranscriber):",
    ]
    assert lines[signals + 11] == (
        f"      {__file__}:{connect}  connect transcribed -> make_leak.<locals>.on_event, "
        "never disconnected"
    )
    assert lines[2].startswith("diagnosis: 2 cyclic-garbage; 1 finding (heap scan of ")
    assert lines[2].endswith("; no garbage collection was run)")


def test_group_summary_gives_classification_finding_and_fix(installed: None, no_gc: None) -> None:
    """ReportGroup.diagnosis: the one-glance view front ends show."""
    make_leak()
    (group,) = handletrace.build_report().groups
    summary = group.diagnosis
    assert isinstance(summary, GroupSummary)
    assert summary.classification == "2 cyclic-garbage"
    assert summary.summary.startswith("A signal callback keeps its recognizer alive: ")
    assert summary.cycle is group.cycle
    assert summary.fix == group.findings[0].fix


def test_failed_diagnosis_leaves_a_note_and_the_report(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection (the real heap scan does not fail): the report is still written."""

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("handletrace._analysis.heap.HeapGraph.scan", broken)
    config = sdk_objects.speech_config()
    data = handletrace.build_report()
    assert data.notes == ("the diagnosis failed (RuntimeError); groups are not explained",)
    assert data.diagnosis is None and data.live == 2
    assert handletrace.stats().instrumentation_errors == 1
    del config


def test_at_exit_report_includes_the_diagnosis(tmp_path: Any) -> None:
    """HANDLETRACE=1: the report printed at exit draws the cycle (activated the way the
    handletrace.pth file does, so the test does not need the package installed)."""
    script = tmp_path / "leaky.py"
    script.write_text(
        textwrap.dedent(
            """
            import handletrace._boot
            import gc
            gc.disable()
            import azure.cognitiveservices.speech as sdk
            from azure.cognitiveservices.speech import audio, transcription

            def leak():
                transcriber = transcription.ConversationTranscriber(
                    speech_config=sdk.SpeechConfig(subscription="k", region="westus"),
                    audio_config=audio.AudioConfig(stream=audio.PushAudioInputStream()))
                def on_transcribed(evt):
                    print(transcriber)
                transcriber.transcribed.connect(on_transcribed)

            leak()
            """
        )
    )
    env = {**os.environ, "HANDLETRACE": "1", "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "    cycle: ConversationTranscriber -> EventSignal (transcribed) -> list -> function "
        "on_transcribed (closure cell 'transcriber') -> ConversationTranscriber"
    ) in result.stderr.splitlines()
