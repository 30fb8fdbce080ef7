"""Tracking of real SDK handles: kinds, owners, release causes, stacks, threads."""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, List

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.cognitiveservices.speech import audio, interop, languageconfig, transcription

import handletrace
from handletrace._core.state import TRACKER
from handletrace._instrument.hooks import NO_EXTENSIONS_VARIABLE

from . import sdk_objects
from .subprocesses import run_script


def created_since(marker: int) -> List[Any]:
    return [(r.kind, r.owner_label) for r in handletrace.snapshot().filter(since=marker)]


def marker() -> int:
    return TRACKER.registry.last_seq()


@pytest.mark.parametrize(
    "builder, expected",
    [
        (
            sdk_objects.speech_config,
            [
                ("speech_config", "SpeechConfig"),
                ("property_bag", "PropertyCollection of SpeechConfig"),
            ],
        ),
        (
            sdk_objects.push_audio_config,
            [
                # The stream is held by the AudioConfig made from it.
                ("audio_stream", "PushAudioInputStream of AudioConfig"),
                ("audio_config", "AudioConfig"),
                ("property_bag", "PropertyCollection of AudioConfig"),
            ],
        ),
        (
            lambda: audio.AudioStreamFormat(samples_per_second=16000),
            [("audio_stream_format", "AudioStreamFormat")],
        ),
        (
            sdk_objects.recognizer,
            [
                ("recognizer", "SpeechRecognizer"),
                ("property_bag", "PropertyCollection of SpeechRecognizer"),
            ],
        ),
        (
            sdk_objects.transcriber,
            [
                ("recognizer", "ConversationTranscriber"),
                ("property_bag", "PropertyCollection of ConversationTranscriber"),
            ],
        ),
        (
            sdk_objects.translation_recognizer,
            [
                ("recognizer", "TranslationRecognizer"),
                ("property_bag", "PropertyCollection of TranslationRecognizer"),
            ],
        ),
        (
            sdk_objects.synthesizer,
            [
                ("synthesizer", "SpeechSynthesizer"),
                ("property_bag", "PropertyCollection of SpeechSynthesizer"),
            ],
        ),
        (
            lambda: languageconfig.AutoDetectSourceLanguageConfig(languages=["en-US", "de-DE"]),
            [("auto_detect_source_lang_config", "AutoDetectSourceLanguageConfig")],
        ),
    ],
    ids=[
        "speech_config",
        "audio_config",
        "audio_stream_format",
        "speech_recognizer",
        "conversation_transcriber",
        "translation_recognizer",
        "speech_synthesizer",
        "auto_detect_config",
    ],
)
def test_sdk_object_is_tracked_with_kind_and_owner(
    hook_kind: str, installed: None, builder: Any, expected: Any
) -> None:
    """Each offline-constructible SDK object's handles are recorded with kind and owner."""
    start = marker()
    obj = builder()  # kept alive: temporaries the builder made are released already
    assert created_since(start) == expected
    del obj


def test_dropping_an_object_releases_its_records_with_cause_del(
    hook_kind: str, installed: None
) -> None:
    """Reference-count finalisation removes the records and counts cause 'del'."""
    start = marker()
    recognizer = sdk_objects.recognizer()
    del recognizer
    assert created_since(start) == []
    stats = handletrace.stats()
    assert stats.kinds["recognizer"].released == 1
    assert stats.released_by_cause["del"] == stats.released
    assert stats.released_by_cause["gc"] == 0


def test_closure_cycle_keeps_transcriber_live_until_gc(
    hook_kind: str, installed: None, no_gc: None
) -> None:
    """The seed's leak shows as live after the function returns, created at the user's line."""
    segments: List[Any] = []

    def process_audio() -> None:
        transcriber = transcription.ConversationTranscriber(  # creation line
            speech_config=sdk_objects.speech_config(),
            audio_config=sdk_objects.push_audio_config(),
        )

        def on_transcribed(evt: Any) -> None:
            segments.append((transcriber, evt))

        transcriber.transcribed.connect(on_transcribed)

    creation_line = process_audio.__code__.co_firstlineno + 1
    start = marker()
    process_audio()

    live = handletrace.snapshot().filter(since=start, kinds=["recognizer"])
    assert [r.owner for r in live] == ["ConversationTranscriber"]
    origin = live.records[0].traceback.origin
    assert origin is not None
    assert (origin.filename, origin.lineno, origin.name) == (
        __file__,
        creation_line,
        "process_audio",
    )

    gc.collect()
    assert handletrace.snapshot().filter(since=start, kinds=["recognizer"]).records == ()
    assert handletrace.stats().released_by_cause["gc"] >= 2  # recognizer and its property bag


def test_reused_native_address_is_not_confused_with_released_record(
    hook_kind: str, installed: None
) -> None:
    """The SDK reuses native addresses; each new handle gets its own record."""
    addresses = []
    for _ in range(20):
        recognizer = sdk_objects.recognizer()
        addresses.append(handletrace.snapshot().filter(kinds=["recognizer"]).records[-1].address)
        del recognizer
    assert len(set(addresses)) < len(addresses)  # the SDK did reuse addresses
    stats = handletrace.stats()
    assert (stats.kinds["recognizer"].created, stats.kinds["recognizer"].released) == (20, 20)
    assert handletrace.snapshot().filter(kinds=["recognizer"]).records == ()


def test_record_holds_no_reference_to_its_owner(hook_kind: str, installed: None) -> None:
    """The tracker never keeps what it watches alive."""
    recognizer = sdk_objects.recognizer()
    record = handletrace.snapshot().filter(kinds=["recognizer"]).records[0]
    assert record.owner_ref() is recognizer
    del recognizer
    assert record.owner_ref() is None


def test_unresolved_future_stays_live_and_resolved_future_is_released_directly(
    installed: None,
) -> None:
    """Async handles of ResultFuture are tracked; get() releases them with cause 'direct'."""
    config = speechsdk.SpeechConfig(host=sdk_objects.UNREACHABLE_HOST, subscription="dummy")
    config.set_property_by_name("SPEECH-Error-MaxRetryCount", "0")
    recognizer = speechsdk.SpeechRecognizer(
        speech_config=config, audio_config=sdk_objects.push_audio_config()
    )
    future = recognizer.recognize_once_async()
    pending = handletrace.snapshot().filter(kinds=["recognizer_async"])
    assert [(r.owner, r.parent, r.source) for r in pending] == [
        ("ResultFuture", "SpeechRecognizer", "future")
    ]
    result = future.get()
    assert result.reason == speechsdk.ResultReason.Canceled
    assert handletrace.snapshot().filter(kinds=["recognizer_async"]).records == ()
    assert handletrace.stats().released_by_cause["direct"] == 1
    del result, future, recognizer


def test_handle_created_on_another_thread_records_that_thread(
    hook_kind: str, installed: None
) -> None:
    """Records carry the creating thread's name."""
    holder: List[Any] = []
    worker = threading.Thread(
        target=lambda: holder.append(sdk_objects.speech_config()), name="maker"
    )
    worker.start()
    worker.join()
    records = handletrace.snapshot().filter(kinds=["speech_config"]).records
    assert [r.thread_name for r in records] == ["maker"]


def test_stack_depth_limits_captured_frames(
    hook_kind: str,
) -> None:
    """stack_depth bounds the frames kept; the total depth is still known."""
    handletrace.install(stack_depth=2)

    def level3() -> Any:
        return sdk_objects.speech_config()

    def level2() -> Any:
        return level3()

    config = level2()
    record = handletrace.snapshot().filter(kinds=["speech_config"]).records[0]
    assert [f.name for f in record.traceback] == ["level3", "speech_config"]
    assert record.traceback.total_depth is None  # the stack went deeper than the 2 kept
    del config


def test_stack_sample_zero_captures_no_stack(
    hook_kind: str,
) -> None:
    """stack_sample=0 tracks handles without stacks."""
    handletrace.install(stack_sample=0)
    config = sdk_objects.speech_config()
    records = handletrace.snapshot().records
    assert len(records) == 2
    assert all(len(r.traceback) == 0 for r in records)
    del config


def test_stack_sample_n_captures_one_stack_in_n(
    hook_kind: str,
) -> None:
    """stack_sample=N captures a stack for one handle in N."""
    handletrace.install(stack_sample=4)
    configs = [audio.AudioStreamFormat(samples_per_second=16000) for _ in range(40)]
    with_stack = [r for r in handletrace.snapshot().records if len(r.traceback)]
    assert len(with_stack) == 10
    del configs


def test_kinds_filter_tracks_only_those_kinds(
    hook_kind: str,
) -> None:
    """kinds=... limits tracking to the named kinds."""
    handletrace.install(kinds=["recognizer"])
    recognizer = sdk_objects.recognizer()
    assert [r.kind for r in handletrace.snapshot()] == ["recognizer"]
    del recognizer


def test_stack_never_contains_sdk_frames(hook_kind: str, installed: None) -> None:
    """SDK-internal frames are trimmed: the first frame shown is the user's line."""
    recognizer = sdk_objects.recognizer()
    record = handletrace.snapshot().filter(kinds=["property_bag"]).records[0]
    sdk_dir = speechsdk.__file__.rsplit("/", 1)[0]
    assert not any(f.filename.startswith(sdk_dir) for f in record.traceback)
    assert record.traceback.origin is not None
    assert record.traceback.origin.name == "recognizer"
    del recognizer


def test_concurrent_threads_lose_no_record_and_do_not_deadlock(
    hook_kind: str, installed: None
) -> None:
    """8 threads creating and dropping recognizers: every record accounted for."""
    stop = time.monotonic() + 2.0
    errors: List[BaseException] = []
    counts = [0] * 8

    def churn(index: int) -> None:
        try:
            while time.monotonic() < stop:
                recognizer = sdk_objects.recognizer()
                del recognizer
                counts[index] += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    stats = handletrace.stats()
    assert stats.kinds["recognizer"].created == sum(counts)
    assert stats.kinds["recognizer"].released == sum(counts)
    assert stats.live == 0
    assert stats.instrumentation_errors == 0


def test_gc_inside_registry_operations_keeps_registry_consistent(
    hook_kind: str, installed: None
) -> None:
    """With gc threshold 1, collections (and __del__) run inside registry code."""
    old = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    try:
        for _ in range(50):
            sdk_objects.make_leaky_transcriber([])
            handletrace.snapshot()
    finally:
        gc.set_threshold(*old)
    gc.collect()
    stats = handletrace.stats()
    assert stats.live == 0
    assert stats.created == stats.released
    assert stats.instrumentation_errors == 0


def test_handles_created_before_install_are_not_tracked() -> None:
    """Only handles created while installed are recorded; older ones are released normally."""
    early = sdk_objects.recognizer()
    handletrace.install()
    del early
    assert handletrace.stats().released == 0
    assert handletrace.snapshot().records == ()


def test_instance_of_handle_keeps_working_after_uninstall(
    hook_kind: str,
) -> None:
    """Handles created while installed are released normally after uninstall()."""
    handletrace.install()
    recognizer = sdk_objects.recognizer()
    handle = recognizer._handle
    handletrace.uninstall()
    assert interop._sdk_lib.recognizer_handle_is_valid(handle)
    del recognizer
    gc.collect()
    assert handletrace.snapshot().records == ()


def test_frame_of_record_is_formatted_only_on_demand(installed: None) -> None:
    """Tracebacks hold raw (code, line) pairs until their frames are asked for."""
    config = sdk_objects.speech_config()
    record = handletrace.snapshot().records[0]
    assert record.traceback._frames is None
    assert record.traceback.origin is not None
    assert record.traceback._frames is not None
    del config


def test_record_finds_its_handle_object_when_built(hook_kind: str, installed: None) -> None:
    """Entries keep no reference to their _Handle: a built record finds it by sequence number."""
    config = sdk_objects.speech_config()
    handles = {id(h) for h in vars(config).values() if isinstance(h, interop._Handle)}
    records = handletrace.snapshot().filter(kinds=["speech_config"]).records
    assert [id(record.handle_ref()) for record in records] == list(handles)
    del config


def test_handles_that_died_uninstalled_are_pruned_at_the_next_install(hook_kind: str) -> None:
    handletrace.install()
    config = sdk_objects.speech_config()
    kept = sdk_objects.recognizer()
    handletrace.uninstall()
    del config
    handletrace.install()
    assert sorted({r.kind for r in handletrace.snapshot().records}) == [
        "property_bag",
        "recognizer",
    ]
    assert handletrace.stats().released_by_cause["untracked"] == 2
    del kept


def test_frozen_handles_are_not_pruned_as_dead(hook_kind: str) -> None:
    """After gc.freeze() the scan cannot see a _Handle: alive or dead, its record stays."""
    handletrace.install()
    config = sdk_objects.speech_config()
    handletrace.uninstall()
    gc.freeze()
    try:
        handletrace.install()
        assert [r.kind for r in handletrace.snapshot().records] == ["speech_config", "property_bag"]
        assert handletrace.stats().released_by_cause["untracked"] == 0
    finally:
        gc.unfreeze()
    del config


FROZEN_FIRST = """
import gc
import json

gc.freeze()  # before handletrace is imported: as CPython 3.12 does with its start-up objects

import azure.cognitiveservices.speech as speechsdk
import handletrace

handletrace.install()
config = speechsdk.SpeechConfig(subscription="not-a-key", region="westus")
handletrace.uninstall()
del config  # finalised unseen
handletrace.install()  # prunes the records of handles that died uninstalled
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "live": [record.kind for record in handletrace.snapshot().records],
    "untracked": handletrace.stats().released_by_cause["untracked"],
}))
"""


def test_objects_frozen_before_handletrace_is_imported_do_not_stop_pruning(
    hook_kind: str, tmp_path: Path
) -> None:
    """Objects frozen before the import cannot be a _Handle on record (CPython 3.12 freezes
    its own start-up objects): handles that died uninstalled are still pruned."""
    script = tmp_path / "frozen_first.py"
    script.write_text(FROZEN_FIRST)
    env = {NO_EXTENSIONS_VARIABLE: os.environ.get(NO_EXTENSIONS_VARIABLE, "0")}
    result = run_script(script, env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["frozen"] > 0 and (seen["live"], seen["untracked"]) == ([], 2), seen


def test_clear_zeroes_the_counters_and_stats_shows_no_kind(hook_kind: str, installed: None) -> None:
    """clear() empties the counters in place (the C hooks keep them) and counting goes on."""
    configs = [sdk_objects.speech_config()]
    TRACKER.registry.clear()
    assert handletrace.stats().kinds == {}
    configs.append(sdk_objects.speech_config())
    configs.clear()
    stats = handletrace.stats()
    assert {k: (s.created, s.released, s.live, s.peak) for k, s in stats.kinds.items()} == {
        "speech_config": (1, 1, 0, 1),
        "property_bag": (1, 1, 0, 1),
    }
    assert stats.released_by_cause["del"] == 2


def test_an_index_entry_naming_another_object_at_the_address_is_not_trusted(
    hook_kind: str,
) -> None:
    """The SDK and the allocator reuse addresses: a _Handle at the address of one that was
    finalised unseen is not taken for it (it holds another ctypes handle)."""
    stranger = sdk_objects.speech_config()  # made before install: no record
    handletrace.install()
    config = sdk_objects.speech_config()
    own, strange = (vars(c)["_SpeechConfig__handle"] for c in (config, stranger))
    registry = TRACKER.registry
    seq = registry.seq_of_handle(own)
    assert seq == registry.last_seq() - 1  # its property bag came after it
    registry.handle_index[id(strange)] = seq  # as if it now sat at that address
    assert registry.seq_of_handle(strange) is None
    record = handletrace.snapshot().filter(kinds=["speech_config"]).records[0]
    assert record.handle_ref() is own
    del config, stranger, own, strange


def test_pruning_forgets_the_index_entries_of_dead_handles(hook_kind: str) -> None:
    handletrace.install()
    config = sdk_objects.speech_config()
    handletrace.uninstall()
    del config
    assert len(TRACKER.registry.handle_index) == 2  # finalised unseen
    handletrace.install()
    assert len(TRACKER.registry.handle_index) == 0
    assert handletrace.stats().released_by_cause["untracked"] == 2
