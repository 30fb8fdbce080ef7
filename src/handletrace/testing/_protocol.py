"""The Speech SDK's websocket protocol (USP) as the local service speaks it: pure functions.

Client -> service: text frames ``Path: speech.config`` / ``speech.context`` / ``telemetry``
(headers, a blank line, JSON) and binary audio frames (2-byte big-endian header length,
headers, then audio; the first audio of a stream starts with a WAV header; an empty body
ends the audio). Service -> client: text frames whose ``X-RequestId`` equals the turn's id.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._script import TICKS_PER_SECOND, CloseError, Script, StatusError

__all__ = [
    "ClientMessage",
    "DEFAULT_BYTE_RATE",
    "Reply",
    "audio_ticks",
    "format_message",
    "parse_audio_message",
    "parse_text_message",
    "plan_continuation",
    "plan_turn",
    "recognition_mode",
    "wav_header_info",
]

DEFAULT_BYTE_RATE = 32_000
"""Bytes per second of 16 kHz, 16-bit, mono PCM (the SDK's default input format)."""


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


def plan_turn(script: Script, mode: str, turn_ticks: int, *, detailed: bool = False) -> List[Reply]:
    """The messages that answer a turn whose audio (``turn_ticks`` long) has ended.

    ``turn.start`` is not included: it is sent when the turn begins. See ``Script`` for the
    rules; this function is where they are implemented.
    """
    interactive = mode == "interactive"
    phrases = script.phrases[:1] if interactive else script.phrases
    replies: List[Reply] = []
    cursor = 0
    slot = turn_ticks // len(script.phrases) if script.phrases else 0
    for phrase in phrases:
        offset = cursor if phrase.offset is None else phrase.offset
        duration = slot if phrase.duration is None else phrase.duration
        cursor = offset + duration
        speaker: Dict[str, Any] = (
            {} if phrase.speaker_id is None else {"SpeakerId": phrase.speaker_id}
        )
        replies.append(Reply("speech.startDetected", {"Offset": offset}))
        count = len(phrase.hypotheses)
        for index, hypothesis in enumerate(phrase.hypotheses, start=1):
            replies.append(
                Reply(
                    "speech.hypothesis",
                    {
                        "Text": hypothesis,
                        "Offset": offset,
                        "Duration": duration * index // (count + 1),
                        **speaker,
                    },
                )
            )
        replies.append(Reply("speech.endDetected", {"Offset": offset + duration}))
        replies.append(
            Reply(
                "speech.phrase",
                _phrase_body("Success", offset, duration, phrase.text, phrase.speaker_id, detailed),
            )
        )
    fault = script.fault
    if isinstance(fault, StatusError):
        replies.append(
            Reply("speech.phrase", _phrase_body(fault.status, cursor, 0, None, None, False))
        )
    elif isinstance(fault, CloseError):
        return [*replies, Reply("", {}, close_code=fault.code, close_reason=fault.reason)]
    elif interactive and not phrases:
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


def plan_continuation(turn_ticks: int) -> List[Reply]:
    """The answer to a continuation turn: acknowledge the replayed audio, end the turn."""
    return [
        Reply("speech.phrase", _phrase_body("EndOfDictation", 0, turn_ticks, None, None, False)),
        Reply("turn.end", {}),
    ]
