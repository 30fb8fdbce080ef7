"""A transcription service, leaky and fixed.

One ``ConversationTranscriber`` per request; segments are collected through callbacks.

``LeakyTranscriptionService`` has the leak real services ship: its ``on_transcribed``
closure captures ``segments``, ``transcriber`` and ``done`` (it stops the transcriber once a
request has ``max_segments`` segments), so

    ConversationTranscriber -> EventSignal (transcribed) -> list -> on_transcribed -> (the same)

is a reference cycle. The native recognizer (with its websocket and two native threads) is
freed only when the cyclic garbage collector happens to run, and native memory never
triggers a collection.

``FixedTranscriptionService`` is the same code with one change: the transcriber is used inside
``with handletrace.disposing(transcriber):``, which disconnects every signal, stops the
session and releases the native handles when the request ends.

Both talk to any Speech endpoint; the demo and the tests use the local
``handletrace.testing.SpeechService``.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, ContextManager, List

import azure.cognitiveservices.speech as speechsdk

import handletrace
from handletrace.testing import push_stream_audio_config

__all__ = ["FixedTranscriptionService", "LeakyTranscriptionService", "Segment", "service_for"]


@dataclass(frozen=True)
class Segment:
    """One transcribed phrase."""

    text: str
    speaker_id: str
    offset: int


class LeakyTranscriptionService:
    """Transcribes one request per ConversationTranscriber; leaks each of them."""

    timeout = 10.0  #: seconds to wait for a request's session to end
    max_segments = 1000  #: a request stops transcribing after this many segments

    def __init__(self, host: str) -> None:
        self.host = host

    def _config(self) -> speechsdk.SpeechConfig:
        config = speechsdk.SpeechConfig(host=self.host)
        config.set_property_by_name("SPEECH-Error-MaxRetryCount", "0")
        config.set_property_by_name("SPEECH-StopRecognitionTimeoutInSeconds", "0")
        return config

    def _scope(self, transcriber: Any) -> ContextManager[Any]:
        """What wraps the transcriber's use: nothing here (the bug)."""
        return contextlib.nullcontext(transcriber)

    def process_audio(self, audio: bytes) -> List[Segment]:
        """Transcribe one WAV request and return its segments."""
        segments: List[Segment] = []
        done = threading.Event()
        feed = push_stream_audio_config(audio)
        transcriber = speechsdk.transcription.ConversationTranscriber(
            speech_config=self._config(), audio_config=feed.config
        )

        def on_transcribed(evt: Any) -> None:  # captures segments, transcriber, done
            result = evt.result
            if result.reason == speechsdk.ResultReason.RecognizedSpeech:
                segments.append(Segment(result.text, result.speaker_id, result.offset))
            if len(segments) >= self.max_segments:
                transcriber.stop_transcribing_async()
                done.set()

        with self._scope(transcriber):
            transcriber.transcribed.connect(on_transcribed)
            transcriber.canceled.connect(lambda evt: done.set())
            transcriber.session_stopped.connect(lambda evt: done.set())
            transcriber.start_transcribing_async().get()
            feed.feed()
            done.wait(self.timeout)
            transcriber.stop_transcribing_async().get()
        return segments


class FixedTranscriptionService(LeakyTranscriptionService):
    """The same service; every transcriber is disposed when its request ends."""

    def _scope(self, transcriber: Any) -> ContextManager[Any]:
        return handletrace.disposing(transcriber)


def service_for(host: str, *, fixed: bool) -> LeakyTranscriptionService:
    """The fixed or the leaky service for ``host``."""
    return (FixedTranscriptionService if fixed else LeakyTranscriptionService)(host)
