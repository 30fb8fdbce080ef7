"""Using an SDK object after handletrace released it: one clear DisposedError saying which
object, by which call and where (never the SDK's native stack dump or an AttributeError
from a NULL result); disposed objects are still disposed again, released and collected
silently, and objects never disposed are not touched."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any, List

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.cognitiveservices.speech import audio, interop

import handletrace
from handletrace.errors import DisposedError, HandleTraceError

from . import sdk_objects

REGION = speechsdk.PropertyId.SpeechServiceConnection_Region


def dispose_here(obj: Any) -> str:
    """``handletrace.dispose(obj)``; returns the ``file:line`` of that call."""
    line = sys._getframe().f_lineno + 1
    handletrace.dispose(obj)
    return f"{__file__}:{line}"


def disposed(what: str, site: str, how: str = "dispose") -> str:
    """The exact DisposedError message."""
    return f"{what} was disposed by handletrace.{how}() at {site}; it cannot be used any more"


def raised(call: Any) -> str:
    """The message of the DisposedError ``call()`` raises (fails on any other outcome)."""
    with pytest.raises(DisposedError) as info:
        call()
    return str(info.value)


class Pull(audio.PullAudioInputStreamCallback):
    def read(self, buffer: memoryview) -> int:
        return 0


# -- the error -------------------------------------------------------------------------------


def test_recognize_once_on_a_disposed_recognizer_says_where_it_was_disposed() -> None:
    """recognize_once(): DisposedError naming the recognizer and the dispose() line."""
    recognizer = sdk_objects.recognizer()
    site = dispose_here(recognizer)
    assert raised(recognizer.recognize_once) == disposed("SpeechRecognizer", site)


def test_get_property_on_a_disposed_transcribers_properties_raises_disposed_error() -> None:
    """properties.get_property() (was: AttributeError 'NoneType' has no attribute 'decode'),
    through the property bag fetched before or after dispose()."""
    transcriber = sdk_objects.transcriber()
    before = transcriber.properties
    site = dispose_here(transcriber)
    message = disposed("PropertyCollection of ConversationTranscriber", site)
    assert raised(lambda: before.get_property(REGION)) == message
    assert raised(lambda: transcriber.properties.get_property(REGION)) == message


def test_start_continuous_recognition_on_a_disposed_recognizer_raises_disposed_error() -> None:
    """start_continuous_recognition() (was: the SDK's native call stack in a RuntimeError)."""
    recognizer = sdk_objects.recognizer()
    site = dispose_here(recognizer)
    assert raised(recognizer.start_continuous_recognition) == disposed("SpeechRecognizer", site)


def test_speak_text_on_a_disposed_synthesizer_raises_disposed_error() -> None:
    """A synthesizer's speak_text()."""
    synthesizer = sdk_objects.synthesizer()
    site = dispose_here(synthesizer)
    message = raised(lambda: synthesizer.speak_text("hello"))
    assert message == disposed("SpeechSynthesizer", site)


def test_connecting_a_signal_of_a_disposed_object_raises_disposed_error() -> None:
    """connect() on a signal made before dispose() (was: silently ignored by the SDK) and on
    one first asked for after it."""
    recognizer = sdk_objects.recognizer()
    made_before = recognizer.canceled
    site = dispose_here(recognizer)
    message = disposed("SpeechRecognizer", site)
    assert raised(lambda: made_before.connect(print)) == message
    assert raised(lambda: recognizer.recognized.connect(print)) == message
    assert raised(lambda: recognizer.session_started.connect(print)) == message


def test_disconnecting_any_signal_of_a_disposed_object_stays_silent() -> None:
    """Cleanup code may disconnect every signal after dispose(), made before or not."""
    recognizer = sdk_objects.recognizer()
    recognizer.canceled.connect(print)
    handletrace.dispose(recognizer)
    for name in ("canceled", "recognized", "session_stopped"):
        getattr(recognizer, name).disconnect_all()


def test_disposed_error_is_a_runtime_error_and_a_handletrace_error() -> None:
    """Handlers written for the SDK's RuntimeError, or for handletrace's errors, catch it."""
    assert issubclass(DisposedError, RuntimeError)
    assert issubclass(DisposedError, HandleTraceError)
    assert handletrace.errors.DisposedError is DisposedError


# -- which call, where ---------------------------------------------------------------------


def test_disposing_names_the_with_statement() -> None:
    """disposing(): the site is the line of the with statement."""
    line = sys._getframe().f_lineno + 1
    with handletrace.disposing(sdk_objects.recognizer()) as recognizer:
        pass
    message = raised(recognizer.recognize_once)
    assert message == disposed("SpeechRecognizer", f"{__file__}:{line}", "disposing")


def test_release_all_names_its_caller(installed: None) -> None:
    """release_all(): the site is the line that called it."""
    recognizer = sdk_objects.recognizer()
    line = sys._getframe().f_lineno + 1
    handletrace.release_all()
    message = raised(recognizer.recognize_once)
    assert message == disposed("SpeechRecognizer", f"{__file__}:{line}", "release_all")


def test_adispose_names_the_awaiting_line() -> None:
    """adispose(): the site is the line awaiting it (the work runs in another thread)."""
    recognizer = sdk_objects.recognizer()
    lines: List[int] = []

    async def main() -> None:
        lines.append(sys._getframe().f_lineno + 1)
        await handletrace.adispose(recognizer)

    asyncio.run(main())
    message = raised(recognizer.recognize_once)
    assert message == disposed("SpeechRecognizer", f"{__file__}:{lines[0]}", "adispose")


# -- what stays silent ----------------------------------------------------------------------


def test_dispose_twice_release_all_and_collection_stay_silent(
    installed: None, unraisable: List[Any]
) -> None:
    """A second dispose(), release_all() and the collection of disposed objects (whose SDK
    finalisers read the NULL handle) raise nothing and report no error."""
    objects = [
        sdk_objects.transcriber(),
        sdk_objects.recognizer(),
        sdk_objects.synthesizer(),
        audio.PullAudioInputStream(Pull()),  # its SDK finaliser reads its handle again
        audio.PushAudioOutputStream(audio.PushAudioOutputStreamCallback()),  # so does this one
    ]
    for obj in objects:
        assert handletrace.dispose(obj).errors == ()
    again = [handletrace.dispose(obj) for obj in objects]
    assert [(r.already_disposed, r.errors) for r in again] == [(True, ())] * len(objects)
    assert handletrace.release_all().errors == ()
    del objects, again
    gc.collect()
    assert unraisable == []
    assert handletrace.stats().instrumentation_errors == 0


def test_objects_never_disposed_are_not_touched(installed: None) -> None:
    """The guard is on disposed objects only: the SDK's classes are unchanged, a live
    object's handles have no instance attribute."""
    recognizer = sdk_objects.recognizer()
    handletrace.dispose(sdk_objects.recognizer())
    handles = [vars(recognizer)["_Recognizer__handle"]]
    handles.append(vars(recognizer.properties)["_PropertyCollection__handle"])
    assert [sorted(vars(h)) for h in handles] == [
        ["_Handle__handle", "_Handle__release_fn", "_Handle__test_fn"]
    ] * 2
    assert vars(interop._Handle)["get"].__module__ == interop.__name__
    assert recognizer.properties.get_property(REGION) == "westus"
    handletrace.dispose(recognizer)
