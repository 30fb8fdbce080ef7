"""What the local speech service replies: phrases, errors and delays (value types only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

__all__ = [
    "CloseError",
    "DEFAULT_SCRIPT",
    "Fault",
    "HandshakeError",
    "Phrase",
    "Script",
    "StatusError",
    "TICKS_PER_SECOND",
]

TICKS_PER_SECOND = 10_000_000
"""Offsets and durations are counted in 100-nanosecond ticks, as in the Speech SDK."""


@dataclass(frozen=True)
class Phrase:
    """One recognized phrase.

    ``text`` becomes ``result.text`` of the recognized/transcribed event. Each entry of
    ``hypotheses`` becomes one recognizing/transcribing event sent before the phrase.
    ``offset`` and ``duration`` are in ticks (``TICKS_PER_SECOND``); ``None`` lets the service
    derive them from the audio it received (see ``Script``). ``speaker_id`` is sent as
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


@dataclass(frozen=True)
class Script:
    """How the service answers each recognition turn.

    A turn starts when the SDK sends ``speech.context``; the service answers ``turn.start``
    after ``start_delay`` seconds. When the turn's audio ends (the SDK sends an empty audio
    message: the input stream was closed, or recognition stopped), the service sends, for
    each phrase, ``speech.startDetected``, one ``speech.hypothesis`` per hypothesis,
    ``speech.endDetected`` and ``speech.phrase``; then ``turn.end``. ``message_delay``
    seconds pass before each of these messages.

    Timing: a phrase without ``offset`` starts where the previous phrase ended (the first at
    0); a phrase without ``duration`` lasts ``1/len(phrases)`` of the turn's audio, so by
    default the phrases split the audio evenly. The k-th of n hypotheses lasts
    ``k/(n+1)`` of its phrase.

    Recognition modes: for ``recognize_once`` (interactive) only the first phrase is sent,
    or an ``InitialSilenceTimeout`` (NoMatch) result when there are no phrases. In
    continuous modes (continuous recognition, dictation, ``ConversationTranscriber``) all
    phrases are sent, then an ``EndOfDictation`` status that acknowledges the audio up to
    its end, so the SDK does not replay unacknowledged audio in a continuation turn. Should
    the SDK start one anyway, the service acknowledges the replayed audio and ends the turn
    without playing the script again.

    ``fault`` replaces the normal end of the turn, after the phrases (``HandshakeError``
    instead refuses the connection before any turn). ``recognize_once`` returns at its first
    phrase, so a fault meant to fail it should come without phrases.
    """

    phrases: Tuple[Phrase, ...] = ()
    fault: Optional[Fault] = None
    start_delay: float = 0.0
    message_delay: float = 0.0

    def __post_init__(self) -> None:
        phrases = tuple(self.phrases)
        for phrase in phrases:
            if not isinstance(phrase, Phrase):
                raise TypeError(f"phrases must be Phrase objects, got {phrase!r}")
        object.__setattr__(self, "phrases", phrases)
        for name in ("start_delay", "message_delay"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.fault is not None and not isinstance(
            self.fault, (HandshakeError, CloseError, StatusError)
        ):
            raise TypeError(
                f"fault must be a HandshakeError, CloseError or StatusError, got {self.fault!r}"
            )

    @classmethod
    def of(cls, *texts: str) -> Script:
        """A script of plain phrases, e.g. ``Script.of("hello", "world")``."""
        return cls(phrases=tuple(Phrase(text) for text in texts))


DEFAULT_SCRIPT = Script(phrases=(Phrase("hello world", hypotheses=("hello",)),))
"""The service's default: one phrase ``"hello world"`` preceded by the hypothesis ``"hello"``."""
