"""Reliability: faults in handletrace, in release functions, in owners and in user callbacks.

In every case the SDK call still happens, handletrace counts its own failure, and nothing of
handletrace's propagates into SDK callbacks or ``__del__``. Native releases are observed in
the SDK's own handle table (``handletrace.analysis.read_native_counts()``), not assumed.
"""

from __future__ import annotations

import functools
import io
import os
import sys
from typing import Any, Callable, Iterator, List

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.cognitiveservices.speech import audio, interop

import handletrace
from handletrace._core.state import TRACKER

from . import sdk_objects, speech_fixtures

speech_service = speech_fixtures.speech_service
service = speech_fixtures.service

SDK_DIR = os.path.dirname(os.path.abspath(speechsdk.__file__))


def native_audio_configs() -> int:
    counts = handletrace.analysis.read_native_counts()
    assert counts is not None, "the SDK's native handle table is not readable"
    return counts.types.get("ISpxAudioConfig", 0)


class _UnreadableThreadId:
    """Fault injection: a "collecting thread" that cannot be read or compared (handletrace's
    own __del__ code cannot fail by itself)."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("registry failure")

    __hash__ = None  # type: ignore[assignment]


def test_failure_inside_the_del_hook_is_counted_and_the_native_release_still_happens(
    hook_kind: str,
    installed: None,
    no_gc: None,
    wav: str,
    unraisable: List[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure in the __del__ hook's bookkeeping is counted; the SDK's release runs."""
    configs = [audio.AudioConfig(filename=wav) for _ in range(3)]
    native_before = native_audio_configs()
    monkeypatch.setattr(TRACKER, "gc_thread", _UnreadableThreadId())
    del configs
    assert native_audio_configs() == native_before - 3
    assert unraisable == []
    assert handletrace.stats().instrumentation_errors == 6  # audio_config and property_bag
    # RuntimeError from the Python hook's comparison, TypeError from the C hook's reading
    assert len(TRACKER.registry.last_errors) == 6
    assert all(e.startswith("_Handle.__del__: ") for e in TRACKER.registry.last_errors)


def fake_release(real: Any, calls: List[int], name: str) -> Callable[[Any], Any]:
    """A release function that really releases, then fails (no real one ever raises)."""

    def release(handle: Any) -> Any:
        calls.append(handle.value)
        real(handle)
        raise OSError(f"{name} failed")

    release.__name__ = name
    return release


def test_release_function_that_fails_is_still_called_and_its_record_released_once(
    wav: str, unraisable: List[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: a fake _sdk_lib release function (the real ones cannot fail) raises.

    The failure is the SDK's own, so it surfaces exactly as it does without handletrace: as
    an unraisable exception of ``_Handle.__del__``; the record is released once, cause del.
    """
    calls: List[int] = []
    name = "audio_config_release"
    monkeypatch.setattr(
        interop._sdk_lib, name, fake_release(getattr(interop._sdk_lib, name), calls, name)
    )
    control = audio.AudioConfig(filename=wav)
    del control  # without handletrace: how the SDK surfaces the failure
    assert len(calls) == 1 and len(unraisable) == 1
    handletrace.install()
    config = audio.AudioConfig(filename=wav)
    address = handletrace.snapshot().filter(kinds=["audio_config"]).records[0].address
    del config
    assert calls[1:] == [address]
    assert [(type(u.exc_value), str(u.exc_value)) for u in unraisable] == [
        (OSError, "audio_config_release failed")
    ] * 2
    stats = handletrace.stats()
    assert (stats.kinds["audio_config"].released, stats.kinds["audio_config"].live) == (1, 0)
    assert stats.released_by_cause["del"] == 2
    assert stats.instrumentation_errors == 0


def test_direct_release_that_fails_propagates_unchanged_and_releases_the_record_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fault injection: a fake async-handle release (called directly by ResultFuture.get)."""
    calls: List[int] = []
    name = "recognizer_async_handle_release"
    monkeypatch.setattr(
        interop._sdk_lib, name, fake_release(getattr(interop._sdk_lib, name), calls, name)
    )
    handletrace.install()
    config = speechsdk.SpeechConfig(host=sdk_objects.UNREACHABLE_HOST, subscription="dummy")
    config.set_property_by_name("SPEECH-Error-MaxRetryCount", "0")
    recognizer = speechsdk.SpeechRecognizer(
        speech_config=config, audio_config=sdk_objects.push_audio_config()
    )
    future = recognizer.recognize_once_async()
    address = handletrace.snapshot().filter(kinds=["recognizer_async"]).records[0].address
    with pytest.raises(OSError, match="^recognizer_async_handle_release failed$"):
        future.get()
    assert calls == [address]
    stats = handletrace.stats()
    assert stats.kinds["recognizer_async"].live == 0
    assert stats.released_by_cause["direct"] == 1
    assert stats.instrumentation_errors == 0
    del future, recognizer


class HostileConfig(speechsdk.SpeechConfig):
    """A SpeechConfig whose attribute access raises for every caller but the SDK (as a
    broken proxy or descriptor might); the SDK itself can still use it."""

    def __getattribute__(self, name: str) -> Any:
        caller = sys._getframe(1).f_code.co_filename
        if not caller.startswith(SDK_DIR):
            raise RuntimeError("hostile attribute access")
        return object.__getattribute__(self, name)


@pytest.fixture
def hostile(installed: None) -> Iterator[HostileConfig]:
    config = HostileConfig(subscription="not-a-key", region="westus")
    yield config
    del config


DIAGNOSIS_FAULTS = {
    "reference path search: RuntimeError",
    "signals tree: RuntimeError",
    "diagnose: RuntimeError",
    # each known-pattern detector that looks at the owner counts its own failed look
    "pattern callback-captures-owner: RuntimeError",
    "pattern token-credential-cycle: RuntimeError",
    "pattern fire-and-forget-future: RuntimeError",
    "pattern recognizer-subclass-del: RuntimeError",
    "pattern synthesizer-del-misses-token-signal: RuntimeError",
}


def test_owner_whose_attribute_access_raises_is_tracked_and_reported(
    hostile: HostileConfig,
) -> None:
    """Tracking never touches the owner's attributes; the reports print it and count the
    diagnosis's failed looks at it."""
    owners = [(r.kind, r.owner_label) for r in handletrace.snapshot()]
    text, data = io.StringIO(), io.StringIO()
    handletrace.report(text)
    handletrace.report(data, "json")
    assert owners == [
        ("speech_config", "HostileConfig"),
        ("property_bag", "PropertyCollection of HostileConfig"),
    ]
    assert "HostileConfig" in text.getvalue() and "HostileConfig" in data.getvalue()
    assert handletrace.stats().instrumentation_errors > 0
    assert set(TRACKER.registry.last_errors) <= DIAGNOSIS_FAULTS


def test_diagnosed_report_of_an_owner_whose_attribute_access_raises_counts_the_fault(
    hostile: HostileConfig,
) -> None:
    """build(diagnose=True) still returns the report; the failed looks are counted."""
    report = handletrace.build_report(diagnose=True)
    assert [group.kinds for group in report.groups] != []
    assert handletrace.stats().instrumentation_errors > 0
    assert set(TRACKER.registry.last_errors) <= DIAGNOSIS_FAULTS


def test_diagnose_of_an_owner_whose_attribute_access_raises_does_not_raise(
    hostile: HostileConfig,
) -> None:
    """handletrace.diagnose() returns a diagnosis and counts the fault."""
    handletrace.diagnose()
    assert handletrace.stats().instrumentation_errors > 0


def test_release_all_is_not_stopped_by_an_owner_whose_attribute_access_raises(
    hostile: HostileConfig, wav: str
) -> None:
    """release_all() still releases the other leaked handles."""
    others = [audio.AudioConfig(filename=wav) for _ in range(2)]
    native_before = native_audio_configs()
    handletrace.release_all(kinds="audio_config")
    handletrace.release_all()
    assert native_audio_configs() == native_before - 2
    del others


# -- user callbacks that raise, on the SDK's native threads ----------------------------


def raise_in(events: List[str], name: str, event: Any) -> None:
    events.append(name)
    raise ValueError(f"user callback for {name} failed")


def session_with_raising_callbacks(service: Any) -> List[str]:
    """A recognize_once() session whose every callback raises; returns the events seen."""
    events: List[str] = []
    feed = speech_fixtures.push_stream_audio_config(speech_fixtures.ONE_SECOND)
    recognizer = speechsdk.SpeechRecognizer(
        speech_fixtures.speech_config(service), audio_config=feed.config
    )
    for name in ("session_started", "recognized", "session_stopped"):
        getattr(recognizer, name).connect(functools.partial(raise_in, events, name))
    feed.feed_when_connected(recognizer)
    result = recognizer.recognize_once()
    assert result.text == "hello world"
    for name in ("session_started", "recognized", "session_stopped"):
        getattr(recognizer, name).disconnect_all()
    del result, recognizer, feed
    return events


def test_user_callbacks_that_raise_on_sdk_threads_leave_tracking_exact(
    service: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """Raising callbacks: the session completes as without handletrace, nothing leaks."""
    control = session_with_raising_callbacks(service)
    control_err = capfd.readouterr().err
    handletrace.install()
    traced = session_with_raising_callbacks(service)
    traced_err = capfd.readouterr().err
    stats = handletrace.stats()
    assert traced == control
    assert "recognized" in traced
    assert traced_err == control_err  # the SDK logs callback exceptions; nothing is added
    assert stats.kinds["recognizer"].created == stats.kinds["recognizer"].released == 1
    assert stats.instrumentation_errors == 0


def test_failure_while_recording_handles_made_on_sdk_callback_threads_is_counted_not_raised(
    service: Any, hook_kind: str, break_recording: Callable[[], None]
) -> None:
    """Fault injection (record creation cannot fail by itself): the event and result handles
    the SDK makes on its own threads still reach the callbacks; each failure is counted."""
    control = speech_fixtures.recognize_once(service)[1].names()
    handletrace.install()
    break_recording()
    result, log = speech_fixtures.recognize_once(service)
    assert result.text == "hello world"
    assert log.names() == control
    stats = handletrace.stats()
    assert stats.created == 0
    assert stats.instrumentation_errors > len(control)  # every handle, on every thread
    assert set(TRACKER.registry.last_errors) == {
        "_Handle.__init__: RuntimeError",
        "ResultFuture.__init__: RuntimeError",
    }
