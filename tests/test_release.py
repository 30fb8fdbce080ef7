"""Safe forced release against the real SDK, offline: dispose(), disposing(), release_all(),
adispose(). Never a double free, never a release of an object the disposed one does not own."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import inspect
import sys
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.cognitiveservices.speech import (
    audio,
    dialog,
    interop,
    languageconfig,
    transcription,
)

import handletrace
from handletrace import DisposeResult, HandleTraceWarning
from handletrace._sdk.signals import callbacks_of, event_signal_type, signal_names
from handletrace.errors import DisposedError
from handletrace.release import STOP_TIMEOUT_PROPERTY, is_disposed

from . import sdk_objects

# -- helpers -----------------------------------------------------------------------------


def native_bool(name: str) -> Callable[[Any], bool]:
    """A private pointer to an SDK ``*_is_valid`` function that returns a real ``bool``."""
    function = interop._sdk_lib[name]  # indexing makes a new function object
    function.restype = ctypes.c_bool
    return function  # type: ignore[no-any-return]


recognizer_is_valid = native_bool("recognizer_handle_is_valid")


def native_error_code(hr: int) -> int:
    """The error code of an SDK ``AZACHR`` (an error handle), releasing that error."""
    get_code = interop._sdk_lib["error_get_error_code"]
    get_code.restype = ctypes.c_size_t
    release = interop._sdk_lib["error_release"]
    error = ctypes.c_void_p(hr)
    code = int(get_code(error))
    release(error)
    return code


SPXERR_INVALID_ARG = 0x5


class ReleaseCounter:
    """Counts the native release calls made through each ``_Handle`` of an object.

    It replaces each ``_Handle``'s release function (on that instance only) with a counting
    wrapper: every path that frees the handle, ``dispose()`` or a later ``__del__``, goes
    through it, unless it has been neutralised.
    """

    def __init__(self, *owners: Any) -> None:
        self.calls: Dict[str, int] = {}
        for owner in owners:
            for handle in handles_of(owner):
                self._wrap(handle)

    def _wrap(self, handle: Any) -> None:
        original = handle.__dict__["_Handle__release_fn"]
        name = original.__name__
        self.calls[name] = 0

        @functools.wraps(original)
        def counting(value: Any) -> Any:
            self.calls[name] += 1
            return original(value)

        handle.__dict__["_Handle__release_fn"] = counting


def handles_of(obj: Any) -> List[Any]:
    """The ``_Handle`` objects directly in ``obj`` and in its property collections."""
    found = []
    for value in vars(obj).values():
        if isinstance(value, interop._Handle):
            found.append(value)
        elif isinstance(value, speechsdk.PropertyCollection):
            found.extend(v for v in vars(value).values() if isinstance(v, interop._Handle))
    return found


def live_kinds() -> Dict[str, int]:
    return {kind: s.live for kind, s in handletrace.stats().kinds.items() if s.live}


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def leaky_transcriber() -> Tuple[transcription.ConversationTranscriber, List[Any]]:
    """The seed's leak: a transcriber whose callback closure captures the transcriber."""
    segments: List[Any] = []
    transcriber = sdk_objects.transcriber()

    def on_transcribed(evt: Any) -> None:
        segments.append((transcriber, evt))

    transcriber.transcribed.connect(on_transcribed)
    return transcriber, segments


class BlockingPullStream(audio.PullAudioInputStreamCallback):
    """A pull stream whose ``read()`` blocks until ``unblock`` is set.

    The SDK reads audio on its own thread; stopping or releasing a recognizer waits for a
    running ``read()`` to return. This makes a real, offline, slow teardown.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Event()
        self.unblock = threading.Event()

    def read(self, buffer: memoryview) -> int:
        self.reading.set()
        self.unblock.wait(30)
        return 0  # end of stream

    def close(self) -> None:
        pass


@pytest.fixture
def blocked_recognizer() -> Iterator[Tuple[speechsdk.SpeechRecognizer, BlockingPullStream]]:
    """A recognizer running continuous recognition, its audio thread blocked in ``read()``."""
    callback = BlockingPullStream()
    stream = audio.PullAudioInputStream(callback)
    config = speechsdk.SpeechConfig(host=sdk_objects.UNREACHABLE_HOST, subscription="dummy")
    recognizer = speechsdk.SpeechRecognizer(config, audio_config=audio.AudioConfig(stream=stream))
    recognizer.start_continuous_recognition_async().get()
    assert callback.reading.wait(10), "the SDK never read from the pull stream"
    try:
        yield recognizer, callback
    finally:
        callback.unblock.set()


# -- dispose(): releasing at once, once ------------------------------------------------


def test_dispose_releases_recognizer_and_property_bag_at_once_without_gc(
    installed: None, no_gc: None
) -> None:
    """A transcriber in a callback cycle is released by dispose(), without gc.collect()."""
    transcriber, _ = leaky_transcriber()
    address = transcriber._handle.value
    result = handletrace.dispose(transcriber)
    assert result.released == ("recognizer", "property_bag")
    assert result.disconnected == ("transcribed",)
    assert not recognizer_is_valid(ctypes.c_void_p(address))
    assert live_kinds() == {}
    assert handletrace.stats().released_by_cause["forced"] == 2


def test_dispose_then_del_and_gc_release_nothing_twice(installed: None, no_gc: None) -> None:
    """After dispose(), dropping the object and collecting it frees no handle again."""
    transcriber, _ = leaky_transcriber()
    counter = ReleaseCounter(transcriber)
    handletrace.dispose(transcriber)
    assert counter.calls == {"recognizer_handle_release": 1, "property_bag_release": 1}
    causes_before = handletrace.stats().released_by_cause
    del transcriber
    gc.collect()
    assert counter.calls == {"recognizer_handle_release": 1, "property_bag_release": 1}
    assert handletrace.stats().released_by_cause == causes_before
    assert live_kinds() == {}


def test_handles_without_validity_check_are_released_once(installed: None) -> None:
    """A Participant's handle (test_fn=None: its __del__ never checks) is freed exactly once."""
    participant = transcription.Participant("user@example.com", "en-US")
    counter = ReleaseCounter(participant)
    result = handletrace.dispose(participant)
    del participant
    gc.collect()
    assert result.released == ("participant", "property_bag")
    assert counter.calls == {"participant_release_handle": 1, "property_bag_release": 1}


def test_dispose_works_without_install() -> None:
    """Without install() there is no bookkeeping, but the release is the same."""
    transcriber, _ = leaky_transcriber()
    counter = ReleaseCounter(transcriber)
    result = handletrace.dispose(transcriber)
    del transcriber
    gc.collect()
    assert result.released == ("recognizer", "property_bag")
    assert counter.calls == {"recognizer_handle_release": 1, "property_bag_release": 1}
    assert handletrace.stats().released_by_cause["forced"] == 0


def test_dispose_twice_does_nothing_the_second_time(installed: None) -> None:
    """The second call reports already_disposed and releases nothing."""
    recognizer = sdk_objects.recognizer()
    counter = ReleaseCounter(recognizer)
    handletrace.dispose(recognizer)
    second = handletrace.dispose(recognizer)
    assert second == DisposeResult(target="SpeechRecognizer", already_disposed=True)
    assert counter.calls == {"recognizer_handle_release": 1, "property_bag_release": 1}


def test_dispose_none_and_a_dead_weakref_are_harmless() -> None:
    """None and a weak reference to a collected object: nothing to do."""
    recognizer = sdk_objects.recognizer()
    ref = weakref.ref(recognizer)
    del recognizer
    gc.collect()
    assert handletrace.dispose(None) == DisposeResult(target="", already_disposed=True)
    assert handletrace.dispose(ref) == DisposeResult(target="", already_disposed=True)


def test_dispose_accepts_a_live_weakref(installed: None) -> None:
    """A weak reference to a live object disposes that object."""
    recognizer = sdk_objects.recognizer()
    result = handletrace.dispose(weakref.ref(recognizer))
    assert result.released == ("recognizer", "property_bag")
    assert is_disposed(recognizer)


def race(target: Any) -> List[DisposeResult]:
    """``dispose(target)`` from two threads released at the same moment."""
    barrier = threading.Barrier(2)
    results: List[DisposeResult] = []

    def run() -> None:
        barrier.wait()
        results.append(handletrace.dispose(target))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_concurrent_dispose_releases_once() -> None:
    """Two threads disposing the same object: each handle is released by one of them."""
    for _ in range(30):
        recognizer = sdk_objects.recognizer()
        counter = ReleaseCounter(recognizer)
        results = race(recognizer)
        assert counter.calls == {"recognizer_handle_release": 1, "property_bag_release": 1}
        assert sorted(r.released for r in results) == [(), ("recognizer", "property_bag")]


def test_releasing_the_same_handle_from_two_threads_frees_it_once() -> None:
    """The _Handle-level guard: concurrent releases of one _Handle call the SDK once."""
    for _ in range(30):
        recognizer = sdk_objects.recognizer()
        counter = ReleaseCounter(recognizer)
        results = race(recognizer._Recognizer__handle)  # type: ignore[attr-defined]
        assert counter.calls["recognizer_handle_release"] == 1
        assert sorted(r.released for r in results) == [(), ("recognizer",)]


# -- neutralised handles: address reuse, later use -----------------------------------------


def handle_value(handle_obj: Any) -> Any:
    """The ``c_void_p`` an ``interop._Handle`` holds (read past its ``get()``, which raises
    DisposedError once its object is disposed)."""
    return vars(handle_obj)["_Handle__handle"]


def test_disposed_handles_are_null() -> None:
    """The object's handle and each signal's copy of it are NULL after dispose()."""
    transcriber, _ = leaky_transcriber()
    signal = transcriber.transcribed
    properties = transcriber.properties
    handletrace.dispose(transcriber)
    assert handle_value(vars(transcriber)["_Recognizer__handle"]).value is None
    assert handle_value(vars(properties)["_PropertyCollection__handle"]).value is None
    assert signal._EventSignal__handle.value is None  # type: ignore[attr-defined]


def test_using_a_disposed_recognizer_fails_cleanly() -> None:
    """Methods that reach the SDK raise DisposedError (a RuntimeError) instead of touching
    freed memory."""
    recognizer = sdk_objects.recognizer()
    handletrace.dispose(recognizer)
    with pytest.raises(RuntimeError, match="^SpeechRecognizer was disposed by handletrace"):
        recognizer.start_continuous_recognition_async()


def test_connect_after_dispose_raises_and_the_signal_holds_a_null_handle() -> None:
    """connect() on a disposed object's signal raises DisposedError; the signal's copy of
    the handle is NULL, which the SDK refuses (the stale address is never passed again)."""
    recognizer = sdk_objects.recognizer()
    signal = recognizer.recognized
    handletrace.dispose(recognizer)
    with pytest.raises(DisposedError):
        signal.connect(lambda evt: None)
    assert callbacks_of(signal) == ()
    set_callback = interop._sdk_lib["recognizer_recognized_set_callback"]
    set_callback.restype = ctypes.c_size_t
    hr = set_callback(signal._EventSignal__handle, None, None)  # type: ignore[attr-defined]
    assert native_error_code(hr) == SPXERR_INVALID_ARG


def _reuse_trials(trials: int, release: Callable[[Any], None]) -> Tuple[int, int]:
    """Release A with ``release``, create B, drop A; count (B at A's address, B broken)."""
    config = sdk_objects.speech_config()
    audio_config = sdk_objects.push_audio_config()
    reused = broken = 0
    for _ in range(trials):
        first, _ = leaky_transcriber()
        address = first._handle.value
        release(first)
        time.sleep(0.01)  # the native teardown may finish on an SDK thread
        second = transcription.ConversationTranscriber(config, audio_config=audio_config)
        reused += second._handle.value == address
        del first
        gc.collect()  # A's Python objects, _Handles included, are finalised here
        try:
            region = second.properties.get_property(
                speechsdk.PropertyId.SpeechServiceConnection_Region
            )
        except (RuntimeError, AttributeError):  # a freed property bag: error or NULL string
            region = None
        readable = region == "westus"
        broken += not (recognizer_is_valid(second._handle) and readable)
        handletrace.dispose(second)
    return reused, broken


def test_an_object_created_at_a_disposed_objects_address_survives_its_collection() -> None:
    """Dispose A, create B (usually at A's address), collect A: B still works."""
    reused, broken = _reuse_trials(20, handletrace.dispose)
    assert reused >= 5  # the SDK does reuse addresses, so this test means something
    assert broken == 0


def test_control_a_release_that_leaves_handles_armed_frees_the_next_object() -> None:
    """Control for the test above: releasing without neutralising breaks B.

    This is the hazard dispose() exists to avoid: A's armed ``_Handle.__del__`` releases
    whatever lives at A's old address when A is collected.
    """

    def naive_release(obj: Any) -> None:
        obj.transcribed.disconnect_all()
        for handle in handles_of(obj):
            handle._Handle__release_fn(handle.get())

    reused, broken = _reuse_trials(5, naive_release)
    assert reused >= 1
    assert broken >= 1


# -- what dispose() owns -----------------------------------------------------------------


def test_dispose_leaves_the_configs_passed_in_alone(installed: None) -> None:
    """The user's SpeechConfig and AudioConfig are referenced, not owned: they stay usable."""
    config = sdk_objects.speech_config()
    audio_config = sdk_objects.push_audio_config()
    recognizer = speechsdk.SpeechRecognizer(config, audio_config=audio_config)
    handletrace.dispose(recognizer)
    assert live_kinds() == {
        "speech_config": 1,
        "audio_config": 1,
        "audio_stream": 1,
        "property_bag": 2,
    }
    another = speechsdk.SpeechRecognizer(config, audio_config=audio_config)
    assert recognizer_is_valid(another._handle)


def test_dispose_leaves_a_synthesizers_audio_config_alone(installed: None) -> None:
    """A synthesizer keeps its AudioConfig alive but does not own it."""
    output = audio.AudioOutputConfig(stream=audio.PullAudioOutputStream())
    synthesizer = speechsdk.SpeechSynthesizer(sdk_objects.speech_config(), audio_config=output)
    result = handletrace.dispose(synthesizer)
    assert result.released == ("synthesizer", "property_bag")
    assert output._handle.value is not None
    assert "audio_config" in live_kinds()


def test_dispose_never_runs_a_user_subclass_finaliser(installed: None) -> None:
    """Only the SDK's own finalisers run early; a user's ``__del__`` runs when Python says."""
    finalised: List[str] = []

    class MyRecognizer(speechsdk.SpeechRecognizer):
        def __del__(self) -> None:
            finalised.append("user __del__")

    recognizer = MyRecognizer(sdk_objects.speech_config(), sdk_objects.push_audio_config())
    result = handletrace.dispose(recognizer)
    assert finalised == []
    assert result.released == ("recognizer", "property_bag")
    assert result.errors == ()


def test_dispose_of_a_pull_stream_releases_it(installed: None) -> None:
    """Audio streams are disposable too; the SDK's finaliser clears their callbacks first."""
    stream = audio.PullAudioInputStream(BlockingPullStream())
    result = handletrace.dispose(stream)
    assert result.released == ("audio_stream",)
    assert result.errors == ()


# -- every signal of every SDK class with signals -------------------------------------------

_SDK_PACKAGE = speechsdk.__name__


def sdk_classes_with_signals() -> Dict[str, type]:
    """Every class of the installed SDK that declares an EventSignal (found, not listed).

    All of the SDK's modules are imported by the package; their classes are scanned.
    (``__module__`` is not a guide: the SDK sets it to the package for public classes.)
    """
    found = {}
    for name, module in list(sys.modules.items()):
        if name != _SDK_PACKAGE and not name.startswith(_SDK_PACKAGE + "."):
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__.startswith(_SDK_PACKAGE) and signal_names(cls):
                found[cls.__qualname__] = cls
    return found


def _source_language_recognizer() -> Any:
    return speechsdk.SourceLanguageRecognizer(
        sdk_objects.speech_config(),
        languageconfig.AutoDetectSourceLanguageConfig(languages=["en-US", "de-DE"]),
        sdk_objects.push_audio_config(),
    )


def _dialog_connector() -> Any:
    config = dialog.BotFrameworkConfig(subscription=sdk_objects.FAKE_KEY, region="westus")
    return dialog.DialogServiceConnector(config, sdk_objects.push_audio_config())


#: How to build each class offline; ``None`` for an abstract base (tested via subclasses).
BUILDERS: Dict[str, Optional[Callable[[], Any]]] = {
    "Recognizer": None,
    "SpeechRecognizer": sdk_objects.recognizer,
    "SourceLanguageRecognizer": _source_language_recognizer,
    "KeywordRecognizer": lambda: speechsdk.KeywordRecognizer(sdk_objects.push_audio_config()),
    "ConversationTranscriber": sdk_objects.transcriber,
    "MeetingTranscriber": lambda: transcription.MeetingTranscriber(sdk_objects.push_audio_config()),
    "TranslationRecognizer": sdk_objects.translation_recognizer,
    "SpeechSynthesizer": sdk_objects.synthesizer,
    "DialogServiceConnector": _dialog_connector,
    "Connection": lambda: speechsdk.Connection.from_recognizer(sdk_objects.recognizer()),
}


def test_every_sdk_class_with_signals_has_a_builder() -> None:
    """A class added by a new SDK fails here instead of being skipped silently."""
    classes = sdk_classes_with_signals()
    assert set(classes) == set(BUILDERS)
    for name, builder in BUILDERS.items():
        if builder is None:  # abstract: covered through a concrete subclass
            assert any(
                issubclass(cls, classes[name]) and BUILDERS[other] is not None
                for other, cls in classes.items()
            )


def connect_everything(obj: Any) -> Dict[str, Any]:
    """Connect a callback to every signal ``obj``'s class declares, private ones included."""
    signal_type = event_signal_type()
    signals = {}
    for attribute, name in signal_names(type(obj)).items():
        signal = getattr(obj, name, None)
        if not isinstance(signal, signal_type):  # private: reach the name-mangled property
            signal = getattr(obj, attribute[: -len("_signal")])
        try:
            signal.connect(lambda evt: None)
        except AttributeError:
            # SDK 1.53 bug: DialogServiceConnector.speech_start_detected's connection
            # callback reads ``signal.__context_ptr`` (name-mangled); the callback is
            # appended to the signal before the error.
            pass
        signals[attribute] = signal
    return signals


@pytest.mark.parametrize("name", sorted(n for n, b in BUILDERS.items() if b is not None))
def test_dispose_disconnects_every_signal(name: str) -> None:
    """Every EventSignal the class declares, private ones included, is disconnected."""
    builder = BUILDERS[name]
    assert builder is not None
    obj = builder()
    signals = connect_everything(obj)
    assert all(callbacks_of(signal) for signal in signals.values())
    result = handletrace.dispose(obj)
    assert [attr for attr, signal in signals.items() if callbacks_of(signal)] == []
    assert sorted(result.disconnected) == sorted(signal_names(type(obj)).values())


def test_dispose_disconnects_the_private_token_requested_signal() -> None:
    """The recognizer's private token-requested signal is found and disconnected."""
    recognizer = sdk_objects.recognizer()
    recognizer._Recognizer__token_requested.connect(lambda evt: None)  # type: ignore[attr-defined]
    result = handletrace.dispose(recognizer)
    assert result.disconnected == ("token_requested",)
    assert not recognizer._Recognizer__token_requested_signal.is_connected()  # type: ignore[attr-defined]


# -- stopping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "builder, stopped",
    [
        (
            sdk_objects.recognizer,
            ("stop_continuous_recognition_async", "stop_keyword_recognition_async"),
        ),
        (sdk_objects.transcriber, ("stop_transcribing_async",)),
        (sdk_objects.translation_recognizer, ("stop_continuous_recognition_async",)),
        (sdk_objects.synthesizer, ("stop_speaking_async",)),
    ],
)
def test_dispose_calls_the_stop_methods_the_class_implements(
    builder: Callable[[], Any], stopped: Tuple[str, ...]
) -> None:
    """Stop methods a class only inherits as stubs (NotImplementedError) are skipped."""
    result = handletrace.dispose(builder())
    assert result.stopped == stopped
    assert result.stop_timed_out is False
    assert result.errors == ()


def test_stop_timeout_zero_skips_stopping() -> None:
    """stop_timeout=0: no stop method is called; the release happens all the same."""
    result = handletrace.dispose(sdk_objects.recognizer(), stop_timeout=0)
    assert result.stopped == ()
    assert result.released == ("recognizer", "property_bag")


def test_dispose_tells_the_sdk_not_to_wait_for_final_results() -> None:
    """The stop timeout property is set to 0 before stopping (nobody listens any more)."""
    recognizer = sdk_objects.recognizer()
    properties = recognizer.properties
    seen: List[str] = []
    original = properties.set_property_by_name

    def spy(name: str, value: str) -> None:
        seen.append(f"{name}={value}")
        original(name, value)

    properties.set_property_by_name = spy  # type: ignore[method-assign]
    handletrace.dispose(recognizer)
    assert seen == [f"{STOP_TIMEOUT_PROPERTY}=0"]


def test_a_stop_that_does_not_finish_in_time_is_abandoned_and_the_release_goes_ahead(
    installed: None, blocked_recognizer: Tuple[Any, BlockingPullStream]
) -> None:
    """The SDK's audio thread is stuck in read(): the stop waits stop_timeout, then the
    release goes ahead (it returns once read() does: native release is synchronous)."""
    recognizer, stream = blocked_recognizer
    counter = ReleaseCounter(recognizer)
    threading.Timer(1.0, stream.unblock.set).start()
    result = handletrace.dispose(recognizer, stop_timeout=0.2)
    assert result.stop_timed_out is True
    assert result.stopped == ()
    assert result.released == ("recognizer", "property_bag")
    assert counter.calls == {"recognizer_handle_release": 1, "property_bag_release": 1}


# -- disposing() -----------------------------------------------------------------------


def test_disposing_releases_on_normal_exit(installed: None) -> None:
    """The context manager yields the object and disposes it when the block ends."""
    with handletrace.disposing(sdk_objects.recognizer()) as recognizer:
        assert recognizer_is_valid(recognizer._handle)
        counter = ReleaseCounter(recognizer)
    assert counter.calls == {"recognizer_handle_release": 1, "property_bag_release": 1}
    assert "recognizer" not in live_kinds()


def test_disposing_releases_when_the_block_raises(installed: None) -> None:
    """An exception in the block propagates unchanged, and the object is disposed."""
    transcriber = sdk_objects.transcriber()
    counter = ReleaseCounter(transcriber)
    with pytest.raises(ValueError, match="boom"), handletrace.disposing(transcriber):
        raise ValueError("boom")
    assert counter.calls == {"recognizer_handle_release": 1, "property_bag_release": 1}
    assert "recognizer" not in live_kinds()


# -- release_all() -----------------------------------------------------------------------


def test_release_all_frees_leaked_transcribers_without_gc(installed: None, no_gc: None) -> None:
    """The seed's leak: cycles the collector has not seen yet are released by release_all()."""
    segments: List[Any] = []
    for _ in range(3):
        sdk_objects.make_leaky_transcriber(segments)
    assert live_kinds() == {"recognizer": 3, "property_bag": 3}
    result = handletrace.release_all(kinds="recognizer")
    assert [r.target for r in result.results] == ["ConversationTranscriber"] * 3
    assert result.released_by_kind == {"recognizer": 3, "property_bag": 3}
    assert live_kinds() == {}
    assert handletrace.stats().released_by_cause["forced"] == 6


def test_release_all_kind_filter_leaves_other_kinds(installed: None) -> None:
    """kind="synthesizer" disposes the synthesizer only."""
    recognizer = sdk_objects.recognizer()
    synthesizer = sdk_objects.synthesizer()
    result = handletrace.release_all(kinds="synthesizer")
    assert [r.target for r in result.results] == ["SpeechSynthesizer"]
    assert live_kinds() == {"recognizer": 1, "property_bag": 1}
    assert recognizer_is_valid(recognizer._handle)
    assert is_disposed(synthesizer)


def test_release_all_disposes_the_owner_of_a_property_bag(installed: None) -> None:
    """A property bag's record leads to its recognizer, which is disposed as a whole."""
    transcriber = sdk_objects.transcriber()
    result = handletrace.release_all(kinds="property_bag")
    assert [(r.target, r.released) for r in result.results] == [
        ("ConversationTranscriber", ("recognizer", "property_bag"))
    ]
    assert is_disposed(transcriber)


def test_release_all_older_than_spares_younger_handles(installed: None) -> None:
    """older_than=N releases handles created at least N seconds ago only."""
    old = sdk_objects.recognizer()
    time.sleep(0.3)
    young = sdk_objects.recognizer()
    result = handletrace.release_all(older_than=0.2)
    assert [r.target for r in result.results] == ["SpeechRecognizer"]
    assert is_disposed(old)
    assert not is_disposed(young)
    assert recognizer_is_valid(young._handle)


def test_release_all_skips_the_async_handle_of_an_unresolved_future(installed: None) -> None:
    """A never-resolved ResultFuture's async handle is reported, not released."""
    transcriber = sdk_objects.transcriber()
    future = transcriber.stop_transcribing_async()
    result = handletrace.release_all(kinds="recognizer_async")
    assert result.results == ()
    assert [(r.kind, r.source) for r in result.skipped] == [("recognizer_async", "future")]
    future.get()  # still works: it waits for and then releases its own async handle
    assert "recognizer_async" not in live_kinds()
    assert handletrace.stats().released_by_cause["direct"] == 1


def test_release_all_warns_when_not_installed() -> None:
    """Without install() nothing is tracked: release_all() says so."""
    with pytest.warns(HandleTraceWarning, match="needs handletrace.install"):
        result = handletrace.release_all()
    assert result.results == ()


def test_release_all_rejects_a_negative_age(installed: None) -> None:
    with pytest.raises(ValueError, match="older_than"):
        handletrace.release_all(older_than=-1)


# -- adispose() ------------------------------------------------------------------------


async def _tick(
    counter: List[int], stop: asyncio.Event, reached: Optional[asyncio.Event] = None
) -> None:
    """Count ticks until ``stop``; set ``reached`` after 10 (the loop ran 10 times)."""
    while not stop.is_set():
        counter[0] += 1
        if reached is not None and counter[0] >= 10:
            reached.set()
        await asyncio.sleep(0.01)


def test_adispose_keeps_the_event_loop_running(
    installed: None, blocked_recognizer: Tuple[Any, BlockingPullStream]
) -> None:
    """A ticker task keeps ticking while the teardown is blocked in native code."""
    recognizer, stream = blocked_recognizer

    async def scenario() -> Tuple[int, bool, DisposeResult]:
        ticks = [0]
        stop, reached = asyncio.Event(), asyncio.Event()
        disposal = asyncio.ensure_future(handletrace.adispose(recognizer))
        ticker = asyncio.ensure_future(_tick(ticks, stop, reached))
        await asyncio.wait_for(reached.wait(), timeout=60)  # the loop ran 10 ticks meanwhile
        ticks_while_blocked, blocked = ticks[0], not disposal.done()
        stream.unblock.set()
        result = await disposal
        stop.set()
        await ticker
        return ticks_while_blocked, blocked, result

    ticks_while_blocked, blocked, result = asyncio.run(scenario())
    # The teardown was still blocked in native code after the loop had ticked 10 times.
    assert blocked, (ticks_while_blocked, result)
    assert result.released == ("recognizer", "property_bag")


def test_control_dispose_on_the_loop_blocks_the_ticker(
    installed: None, blocked_recognizer: Tuple[Any, BlockingPullStream]
) -> None:
    """Control for the test above: the same teardown run on the loop freezes it."""
    recognizer, stream = blocked_recognizer

    async def scenario() -> int:
        ticks = [0]
        stop = asyncio.Event()
        ticker = asyncio.ensure_future(_tick(ticks, stop))
        await asyncio.sleep(0)  # the ticker ticks once
        before = ticks[0]
        threading.Timer(0.5, stream.unblock.set).start()
        handletrace.dispose(recognizer)
        during = ticks[0] - before
        stop.set()
        await ticker
        return during

    assert asyncio.run(scenario()) == 0


def test_adispose_timeout_raises_and_the_teardown_finishes_in_the_background(
    installed: None, blocked_recognizer: Tuple[Any, BlockingPullStream]
) -> None:
    """timeout: asyncio.TimeoutError; the handles are still released, once, afterwards."""
    recognizer, stream = blocked_recognizer
    counter = ReleaseCounter(recognizer)

    async def scenario() -> None:
        await handletrace.adispose(recognizer, timeout=0.2)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(scenario())
    assert handletrace.dispose(recognizer).already_disposed
    stream.unblock.set()
    assert wait_until(lambda: sum(counter.calls.values()) == 2)
    assert wait_until(lambda: "recognizer" not in live_kinds())
    time.sleep(0.1)
    assert counter.calls == {"recognizer_handle_release": 1, "property_bag_release": 1}


def test_adispose_returns_the_dispose_result() -> None:
    """Without a timeout it simply returns what dispose() returned."""

    async def scenario() -> DisposeResult:
        return await handletrace.adispose(sdk_objects.recognizer())

    result = asyncio.run(scenario())
    assert result.released == ("recognizer", "property_bag")
    assert result.stopped == ("stop_continuous_recognition_async", "stop_keyword_recognition_async")


def test_dispose_result_is_frozen() -> None:
    result = handletrace.dispose(None)
    with pytest.raises(AttributeError):
        result.target = "x"  # type: ignore[misc]


def test_dispose_without_new_threads_skips_the_stop_and_still_releases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When no thread can be started (interpreter shutdown), the stop is skipped (the native
    release stops the session itself) and the handles are released all the same.

    Fault injection: ``threading.Thread.start`` is made to fail as it does at shutdown; the
    real SDK cannot produce this.
    """
    recognizer = sdk_objects.recognizer()

    def no_threads(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", no_threads)
    result = handletrace.dispose(recognizer)
    assert result.errors == ("stop: RuntimeError",)
    assert result.stopped == ()
    assert result.released == ("recognizer", "property_bag")


def test_release_all_disposes_newest_first(installed: None) -> None:
    """Reverse order of creation: the recognizer before the audio and speech configs."""
    config = sdk_objects.speech_config()
    stream = audio.PushAudioInputStream()
    audio_config = audio.AudioConfig(stream=stream)
    recognizer = speechsdk.SpeechRecognizer(config, audio_config=audio_config)
    result = handletrace.release_all()
    assert [r.target for r in result.results] == [
        "SpeechRecognizer",
        "AudioConfig",
        "PushAudioInputStream",
        "SpeechConfig",
    ]
    assert all(is_disposed(obj) for obj in (config, stream, audio_config, recognizer))
    assert live_kinds() == {}


class HostileConfig(speechsdk.SpeechConfig):
    """Attribute access raises for every caller but the SDK (a broken proxy or descriptor)."""

    def __getattribute__(self, name: str) -> Any:
        if not sys._getframe(1).f_code.co_filename.startswith(_SDK_DIR):
            raise RuntimeError("hostile attribute access")
        return object.__getattribute__(self, name)


_SDK_DIR = speechsdk.__file__.rsplit("/", 1)[0]


def test_dispose_reads_past_a_hostile_getattribute(installed: None) -> None:
    """The handles are found in the instance dict directly, so they are still released."""
    config = HostileConfig(subscription=sdk_objects.FAKE_KEY, region="westus")
    result = handletrace.dispose(config)
    assert result.released == ("speech_config", "property_bag")
    assert live_kinds() == {}
