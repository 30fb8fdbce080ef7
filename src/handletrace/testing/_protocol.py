"""The Speech SDK's websocket protocol (USP) as the local service speaks it: pure functions.

Client -> service: text frames ``Path: speech.config`` / ``speech.context`` / ``telemetry``
(headers, a blank line, JSON) and binary audio frames (2-byte big-endian header length,
headers, then audio; the first audio of a stream starts with a WAV header; an empty body
ends the audio). Service -> client: text frames whose ``X-RequestId`` equals the turn's id.

A recognition turn is answered either at the end of its audio (``plan_turn``) or while its
audio streams in (``place_phrases``, ``phrase_cues``, ``end_of_turn``).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ._script import (
    DEFAULT_END_SILENCE,
    TICKS_PER_SECOND,
    CloseError,
    Phrase,
    Script,
    StatusError,
)

__all__ = [
    "ClientMessage",
    "Cue",
    "DEFAULT_BYTE_RATE",
    "DEFAULT_INITIAL_SILENCE",
    "PlacedPhrase",
    "Reply",
    "TurnSettings",
    "audio_ticks",
    "continuation_origin",
    "end_of_turn",
    "format_message",
    "parse_audio_message",
    "parse_text_message",
    "phrase_cues",
    "place_phrases",
    "plan_continuation",
    "plan_turn",
    "recognition_mode",
    "resolve_end_silence",
    "seconds_to_ticks",
    "turn_settings",
    "wav_header_info",
]

DEFAULT_BYTE_RATE = 32_000
"""Bytes per second of 16 kHz, 16-bit, mono PCM (the SDK's default input format)."""

DEFAULT_INITIAL_SILENCE = 5.0
"""Seconds of audio without speech after which an interactive turn without phrases gets its
``InitialSilenceTimeout`` result, unless the SDK sets ``initialSilenceTimeoutMs``."""


@dataclass(frozen=True)
class ClientMessage:
    """One message from the SDK: its headers (names as sent) and its body."""

    headers: Tuple[Tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        """The value of header ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    @property
    def path(self) -> str:
        """The ``Path`` header (``""`` if missing)."""
        return self.header("Path") or ""

    @property
    def request_id(self) -> str:
        """The ``X-RequestId`` header (``""`` if missing)."""
        return self.header("X-RequestId") or ""


def _parse_headers(text: str) -> Tuple[Tuple[str, str], ...]:
    headers = []
    for line in text.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return tuple(headers)


def parse_text_message(message: str) -> ClientMessage:
    """Split a text frame into headers and body."""
    head, _, body = message.partition("\r\n\r\n")
    return ClientMessage(_parse_headers(head), body.encode("utf-8"))


def parse_audio_message(message: bytes) -> ClientMessage:
    """Split a binary frame (2-byte big-endian header length, headers, audio)."""
    if len(message) < 2:
        raise ValueError("binary message shorter than its 2-byte header length")
    (length,) = struct.unpack(">H", message[:2])
    if len(message) < 2 + length:
        raise ValueError("binary message shorter than its headers")
    head = message[2 : 2 + length].decode("utf-8", errors="replace")
    return ClientMessage(_parse_headers(head), message[2 + length :])


def wav_header_info(data: bytes) -> Optional[Tuple[int, int]]:
    """``(header_length, byte_rate)`` if ``data`` starts with a RIFF/WAVE header, else None.

    The header ends at the start of the ``data`` chunk's payload; ``byte_rate`` comes from
    the ``fmt `` chunk (``DEFAULT_BYTE_RATE`` if it is missing).
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    position = 12
    byte_rate = DEFAULT_BYTE_RATE
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (size,) = struct.unpack("<I", data[position + 4 : position + 8])
        if chunk_id == b"data":
            return position + 8, byte_rate
        if chunk_id == b"fmt " and size >= 12 and position + 20 <= len(data):
            (byte_rate,) = struct.unpack("<I", data[position + 16 : position + 20])
        position += 8 + size + (size & 1)
    return None


def seconds_to_ticks(seconds: float) -> int:
    """``seconds`` in 100-ns ticks, rounded to the nearest tick."""
    return round(seconds * TICKS_PER_SECOND)


def audio_ticks(audio_bytes: int, byte_rate: int = DEFAULT_BYTE_RATE) -> int:
    """The duration of ``audio_bytes`` of PCM at ``byte_rate``, in 100-ns ticks."""
    if byte_rate <= 0:
        return 0
    return audio_bytes * TICKS_PER_SECOND // byte_rate


def format_message(path: str, request_id: str, body: Mapping[str, Any]) -> str:
    """A service -> client text frame; ``X-RequestId`` must be the turn's id exactly."""
    return (
        f"Path: {path}\r\n"
        f"X-RequestId: {request_id}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        "\r\n"
        f"{json.dumps(body, separators=(',', ':'))}"
    )


def recognition_mode(path: str, context: Mapping[str, Any]) -> str:
    """``"interactive"``, ``"conversation"`` or ``"dictation"`` for a turn.

    Taken from ``speech.context`` (``phraseDetection.mode``) when the SDK sends it, else from
    the request path (``/speech/recognition/<mode>/...``); ``/speech/universal/...`` without a
    mode is continuous (``"conversation"``).
    """
    detection = context.get("phraseDetection")
    if isinstance(detection, Mapping):
        mode = detection.get("mode")
        if isinstance(mode, str) and mode:
            return mode.lower()
    for mode in ("interactive", "dictation", "conversation"):
        if f"/{mode}/" in path:
            return mode
    return "conversation"


@dataclass(frozen=True)
class Reply:
    """One step of a turn's answer: a message to send, or the websocket close."""

    path: str
    body: Mapping[str, Any]
    close_code: Optional[int] = None
    close_reason: str = ""


def _phrase_body(
    status: str,
    offset: int,
    duration: int,
    text: Optional[str],
    speaker_id: Optional[str],
    detailed: bool,
) -> Dict[str, Any]:
    body: Dict[str, Any] = {"RecognitionStatus": status, "Offset": offset, "Duration": duration}
    if text is not None:
        body["DisplayText"] = text
        if detailed:
            body["NBest"] = [
                {
                    "Confidence": 0.95,
                    "Lexical": text.lower(),
                    "ITN": text.lower(),
                    "MaskedITN": text.lower(),
                    "Display": text,
                }
            ]
    if speaker_id is not None:
        body["SpeakerId"] = speaker_id
    return body


def _phrase_replies(
    phrase: Phrase, offset: int, duration: int, *, detailed: bool
) -> Tuple[List[Tuple[int, Reply]], List[Reply]]:
    """A phrase's messages: ``startDetected`` and the hypotheses, each with the tick of the
    phrase it reaches; then ``endDetected`` and ``speech.phrase``."""
    speaker: Dict[str, Any] = {} if phrase.speaker_id is None else {"SpeakerId": phrase.speaker_id}
    early = [(offset, Reply("speech.startDetected", {"Offset": offset}))]
    count = len(phrase.hypotheses)
    for index, hypothesis in enumerate(phrase.hypotheses, start=1):
        reached = duration * index // (count + 1)
        body = {"Text": hypothesis, "Offset": offset, "Duration": reached, **speaker}
        early.append((offset + reached, Reply("speech.hypothesis", body)))
    final = [
        Reply("speech.endDetected", {"Offset": offset + duration}),
        Reply(
            "speech.phrase",
            _phrase_body("Success", offset, duration, phrase.text, phrase.speaker_id, detailed),
        ),
    ]
    return early, final


def end_of_turn(
    script: Script, mode: str, cursor: int, turn_ticks: int, *, answered: bool
) -> List[Reply]:
    """The messages that end a turn after its phrases: the fault, or ``turn.end`` after an
    ``InitialSilenceTimeout`` (interactive turn without a phrase) or an ``EndOfDictation``
    that acknowledges the audio from ``cursor`` (the end of the last phrase) to
    ``turn_ticks`` (continuous modes)."""
    interactive = mode == "interactive"
    fault = script.fault
    replies: List[Reply] = []
    if isinstance(fault, StatusError):
        replies.append(
            Reply("speech.phrase", _phrase_body(fault.status, cursor, 0, None, None, False))
        )
    elif isinstance(fault, CloseError):
        return [Reply("", {}, close_code=fault.code, close_reason=fault.reason)]
    elif interactive and not answered:
        replies.append(
            Reply(
                "speech.phrase",
                _phrase_body("InitialSilenceTimeout", 0, turn_ticks, None, None, False),
            )
        )
    elif not interactive:
        replies.append(
            Reply(
                "speech.phrase",
                _phrase_body(
                    "EndOfDictation", cursor, max(turn_ticks - cursor, 0), None, None, False
                ),
            )
        )
    replies.append(Reply("turn.end", {}))
    return replies


def plan_turn(script: Script, mode: str, turn_ticks: int, *, detailed: bool = False) -> List[Reply]:
    """The messages that answer a turn whose audio (``turn_ticks`` long) has ended, for a
    script with ``streaming=False``.

    ``turn.start`` is not included: it is sent when the turn begins. See ``Script`` for the
    rules; this function is where they are implemented.
    """
    phrases = script.phrases[:1] if mode == "interactive" else script.phrases
    replies: List[Reply] = []
    cursor = 0
    slot = turn_ticks // len(script.phrases) if script.phrases else 0
    for phrase in phrases:
        offset = cursor if phrase.offset is None else phrase.offset
        duration = slot if phrase.duration is None else phrase.duration
        cursor = offset + duration
        early, final = _phrase_replies(phrase, offset, duration, detailed=detailed)
        replies.extend(reply for _, reply in early)
        replies.extend(final)
    return replies + end_of_turn(script, mode, cursor, turn_ticks, answered=bool(phrases))


@dataclass(frozen=True)
class TurnSettings:
    """What the SDK asked of a recognition turn, in ticks (``None``: it did not say)."""

    end_silence: Optional[int] = None
    initial_silence: Optional[int] = None


def _milliseconds(value: Any) -> Optional[int]:
    try:
        milliseconds = int(value)
    except (TypeError, ValueError):
        return None
    return milliseconds * TICKS_PER_SECOND // 1000 if milliseconds >= 0 else None


def turn_settings(
    context: Mapping[str, Any], query: Tuple[Tuple[str, str], ...] = ()
) -> TurnSettings:
    """The segmentation and initial silence timeouts the SDK sent for a turn.

    ``speech.context`` carries ``phraseDetection.initialSilenceTimeout`` and
    ``phraseDetection.<MODE>.segmentation.segmentationSilenceTimeoutMs`` (milliseconds) when
    the speech config sets them; the query string carries ``initialSilenceTimeoutMs``.
    """
    detection = context.get("phraseDetection")
    end_silence = initial = None
    if isinstance(detection, Mapping):
        initial = _milliseconds(detection.get("initialSilenceTimeout"))
        for value in detection.values():
            if isinstance(value, Mapping) and isinstance(value.get("segmentation"), Mapping):
                segmentation = value["segmentation"]
                end_silence = _milliseconds(segmentation.get("segmentationSilenceTimeoutMs"))
    if initial is None:
        for name, value in query:
            if name.lower() == "initialsilencetimeoutms":
                initial = _milliseconds(value)
    return TurnSettings(end_silence=end_silence, initial_silence=initial)


@dataclass(frozen=True)
class PlacedPhrase:
    """A phrase on a streaming turn's audio timeline (ticks).

    ``owed`` is True for the script's first pass: those phrases are answered when the audio
    ends even if it never reached them.
    """

    phrase: Phrase
    offset: int
    duration: int
    owed: bool


def place_phrases(script: Script, end_silence: int, origin: int = 0) -> Iterator[PlacedPhrase]:
    """The phrases of a streaming turn in order; endless with ``script.repeat``.

    An untimed phrase starts ``end_silence`` ticks after the previous one ended (the first at
    0) and lasts ``script.phrase_duration``; a repetition starts ``end_silence`` after the
    latest end of the pass before. A continuation turn's audio starts at ``origin`` on that
    timeline (where the SDK resumes): it gets the phrases that start there or later, with
    offsets relative to its own audio (the SDK adds ``origin`` back).
    """
    if not script.phrases:
        return
    default_duration = seconds_to_ticks(script.phrase_duration)
    shift, owed = 0, True
    while True:
        previous_end: Optional[int] = None
        latest_end = 0
        for phrase in script.phrases:
            if phrase.offset is not None:
                offset = phrase.offset
            else:
                offset = 0 if previous_end is None else previous_end + end_silence
            duration = default_duration if phrase.duration is None else phrase.duration
            previous_end = offset + duration
            latest_end = max(latest_end, previous_end)
            if shift + offset >= origin:
                yield PlacedPhrase(phrase, shift + offset - origin, duration, owed)
        if not script.repeat:
            return
        shift += max(latest_end + end_silence, 1)
        owed = False


def continuation_origin(context: Mapping[str, Any]) -> int:
    """Where a continuation turn's replayed audio starts on the session's audio timeline
    (``continuation.audio.streams.1.offset`` of ``speech.context``, ticks), else 0."""
    continuation = context.get("continuation")
    if not isinstance(continuation, Mapping):
        return 0
    audio = continuation.get("audio")
    streams = audio.get("streams") if isinstance(audio, Mapping) else None
    if not isinstance(streams, Mapping):
        return 0
    for stream in streams.values():
        if isinstance(stream, Mapping):
            try:
                return max(int(stream.get("offset", 0)), 0)
            except (TypeError, ValueError):
                return 0
    return 0


@dataclass(frozen=True)
class Cue:
    """A reply of a streaming turn, due once the service has received ``at`` ticks of audio.

    ``final`` marks the phrase's ``endDetected`` and ``speech.phrase``.
    """

    at: int
    reply: Reply
    final: bool = False


def phrase_cues(placed: PlacedPhrase, end_silence: int, *, detailed: bool = False) -> List[Cue]:
    """A placed phrase's messages with the audio each waits for, in order.

    ``startDetected`` waits for audio past the offset (one tick more), the k-th of n
    hypotheses for ``k/(n+1)`` of the phrase, the end for its end plus ``end_silence``.
    """
    early, final = _phrase_replies(placed.phrase, placed.offset, placed.duration, detailed=detailed)
    cues: List[Cue] = []
    due = placed.offset + 1
    for reached, reply in early:
        due = max(due, reached)
        cues.append(Cue(due, reply))
    due = max(due, placed.offset + placed.duration + end_silence)
    cues.extend(Cue(due, reply, final=True) for reply in final)
    return cues


def resolve_end_silence(script: Script, settings: TurnSettings) -> int:
    """The end-of-utterance silence of a streaming turn, in ticks: the script's, else the
    SDK's segmentation silence timeout, else ``DEFAULT_END_SILENCE``."""
    if script.end_silence is not None:
        return seconds_to_ticks(script.end_silence)
    if settings.end_silence is not None:
        return settings.end_silence
    return seconds_to_ticks(DEFAULT_END_SILENCE)


def plan_continuation(turn_ticks: int) -> List[Reply]:
    """The answer to a continuation turn: acknowledge the replayed audio, end the turn."""
    return [
        Reply("speech.phrase", _phrase_body("EndOfDictation", 0, turn_ticks, None, None, False)),
        Reply("turn.end", {}),
    ]
