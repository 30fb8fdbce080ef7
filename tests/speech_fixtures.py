"""Fixtures and runners for tests that drive the real Speech SDK against ``SpeechService``.

Expose the fixtures in a test module with ``speech_service = speech_fixtures.speech_service``
and ``service = speech_fixtures.service`` (importing them by name trips ruff's F811). The
runners create the SDK objects, run one session, disconnect every handler and release
everything before returning plain values, so no test keeps an SDK handle alive (a
recognizer alive at interpreter exit with the service gone can abort the process).
"""

from __future__ import annotations

import functools
import gc
import os
import threading
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterator, List, Mapping, Optional, Protocol, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace.testing import SpeechService, push_stream_audio_config, silence_wav

SESSION_TIMEOUT = 10.0

FAST_ERRORS: Mapping[str, str] = {
    "SPEECH-Error-MaxRetryCount": "0",
    "SPEECH-StopRecognitionTimeoutInSeconds": "0",
}
"""Properties that make error sessions end at once (no retries, no 10 s stop timeout)."""

ONE_SECOND = silence_wav(1.0)

NO_PROPERTIES: Mapping[str, str] = MappingProxyType({})

_COMMON_EVENTS = (
    "session_started",
    "session_stopped",
    "speech_start_detected",
    "speech_end_detected",
    "canceled",
)
_RECOGNIZER_EVENTS = (*_COMMON_EVENTS, "recognizing", "recognized")
_TRANSCRIBER_EVENTS = (*_COMMON_EVENTS, "transcribing", "transcribed")


def _event_names(recognizer: Any) -> Tuple[str, ...]:
    # ConversationTranscriber inherits recognizing/recognized, which raise NotImplementedError
    if isinstance(recognizer, speechsdk.transcription.ConversationTranscriber):
        return _TRANSCRIBER_EVENTS
    return _RECOGNIZER_EVENTS


@pytest.fixture(scope="module")
def speech_service() -> Iterator[SpeechService]:
    """One running service for the whole test module."""
    with SpeechService() as service:
        yield service


@pytest.fixture
def service(speech_service: SpeechService) -> Iterator[SpeechService]:
    """The module's service with the default script, no records, and no socket left open."""
    speech_service.reset()
    yield speech_service
    gc.collect()
    assert speech_service.wait_active_connections(0, timeout=5.0)
    speech_service.reset()


class EventLog:
    """A recognizer's events as plain tuples, in order; refers to nothing but itself.

    ``("session_started",)``, ``("speech_start_detected", offset)``,
    ``("recognized", text, offset, duration)`` (transcriber events add ``speaker_id``),
    ``("canceled", reason, error_code)``.
    """

    def __init__(self) -> None:
        self.events: List[Tuple[Any, ...]] = []
        self.stopped = threading.Event()
        self._lock = threading.Lock()

    def connect(self, recognizer: Any) -> None:
        for name in _event_names(recognizer):
            getattr(recognizer, name).connect(functools.partial(self._on_event, name))

    @staticmethod
    def disconnect(recognizer: Any) -> None:
        for name in _event_names(recognizer):
            getattr(recognizer, name).disconnect_all()

    def _on_event(self, name: str, event: Any) -> None:
        entry: Tuple[Any, ...]
        if name.startswith("session_"):
            entry = (name,)
        elif name.startswith("speech_"):
            entry = (name, event.offset)
        elif name == "canceled":
            details = event.cancellation_details
            entry = (name, details.reason, details.code)
        else:
            result = event.result
            entry = (name, result.text, result.offset, result.duration)
            if name.startswith("transcrib"):
                entry += (result.speaker_id,)
        with self._lock:
            self.events.append(entry)
        if name == "session_stopped":
            self.stopped.set()

    def names(self) -> List[str]:
        with self._lock:
            return [entry[0] for entry in self.events]

    def named(self, name: str) -> List[Tuple[Any, ...]]:
        """The events called ``name``, without the name."""
        with self._lock:
            return [entry[1:] for entry in self.events if entry[0] == name]


class HasHost(Protocol):
    """A running speech service: a ``SpeechService``, or one in another process."""

    @property
    def host(self) -> str: ...


@dataclass(frozen=True)
class Result:
    """The plain values of a ``recognize_once()`` result."""

    reason: speechsdk.ResultReason
    text: str
    offset: int
    duration: int
    error_code: Optional[speechsdk.CancellationErrorCode]


def speech_config(
    service: HasHost,
    properties: Mapping[str, str] = NO_PROPERTIES,
    subscription: Optional[str] = None,
) -> speechsdk.SpeechConfig:
    if subscription is None:
        config = speechsdk.SpeechConfig(host=service.host)
    else:
        config = speechsdk.SpeechConfig(host=service.host, subscription=subscription)
    for name, value in properties.items():
        config.set_property_by_name(name, value)
    return config


def recognize_once(
    service: HasHost,
    audio: bytes = ONE_SECOND,
    properties: Mapping[str, str] = NO_PROPERTIES,
    subscription: Optional[str] = None,
) -> Tuple[Result, EventLog]:
    """One ``recognize_once()`` session; everything is released before returning."""
    log = EventLog()
    feed = push_stream_audio_config(audio)
    recognizer = speechsdk.SpeechRecognizer(
        speech_config(service, properties, subscription), audio_config=feed.config
    )
    log.connect(recognizer)
    feed.feed_when_connected(recognizer)
    raw = recognizer.recognize_once()
    error_code = (
        raw.cancellation_details.code if raw.reason == speechsdk.ResultReason.Canceled else None
    )
    result = Result(raw.reason, raw.text, raw.offset, raw.duration, error_code)
    log.stopped.wait(SESSION_TIMEOUT)
    log.disconnect(recognizer)
    del raw, recognizer, feed
    return result, log


def run_continuous(
    service: HasHost,
    audio: bytes = ONE_SECOND,
    properties: Mapping[str, str] = NO_PROPERTIES,
    *,
    transcriber: bool = False,
    close_stream: bool = True,
) -> EventLog:
    """One continuous session (``ConversationTranscriber`` if ``transcriber``) until
    ``session_stopped``; with ``close_stream=False`` the audio is written, the stream left
    open and recognition stopped explicitly. Everything is released before returning."""
    log = EventLog()
    feed = push_stream_audio_config(audio)
    config = speech_config(service, properties)
    recognizer: Any
    if transcriber:
        recognizer = speechsdk.transcription.ConversationTranscriber(
            config, audio_config=feed.config
        )
        start, stop = recognizer.start_transcribing_async, recognizer.stop_transcribing_async
    else:
        recognizer = speechsdk.SpeechRecognizer(config, audio_config=feed.config)
        start = recognizer.start_continuous_recognition_async
        stop = recognizer.stop_continuous_recognition_async
    log.connect(recognizer)
    start().get()
    if close_stream:
        feed.feed()
        log.stopped.wait(SESSION_TIMEOUT)
        stop().get()
    else:
        feed.stream.write(feed.pcm)
        time.sleep(0.05)
        stop().get()
        log.stopped.wait(SESSION_TIMEOUT)
    log.disconnect(recognizer)
    del start, stop, recognizer, feed
    return log


def timed(function: Any, *args: Any, **kwargs: Any) -> Tuple[float, Any]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value


__all__: List[str] = [
    "FAST_ERRORS",
    "ONE_SECOND",
    "EventLog",
    "Result",
    "recognize_once",
    "run_continuous",
    "service",
    "speech_config",
    "speech_service",
    "timed",
]


# -- streaming, synthesis and teardown (added with the streaming service) ------------------

AUDIO_CHUNK = bytes(3200)
"""100 ms of 16 kHz 16-bit silence: what the SDK sends per audio message."""

UNTHROTTLED: Mapping[str, str] = MappingProxyType(
    {"SPEECH-TransmitLengthBeforeThrottleMs": "3600000"}
)
"""SDK 1.53 sends the first 5 s of a stream at once, then at twice real time; this sends
up to an hour of audio as fast as it is written (the SDK's throttle, not the service's)."""


class StreamLog(EventLog):
    """An ``EventLog`` that can wait for a number of events of one name."""

    def __init__(self) -> None:
        super().__init__()
        self._arrived = threading.Condition()

    def _on_event(self, name: str, event: Any) -> None:
        super()._on_event(name, event)
        with self._arrived:
            self._arrived.notify_all()

    def wait_count(self, name: str, count: int, timeout: float = SESSION_TIMEOUT) -> bool:
        """Wait until ``count`` events called ``name`` arrived; False if ``timeout`` passed."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.named(name)) >= count, timeout)


def write_audio(stream: Any, seconds: float) -> None:
    """Write ``seconds`` of silence into a push stream, 100 ms per write."""
    for _ in range(round(seconds * 10)):
        stream.write(AUDIO_CHUNK)


def run_streaming(
    service: HasHost,
    during: Any,
    properties: Mapping[str, str] = NO_PROPERTIES,
    *,
    transcriber: bool = False,
) -> Tuple[Any, StreamLog]:
    """One continuous session on a push stream kept open while ``during(stream, log)`` runs
    (it writes audio and waits for events; its value is returned); then the stream is
    closed, the session runs to ``session_stopped`` and everything is released."""
    log = StreamLog()
    feed = push_stream_audio_config(b"")
    config = speech_config(service, properties)
    recognizer: Any
    if transcriber:
        recognizer = speechsdk.transcription.ConversationTranscriber(
            config, audio_config=feed.config
        )
        start, stop = recognizer.start_transcribing_async, recognizer.stop_transcribing_async
    else:
        recognizer = speechsdk.SpeechRecognizer(config, audio_config=feed.config)
        start = recognizer.start_continuous_recognition_async
        stop = recognizer.stop_continuous_recognition_async
    log.connect(recognizer)
    start().get()
    try:
        value = during(feed.stream, log)
    finally:
        feed.stream.close()
        log.stopped.wait(SESSION_TIMEOUT)
        stop().get()
        log.disconnect(recognizer)
        del start, stop, recognizer, feed
    return value, log


@dataclass(frozen=True)
class Spoken:
    """The plain values of one ``speak_*`` result."""

    reason: speechsdk.ResultReason
    audio: bytes
    audio_duration: float
    error_code: Optional[speechsdk.CancellationErrorCode]
    error_details: str


class SynthesisLog:
    """A synthesizer's events as plain tuples, in order; refers to nothing but itself.

    ``("synthesis_started",)``, ``("synthesizing", audio_bytes)``, ``("synthesis_completed",
    audio_bytes)``, ``("synthesis_canceled",)``, ``("synthesis_word_boundary", text,
    audio_offset, text_offset, word_length)``.
    """

    NAMES = ("synthesis_started", "synthesizing", "synthesis_completed", "synthesis_canceled")

    def __init__(self, word_boundaries: bool = False) -> None:
        self.events: List[Tuple[Any, ...]] = []
        self.names_connected = self.NAMES + (
            ("synthesis_word_boundary",) if word_boundaries else ()
        )
        self._arrived = threading.Condition()

    def connect(self, synthesizer: Any) -> None:
        for name in self.names_connected:
            getattr(synthesizer, name).connect(functools.partial(self._on_event, name))

    def disconnect(self, synthesizer: Any) -> None:
        for name in self.names_connected:
            getattr(synthesizer, name).disconnect_all()

    def _on_event(self, name: str, event: Any) -> None:
        entry: Tuple[Any, ...]
        if name == "synthesis_word_boundary":
            entry = (name, event.text, event.audio_offset, event.text_offset, event.word_length)
        elif name in ("synthesizing", "synthesis_completed"):
            entry = (name, len(event.result.audio_data))
        else:
            entry = (name,)
        with self._arrived:
            self.events.append(entry)
            self._arrived.notify_all()

    def wait_count(self, name: str, count: int, timeout: float = SESSION_TIMEOUT) -> bool:
        """Wait until ``count`` events called ``name`` arrived (completed/canceled may come
        just after ``get()`` returns); False if ``timeout`` passed."""
        with self._arrived:
            return self._arrived.wait_for(
                lambda: sum(entry[0] == name for entry in self.events) >= count, timeout
            )

    def wait_finished(self, count: int, timeout: float = SESSION_TIMEOUT) -> bool:
        """Wait until ``count`` requests ended (completed or canceled events)."""
        ends = ("synthesis_completed", "synthesis_canceled")
        with self._arrived:
            return self._arrived.wait_for(
                lambda: sum(entry[0] in ends for entry in self.events) >= count, timeout
            )

    def named(self, name: str) -> List[Tuple[Any, ...]]:
        """The events called ``name``, without the name."""
        with self._arrived:
            return [entry[1:] for entry in self.events if entry[0] == name]


def synthesizer(
    service: HasHost,
    output_format: Optional[speechsdk.SpeechSynthesisOutputFormat] = None,
    properties: Mapping[str, str] = NO_PROPERTIES,
    subscription: Optional[str] = None,
) -> speechsdk.SpeechSynthesizer:
    """A ``SpeechSynthesizer`` for ``service`` that writes its audio nowhere but the result."""
    config = speech_config(service, properties, subscription)
    if output_format is not None:
        config.set_speech_synthesis_output_format(output_format)
    return speechsdk.SpeechSynthesizer(speech_config=config, audio_config=None)


def synthesize(
    service: HasHost,
    texts: Any = ("Hello world, this is a test.",),
    output_format: Optional[speechsdk.SpeechSynthesisOutputFormat] = None,
    properties: Mapping[str, str] = NO_PROPERTIES,
    *,
    ssml: bool = False,
    word_boundaries: bool = False,
    subscription: Optional[str] = None,
) -> Tuple[List[Spoken], SynthesisLog]:
    """``speak_text_async`` (``speak_ssml_async`` if ``ssml``) for each text on one
    synthesizer; waits for each request's completed/canceled event, releases everything."""
    log = SynthesisLog(word_boundaries)
    speaker = synthesizer(service, output_format, properties, subscription)
    log.connect(speaker)
    results = []
    for number, text in enumerate(texts, start=1):
        raw = (speaker.speak_ssml_async if ssml else speaker.speak_text_async)(text).get()
        details = (
            raw.cancellation_details if raw.reason == speechsdk.ResultReason.Canceled else None
        )
        results.append(
            Spoken(
                raw.reason,
                bytes(raw.audio_data),
                raw.audio_duration.total_seconds(),
                None if details is None else details.error_code,
                "" if details is None else details.error_details,
            )
        )
        del raw, details
        log.wait_finished(number)
    log.disconnect(speaker)
    del speaker
    return results, log


def native_threads() -> int:
    """Threads of this process, Python's and the SDK's native ones alike."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # no procfs: psutil counts them
        import psutil

        return int(psutil.Process().num_threads())


__all__ += [
    "AUDIO_CHUNK",
    "UNTHROTTLED",
    "StreamLog",
    "Spoken",
    "SynthesisLog",
    "native_threads",
    "run_streaming",
    "synthesize",
    "synthesizer",
    "write_audio",
]


# -- releases in flight (added with the asyncio service's tests) ----------------------------


class ReleaseWatcher:
    """A thread that looks, every few milliseconds, for a native release that has been in
    flight for at least ``blocked`` seconds (default: the slow-release threshold) and keeps
    what the first look at one of a ``kind`` handle saw: the snapshot, the diagnosis of its
    ``kind`` records and the stats, all taken while the release was blocking (from this
    thread, as a monitoring endpoint would).

    Until then it only calls ``handletrace.blocking()``: a snapshot (or a diagnosis) makes a
    heap pass that holds every object for its duration, so an object whose last other
    reference died meanwhile (an SDK callback's recognizer, say) would be released on this
    thread instead of where the program dropped it. Once a release has blocked a while, its
    object is long gone from the heap.
    """

    def __init__(
        self, kind: str = "recognizer", blocked: Optional[float] = None, timeout: float = 60.0
    ) -> None:
        self.kind = kind
        self.blocked = blocked
        self.seen: List[Tuple[Any, Any, Any]] = []
        self._done = threading.Event()
        self._timeout = timeout
        self._thread = threading.Thread(target=self._watch, name="release-watcher")

    def __enter__(self) -> ReleaseWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(self._timeout)

    def wait(self, timeout: float = SESSION_TIMEOUT) -> bool:
        """Wait until a release in flight was seen; False if ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while not self.seen and time.monotonic() < deadline:
            time.sleep(0.01)
        return bool(self.seen)

    def _watch(self) -> None:
        deadline = time.monotonic() + self._timeout
        while not self._done.is_set() and time.monotonic() < deadline:
            blocking = handletrace.blocking()
            blocked = blocking.threshold if self.blocked is None else self.blocked
            if any(flight.elapsed >= blocked for flight in blocking.in_flight):
                snapshot = handletrace.snapshot()
                kinds = {r.seq: r.kind for r in snapshot.records}
                if any(kinds.get(seq) == self.kind for seq in snapshot.releasing):
                    # Only the kind watched: a diagnosis of every record walks the whole
                    # heap (about 2 s in a full test run), and one that ends after the
                    # release did says "released after the snapshot was taken".
                    wanted = snapshot.filter(kinds=[self.kind])
                    diagnosis = handletrace.diagnose(wanted, paths=False, native=False)
                    self.seen.append((snapshot, diagnosis, handletrace.stats()))
                    return
            self._done.wait(0.002)


__all__ += ["ReleaseWatcher"]
