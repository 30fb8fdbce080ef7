"""Reliability: 8 threads running real sessions while handletrace is switched on and off.

Each thread runs recognition and transcription sessions against the local speech service;
the SDK fires their callbacks (and makes event and result handles) on its own native
threads. Meanwhile another thread toggles ``install()`` / ``uninstall()`` every few
milliseconds. Nothing may deadlock or raise; afterwards every record is accounted for: no
record is lost (created = released + live) and none is a phantom (no live record without
a live handle; the SDK's own handle table agrees).
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any, Dict, List

import azure.cognitiveservices.speech as speechsdk

import handletrace
from handletrace._core.state import TRACKER

from . import sdk_objects, speech_fixtures

speech_service = speech_fixtures.speech_service
service = speech_fixtures.service

THREADS = 8
SESSIONS_PER_THREAD = 10
JOIN_TIMEOUT = 120.0
#: The toggler goes on until the sessions are done and it has switched at least this often.
MIN_TOGGLES = 10


def run_sessions(
    service: Any, index: int, outcomes: List[Any], errors: List[BaseException]
) -> None:
    try:
        for session in range(SESSIONS_PER_THREAD):
            if (index + session) % 2:
                result, log = speech_fixtures.recognize_once(service)
                outcomes.append(("recognize_once", result.text, "recognized" in log.names()))
            else:
                log = speech_fixtures.run_continuous(service, transcriber=True)
                texts = [event[0] for event in log.named("transcribed")]
                outcomes.append(("transcribe", texts[0] if texts else None, True))
    except BaseException as exc:  # pragma: no cover - reported by the test
        errors.append(exc)


def toggle(stop: threading.Event, counts: Dict[str, int], errors: List[BaseException]) -> None:
    """Install and uninstall every few milliseconds until ``stop`` is set and at least
    :data:`MIN_TOGGLES` rounds were made (however fast or slow the sessions ran)."""
    try:
        while not stop.is_set() or counts["installs"] < MIN_TOGGLES:
            handletrace.install()
            counts["installs"] += 1
            time.sleep(0.004)
            handletrace.uninstall()
            time.sleep(0.002)
    except BaseException as exc:  # pragma: no cover - reported by the test
        errors.append(exc)


def test_sessions_on_8_threads_with_install_toggled_lose_and_invent_no_record(
    hook_kind: str,
    service: Any,
) -> None:
    """No deadlock, no exception, every session completes, every record accounted for."""
    native_before = handletrace.analysis.read_native_counts()
    outcomes: List[Any] = []
    errors: List[BaseException] = []
    counts = {"installs": 0}
    stop = threading.Event()
    toggler = threading.Thread(target=toggle, args=(stop, counts, errors), name="toggler")
    workers = [
        threading.Thread(target=run_sessions, args=(service, i, outcomes, errors), name=f"w{i}")
        for i in range(THREADS)
    ]
    toggler.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=JOIN_TIMEOUT)
    stop.set()
    toggler.join(timeout=JOIN_TIMEOUT)
    assert [t.name for t in (*workers, toggler) if t.is_alive()] == []  # no deadlock
    assert errors == []
    assert len(outcomes) == THREADS * SESSIONS_PER_THREAD, outcomes
    assert {(kind, text, ok) for kind, text, ok in outcomes} <= {
        ("recognize_once", "hello world", True),
        ("transcribe", "hello world", True),
    }

    handletrace.install()  # prunes records of handles that died while uninstalled
    gc.collect()
    stats = handletrace.stats()
    live = handletrace.snapshot().records
    assert stats.created > 0
    assert stats.created == stats.released + stats.live  # nothing lost
    assert [r for r in live if r.source == "handle" and r.handle_ref() is None] == []
    # The sessions released everything they made.
    assert stats.live == 0, [(r.kind, r.source, r.owner_label, r.thread_name) for r in live]
    # Some died while uninstalled (the toggler kept switching while the sessions ran).
    assert stats.released_by_cause["untracked"] > 0, (stats.released_by_cause, counts)
    assert stats.instrumentation_errors == 0
    native_after = handletrace.analysis.read_native_counts()
    if native_before is not None and native_after is not None:
        # The SDK agrees: nothing alive.
        assert native_after.total == native_before.total, (native_before, native_after)
    assert TRACKER.registry.last_errors == []


def offline_future() -> Any:
    """A recognizer and its pending recognize_once future (the connection fails at once)."""
    config = speechsdk.SpeechConfig(host=sdk_objects.UNREACHABLE_HOST, subscription="dummy")
    config.set_property_by_name("SPEECH-Error-MaxRetryCount", "0")
    recognizer = speechsdk.SpeechRecognizer(
        speech_config=config, audio_config=sdk_objects.push_audio_config()
    )
    return recognizer, recognizer.recognize_once_async()


def test_future_resolved_while_uninstalled_is_not_reported_after_install() -> None:
    """get() released the async handle unseen: the next install() drops the record."""
    handletrace.install()
    recognizer, future = offline_future()
    handletrace.uninstall()
    future.get()
    del future
    handletrace.install()
    assert handletrace.snapshot().filter(kinds=["recognizer_async"]).records == ()
    assert handletrace.stats().released_by_cause["untracked"] == 1
    del recognizer


def test_future_dropped_unresolved_while_installed_stays_reported() -> None:
    """A future nobody resolved never releases its async handle: a real leak, still shown."""
    handletrace.install()
    recognizer, future = offline_future()
    del future
    handletrace.uninstall()
    handletrace.install()
    assert [r.kind for r in handletrace.snapshot().filter(kinds=["recognizer_async"])] == [
        "recognizer_async"
    ]
    del recognizer


def test_future_resolved_and_dropped_as_uninstall_removes_the_wrappers_is_not_reported(
    monkeypatch: Any,
) -> None:
    """A future resolved unseen (wrappers just removed) and dropped before uninstall() ends
    was listed while the wrappers were in place: the next install() drops its record."""
    from handletrace._instrument import patcher as _patching

    handletrace.install()
    recognizer, future = offline_future()
    pending = [future]
    del future
    remove = _patching.Patcher.remove

    def remove_then_resolve(patcher: Any) -> None:
        remove(patcher)
        pending.pop().get()  # the async handle is released by the SDK's own function

    monkeypatch.setattr(_patching.Patcher, "remove", remove_then_resolve)
    handletrace.uninstall()
    monkeypatch.undo()
    handletrace.install()
    assert handletrace.snapshot().filter(kinds=["recognizer_async"]).records == ()
    assert handletrace.stats().released_by_cause["untracked"] == 1
    del recognizer
