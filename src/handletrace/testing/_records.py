"""What the local speech service saw, as immutable records (secrets redacted)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

__all__ = ["REDACTED", "ConnectionRecord", "TurnRecord", "is_secret", "redact"]

REDACTED = "<redacted>"
"""Stored instead of the value of any header or query parameter that may hold a secret."""

_SECRET_NAME = re.compile(r"auth|key|token|secret|password|signature|cookie", re.IGNORECASE)


def is_secret(name: str) -> bool:
    """Whether a header or query parameter called ``name`` may carry a secret.

    Matches ``Ocp-Apim-Subscription-Key``, ``Authorization``, ``Cookie``, ``*token*`` and the
    like. ``Sec-WebSocket-Key`` (a handshake nonce) matches too; redacting it costs nothing.
    """
    return _SECRET_NAME.search(name) is not None


def redact(pairs: Iterable[Tuple[str, str]]) -> Tuple[Tuple[str, str], ...]:
    """``pairs`` with the value of every secret-looking name replaced by ``REDACTED``."""
    return tuple((name, REDACTED if is_secret(name) else value) for name, value in pairs)


def _lookup(pairs: Tuple[Tuple[str, str], ...], name: str) -> Optional[str]:
    lowered = name.lower()
    for key, value in pairs:
        if key.lower() == lowered:
            return value
    return None


@dataclass(frozen=True)
class TurnRecord:
    """One turn (one ``X-RequestId``) on a connection: a recognition turn or a synthesis request.

    ``mode`` is ``"interactive"`` (``recognize_once``), ``"conversation"`` (continuous
    recognition and ``ConversationTranscriber``), ``"dictation"`` or ``"synthesis"`` (one
    ``speak_*`` request). ``continuation`` is True for a recognition turn in which the SDK
    replayed audio the service had not acknowledged.

    Recognition: ``audio_bytes`` counts the PCM bytes received (the SDK's WAV header
    excluded); ``audio_ended`` tells whether the SDK sent the end of the audio. Synthesis:
    ``audio_bytes`` counts the audio bytes sent; ``audio_ended`` tells whether all of it was
    sent; ``text`` is the text spoken (the SSML's character data) and ``output_format`` the
    format the SDK asked for (``None`` until the request was read).
    """

    request_id: str
    mode: str
    continuation: bool
    audio_bytes: int
    audio_ended: bool
    text: Optional[str] = None
    output_format: Optional[str] = None


@dataclass(frozen=True)
class ConnectionRecord:
    """One websocket connection attempt, as seen by the service.

    ``path`` excludes the query string, which is split into ``query`` pairs. ``headers``
    are the handshake headers in the order sent, names lower-cased, with secret values
    replaced by ``REDACTED`` (see ``is_secret``); the same holds for ``query``. ``status`` is
    101 for an accepted websocket and the HTTP status of a refused handshake otherwise.
    ``audio_bytes`` is the sum over ``turns`` (audio the SDK replays in a continuation
    turn counts again). ``close_code`` is set once the connection is closed (1006 when the
    peer dropped the TCP connection without a close frame).

    ``timeline`` lists what happened to the connection, oldest first, as ``(event,
    time.monotonic())`` pairs; events are ``"opened"``, ``"audio.end"`` (the SDK ended a
    turn's audio), ``"turn.end"`` (the service sent one), ``"server.close"`` (the service
    began closing: a ``CloseError``, a ``ServerClose``, ``close_connections()`` or
    ``stop()``), ``"close.received"`` (the SDK's close frame arrived), ``"close.answered"``
    (it was passed on and answered, after any ``Teardown`` hold), ``"peer.eof"`` (the SDK
    closed its side of the TCP connection) and ``"closed"``.
    """

    path: str
    query: Tuple[Tuple[str, str], ...]
    headers: Tuple[Tuple[str, str], ...]
    status: int
    turns: Tuple[TurnRecord, ...]
    open: bool
    close_code: Optional[int]
    timeline: Tuple[Tuple[str, float], ...] = ()

    def time_of(self, event: str) -> Optional[float]:
        """When ``event`` first happened (``time.monotonic()``), or ``None``."""
        for name, when in self.timeline:
            if name == event:
                return when
        return None

    @property
    def audio_bytes(self) -> int:
        """PCM bytes received over all turns."""
        return sum(turn.audio_bytes for turn in self.turns)

    def header(self, name: str) -> Optional[str]:
        """The value of handshake header ``name`` (case-insensitive), or ``None``."""
        return _lookup(self.headers, name)

    def param(self, name: str) -> Optional[str]:
        """The value of query parameter ``name`` (case-insensitive), or ``None``."""
        return _lookup(self.query, name)
