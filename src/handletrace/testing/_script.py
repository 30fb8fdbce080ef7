"""What the local speech service replies: phrases, errors and delays (value types only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

__all__ = [
    "CLOSE_MOMENTS",
    "CloseError",
    "DEFAULT_END_SILENCE",
    "DEFAULT_SCRIPT",
    "Fault",
    "HandshakeError",
    "Phrase",
    "Script",
    "ServerClose",
    "StatusError",
    "Synthesis",
    "TICKS_PER_SECOND",
    "Teardown",
]

TICKS_PER_SECOND = 10_000_000
"""Offsets and durations are counted in 100-nanosecond ticks, as in the Speech SDK."""

DEFAULT_END_SILENCE = 0.5
"""Seconds of audio after a phrase's end before its final result is sent, unless the script or
the SDK (``Speech_SegmentationSilenceTimeoutMs``) says otherwise."""


def _check_seconds(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if value is not None and not value >= 0:  # NaN fails too
            raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class Phrase:
    """One recognized phrase.

    ``text`` becomes ``result.text`` of the recognized/transcribed event. Each entry of
    ``hypotheses`` becomes one recognizing/transcribing event sent before the phrase.
    ``offset`` and ``duration`` are in ticks (``TICKS_PER_SECOND``) of the turn's audio;
    ``None`` lets the script place the phrase (see ``Script``). ``speaker_id`` is sent as
    ``SpeakerId`` with the phrase and its hypotheses (``result.speaker_id`` of a
    ``ConversationTranscriber``); ``None`` sends no speaker.
    """

    text: str
    offset: Optional[int] = None
    duration: Optional[int] = None
    speaker_id: Optional[str] = None
    hypotheses: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.hypotheses, str):
            raise TypeError("hypotheses must be a tuple of strings, not a string")
        object.__setattr__(self, "hypotheses", tuple(self.hypotheses))
        for name in ("offset", "duration"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class HandshakeError:
    """Refuse the websocket handshake with an HTTP status code.

    ``CancellationErrorCode`` seen with SDK 1.53.0: 400 -> BadRequest, 401 and 403 ->
    AuthenticationFailure, 429 -> TooManyRequests, 500 -> ServiceError, 503 ->
    ServiceUnavailable. The SDK retries 429/500/503 (about 1 s in all) unless the speech
    config sets ``SPEECH-Error-MaxRetryCount`` to ``"0"``. Each attempt is one
    ``ConnectionRecord`` with this ``status``.
    """

    status: int

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {self.status}")


@dataclass(frozen=True)
class CloseError:
    """Close the websocket with ``code`` where the turn would end (after the phrases).

    ``CancellationErrorCode`` seen with SDK 1.53.0: 1007 -> BadRequest, 1011 ->
    ServiceError, 1008 (and other error codes) -> ConnectionFailure. A normal close (1000)
    is no error to the SDK: it waits for its own timeout (20 s continuous, 60 s
    ``recognize_once``) and cancels with ServiceTimeout.
    """

    code: int
    reason: str = ""

    def __post_init__(self) -> None:
        if not 1000 <= self.code <= 4999:
            raise ValueError(f"code must be a websocket close code (1000-4999), got {self.code}")


@dataclass(frozen=True)
class StatusError:
    """Send a ``speech.phrase`` with a failing ``RecognitionStatus`` where the turn would end.

    ``status`` is the service's ``RecognitionStatus``. ``CancellationErrorCode`` seen with
    SDK 1.53.0: ``"Error"`` -> ServiceError; ``"BadRequest"``, ``"TooManyRequests"``,
    ``"Forbidden"`` and ``"ServiceUnavailable"`` -> the code of the same name.

    In continuous modes set ``SPEECH-StopRecognitionTimeoutInSeconds`` to ``"0"`` on the
    speech config: otherwise stopping recognition after the error takes about 1 s and
    releasing the recognizer blocks for 10 s (measured with SDK 1.53.0).
    """

    status: str = "Error"

    def __post_init__(self) -> None:
        if not self.status or self.status in {"Success", "EndOfDictation"}:
            raise ValueError(f"status must be a failing RecognitionStatus, got {self.status!r}")


Fault = Union[HandshakeError, CloseError, StatusError]
"""An error reply: one of ``HandshakeError``, ``CloseError`` or ``StatusError``."""


CLOSE_MOMENTS = ("connected", "turn.start", "result", "audio.end", "turn.end")
"""Where a ``ServerClose`` may happen: right after the websocket opens; after the first
``turn.start``; after the first result (a recognition turn's first ``speech.phrase``, a
synthesis turn's first audio chunk); when a recognition turn's audio ends (before the service
answers the end); after the first ``turn.end``."""


@dataclass(frozen=True)
class ServerClose:
    """The service closes the websocket itself, ``delay`` seconds after the moment ``at``.

    ``at`` is one of ``CLOSE_MOMENTS``; the first turn of the connection that reaches it
    triggers the close, and the service answers nothing after it. ``code`` and ``reason``
    go in the close frame; with ``abort=True`` the TCP connection is dropped without any close
    frame (``ConnectionRecord.close_code`` 1006), as a crashed server or a broken network would.
    """

    at: str = "turn.end"
    code: int = 1000
    reason: str = ""
    delay: float = 0.0
    abort: bool = False

    def __post_init__(self) -> None:
        if self.at not in CLOSE_MOMENTS:
            raise ValueError(f"at must be one of {', '.join(CLOSE_MOMENTS)}; got {self.at!r}")
        if not 1000 <= self.code <= 4999:
            raise ValueError(f"code must be a websocket close code (1000-4999), got {self.code}")
        _check_seconds(self, "delay")


@dataclass(frozen=True)
class Teardown:
    """How the service behaves when a connection ends: for making the SDK's teardown slow.

    ``end_delay``: once a recognition turn's audio has ended (the input stream was closed,
    or recognition is being stopped, which is also what releasing a running recognizer does),
    the service waits ``end_delay`` seconds before it answers the end (final phrases,
    ``EndOfDictation``, ``turn.end``); ``answer_end=False`` never answers it. The SDK's
    ``stop_*`` call, or the release of a running recognizer, waits for that answer up to its
    stop timeout (10 s with SDK 1.53 unless ``SPEECH-StopRecognitionTimeoutInSeconds`` is
    set).

    ``close_delay``: when the SDK sends its websocket close frame (it does when a recognizer
    or synthesizer is released), the service holds that frame for ``close_delay`` seconds
    before its websocket library sees it and answers; the TCP connection stays open
    meanwhile. ``answer_close=False`` holds it for good: the close is never answered, and the
    connection ends when the SDK drops it (SDK 1.53 waits about 1 s for the answer, then
    drops the TCP connection) or the service stops.

    ``server_close`` makes the service close the connection itself at a chosen moment (see
    ``ServerClose``).

    A connection takes its teardown from the script in effect when it was opened.
    """

    end_delay: float = 0.0
    answer_end: bool = True
    close_delay: float = 0.0
    answer_close: bool = True
    server_close: Optional[ServerClose] = None

    def __post_init__(self) -> None:
        _check_seconds(self, "end_delay", "close_delay")
        for name, switch in (("end_delay", "answer_end"), ("close_delay", "answer_close")):
            if math.isinf(getattr(self, name)):
                raise ValueError(f"{name} must be finite; use {switch}=False to never answer")
        if self.server_close is not None and not isinstance(self.server_close, ServerClose):
            raise TypeError(f"server_close must be a ServerClose, got {self.server_close!r}")

    @property
    def holds_close(self) -> bool:
        """Whether the SDK's close frame is held back (delayed or never answered)."""
        return self.close_delay > 0 or not self.answer_close


@dataclass(frozen=True)
class Synthesis:
    """How the service answers a text-to-speech request (``SpeechSynthesizer``).

    The audio lasts ``word_seconds`` per word of the request's text (its SSML with the markup
    removed), at least one chunk; it is a sine tone of ``frequency`` Hz at ``amplitude`` (a
    fraction of full scale) with ``audio="tone"``, or silence with ``audio="silence"``, in the
    output format the SDK asks for, sent in chunks of ``chunk_seconds``. When the SDK asks
    for word boundaries (a ``synthesis_word_boundary`` handler is connected), each word gets
    one, placed at the start of its slice of the audio.
    """

    audio: str = "tone"
    word_seconds: float = 0.3
    frequency: float = 440.0
    amplitude: float = 0.3
    chunk_seconds: float = 0.1

    def __post_init__(self) -> None:
        if self.audio not in ("tone", "silence"):
            raise ValueError(f"audio must be 'tone' or 'silence', got {self.audio!r}")
        _check_seconds(self, "word_seconds")
        if not 0.0 < self.frequency <= 4000.0:
            raise ValueError(f"frequency must be in (0, 4000] Hz, got {self.frequency}")
        if not 0.0 <= self.amplitude <= 1.0:
            raise ValueError(f"amplitude must be between 0 and 1, got {self.amplitude}")
        if not 0.005 <= self.chunk_seconds <= 10.0:
            raise ValueError(
                f"chunk_seconds must be between 0.005 and 10, got {self.chunk_seconds}"
            )


@dataclass(frozen=True)
class Script:
    """How the service answers each turn: recognition phrases, synthesis, errors, delays.

    A recognition turn starts when the SDK sends ``speech.context``; the service answers
    ``turn.start`` after ``start_delay`` seconds. Each phrase is then answered with
    ``speech.startDetected``, one ``speech.hypothesis`` per hypothesis, ``speech.endDetected``
    and ``speech.phrase``; ``message_delay`` seconds pass before each of these messages.

    **Streaming** (``streaming=True``, the default, as the real service): phrases sit on the
    turn's audio timeline and are answered while the audio streams in. ``startDetected`` goes
    once the audio received passes the phrase's offset; the k-th of n hypotheses once it
    reaches ``k/(n+1)`` of the phrase (that is also the hypothesis's duration); ``endDetected``
    and the phrase once it reaches the phrase's end plus ``end_silence`` seconds. A phrase
    without ``offset`` starts ``end_silence`` after the previous one ended (the first at 0); a
    phrase without ``duration`` lasts ``phrase_duration`` seconds. ``end_silence=None`` takes
    the SDK's segmentation silence timeout when it sends one
    (``Speech_SegmentationSilenceTimeoutMs``), else ``DEFAULT_END_SILENCE``. With
    ``repeat=True`` the phrases start over after the last one (plus ``end_silence``), for as
    long as audio keeps coming: a call of any length. When the audio ends (the SDK sends an
    empty audio message: the input stream was closed, or recognition stopped), the service
    at once answers the phrase in progress and any phrase of the script not sent yet (so a
    turn always delivers the whole script at least once), with their scripted offsets.

    **At end of audio** (``streaming=False``, the behaviour before streaming): nothing is
    answered until the turn's audio ends; then every phrase is sent. A phrase without
    ``offset`` starts where the previous phrase ended (the first at 0); a phrase without
    ``duration`` lasts ``1/len(phrases)`` of the turn's audio, so the phrases split the audio
    evenly; ``phrase_duration``, ``end_silence`` and ``repeat`` play no part.

    Recognition modes: ``recognize_once`` (interactive) gets the first phrase only and its
    turn ends right after it, audio still streaming or not, as with the real service; with
    no phrases it gets an ``InitialSilenceTimeout`` (NoMatch) result once the SDK's initial
    silence timeout of audio was received (5 s unless the SDK sets it) or the audio ends. In
    continuous modes (continuous recognition, dictation, ``ConversationTranscriber``) the
    turn ends when its audio ends, with an ``EndOfDictation`` status that acknowledges the
    audio up to its end, so the SDK does not replay unacknowledged audio; there
    ``speech.startDetected`` comes once before the first phrase and ``speech.endDetected``
    once the audio ended (the SDK stops sending audio when it gets ``speech.endDetected``).

    Continuation turns (the SDK replays the audio after the last acknowledged phrase in a
    new turn, e.g. a second ``recognize_once`` on a stream still open): when streaming, the
    script goes on where the SDK resumes, so the turn gets the phrases that start there or
    later, with offsets relative to its own audio (the SDK adds the resume point back); at
    end of audio, the service acknowledges the replayed audio and ends the turn without
    playing the script again.

    ``fault`` replaces the normal end of the turn, after the phrases (``HandshakeError``
    instead refuses the connection before any turn). ``recognize_once`` returns at its first
    phrase, so a fault meant to fail it should come without phrases.

    Synthesis turns (one per ``speak_*`` request) are answered as ``synthesis`` says (see
    ``Synthesis``), after ``start_delay`` and with ``message_delay`` before each message.
    There ``fault`` replaces the audio: ``CloseError`` closes with its code, ``StatusError``
    closes with the code the SDK maps to that status (``"BadRequest"`` 1007,
    ``"TooManyRequests"`` 4429, others 1011). ``teardown`` says how connections end (see
    ``Teardown``).
    """

    phrases: Tuple[Phrase, ...] = ()
    fault: Optional[Fault] = None
    start_delay: float = 0.0
    message_delay: float = 0.0
    streaming: bool = True
    phrase_duration: float = 1.0
    end_silence: Optional[float] = None
    repeat: bool = False
    synthesis: Synthesis = Synthesis()
    teardown: Teardown = Teardown()

    def __post_init__(self) -> None:
        phrases = tuple(self.phrases)
        for phrase in phrases:
            if not isinstance(phrase, Phrase):
                raise TypeError(f"phrases must be Phrase objects, got {phrase!r}")
        object.__setattr__(self, "phrases", phrases)
        _check_seconds(self, "start_delay", "message_delay", "phrase_duration", "end_silence")
        if self.fault is not None and not isinstance(
            self.fault, (HandshakeError, CloseError, StatusError)
        ):
            raise TypeError(
                f"fault must be a HandshakeError, CloseError or StatusError, got {self.fault!r}"
            )
        if not isinstance(self.synthesis, Synthesis):
            raise TypeError(f"synthesis must be a Synthesis, got {self.synthesis!r}")
        if not isinstance(self.teardown, Teardown):
            raise TypeError(f"teardown must be a Teardown, got {self.teardown!r}")
        if (
            self.repeat
            and self.phrases
            and self.end_silence == 0
            and all(
                not phrase.offset
                and (self.phrase_duration if phrase.duration is None else phrase.duration) == 0
                for phrase in self.phrases
            )
        ):
            raise ValueError("repeat needs phrases that take audio time (they would never end)")

    @classmethod
    def of(cls, *texts: str, **options: Any) -> Script:
        """A script of plain phrases, e.g. ``Script.of("hello", "world", repeat=True)``."""
        return cls(phrases=tuple(Phrase(text) for text in texts), **options)


DEFAULT_SCRIPT = Script(phrases=(Phrase("hello world", hypotheses=("hello",)),))
"""The service's default: one phrase ``"hello world"`` preceded by the hypothesis ``"hello"``."""
