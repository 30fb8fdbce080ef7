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
import threading
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterator, List, Mapping, Optional, Protocol, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest

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
