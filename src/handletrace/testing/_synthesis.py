"""The Speech SDK's text-to-speech websocket protocol as the local service speaks it: pure
functions.

Client -> service, per ``speak_*`` request: text ``synthesis.context`` (the output format and
which metadata to send) and text ``ssml``, both with the request's ``X-RequestId``. Service
-> client: text ``turn.start``, binary ``audio`` messages (2-byte big-endian header length,
headers, audio bytes of the requested format), text ``audio.metadata`` (word boundaries,
session end) and text ``turn.end``. See ``docs/speech-protocol-synthesis.md``.
"""

from __future__ import annotations

import functools
import math
import re
import struct
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._script import TICKS_PER_SECOND, CloseError, Fault, StatusError, Synthesis

__all__ = [
    "DEFAULT_OUTPUT_FORMAT",
    "OutputFormat",
    "SynthesisRequest",
    "WordBoundary",
    "format_audio_message",
    "format_metadata",
    "metadata_options",
    "output_format",
    "session_end",
    "ssml_text",
    "synthesis_audio",
    "synthesis_close",
    "word_boundaries",
]

DEFAULT_OUTPUT_FORMAT = "raw-16khz-16bit-mono-pcm"
"""What the SDK asks for unless the speech config sets another output format."""

_FORMAT = re.compile(r"^raw-(\d+)(khz|hz)-(8|16)bit-mono-(pcm|mulaw|alaw)$")


@dataclass(frozen=True)
class OutputFormat:
    """An audio format the service can make: ``encoding`` is ``"pcm"`` (16-bit little-endian
    samples), ``"mulaw"`` or ``"alaw"`` (8-bit G.711)."""

    name: str
    sample_rate: int
    encoding: str

    @property
    def sample_width(self) -> int:
        """Bytes per sample."""
        return 2 if self.encoding == "pcm" else 1

    @property
    def byte_rate(self) -> int:
        """Bytes per second of audio."""
        return self.sample_rate * self.sample_width


def output_format(name: str) -> Optional[OutputFormat]:
    """The format called ``name`` in ``synthesis.context`` (``"raw-24khz-16bit-mono-pcm"``),
    or ``None`` for one the service cannot make (compressed formats such as MP3 or Opus).

    The SDK asks for ``raw-*`` formats only; for its ``Riff*`` formats it asks for the raw one
    and writes the WAV header itself.
    """
    match = _FORMAT.match(name.strip().lower())
    if match is None:
        return None
    rate_text, unit, bits, encoding = match.groups()
    rate = int(rate_text) * (1000 if unit == "khz" else 1)
    if (encoding == "pcm") != (bits == "16") or not 1000 <= rate <= 192_000:
        return None
    return OutputFormat(name.strip().lower(), rate, encoding)


@dataclass(frozen=True)
class SynthesisRequest:
    """What one ``synthesis.context`` asked for: the output format's name and the metadata."""

    output_format: str = DEFAULT_OUTPUT_FORMAT
    word_boundaries: bool = False
    session_end: bool = False


def metadata_options(context: Mapping[str, Any]) -> SynthesisRequest:
    """Read ``synthesis.audio.outputFormat`` and ``metadataOptions`` from a
    ``synthesis.context`` body (missing parts keep their defaults)."""
    synthesis = context.get("synthesis")
    audio = synthesis.get("audio") if isinstance(synthesis, Mapping) else None
    if not isinstance(audio, Mapping):
        return SynthesisRequest()
    name = audio.get("outputFormat")
    options = audio.get("metadataOptions")
    options = options if isinstance(options, Mapping) else {}
    return SynthesisRequest(
        output_format=name if isinstance(name, str) and name else DEFAULT_OUTPUT_FORMAT,
        word_boundaries=options.get("wordBoundaryEnabled") is True,
        session_end=options.get("sessionEndEnabled") is True,
    )


def ssml_text(ssml: str) -> str:
    """The text an SSML document speaks: its character data, whitespace collapsed.

    Raises ``ValueError`` for text that is not well-formed XML.
    """
    try:
        root = ElementTree.fromstring(ssml)
    except ElementTree.ParseError as error:
        raise ValueError(f"invalid SSML: {error}") from None
    return " ".join("".join(root.itertext()).split())


def _mulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(magnitude.bit_length() - 8, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _alaw(sample: int) -> int:
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(abs(sample), 32767) >> 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


@functools.lru_cache(maxsize=32)
def _one_second(fmt: OutputFormat, frequency: float, amplitude: float) -> bytes:
    """One second of a sine tone (silence at amplitude 0) in ``fmt``."""
    rate = fmt.sample_rate
    peak = amplitude * 32767
    step = 2 * math.pi * frequency / rate
    samples = [round(peak * math.sin(step * i)) for i in range(rate)]
    if fmt.encoding == "pcm":
        return struct.pack(f"<{rate}h", *samples)
    encode = _mulaw if fmt.encoding == "mulaw" else _alaw
    return bytes(encode(sample) for sample in samples)


def synthesis_audio(fmt: OutputFormat, seconds: float, synthesis: Synthesis) -> bytes:
    """``seconds`` of audio in ``fmt``: the script's tone, or silence (whole samples; the tone
    repeats every second)."""
    amplitude = synthesis.amplitude if synthesis.audio == "tone" else 0.0
    second = _one_second(fmt, synthesis.frequency, amplitude)
    size = round(seconds * fmt.sample_rate) * fmt.sample_width
    whole, rest = divmod(size, len(second))
    return second * whole + second[:rest]


def chunk_size(fmt: OutputFormat, synthesis: Synthesis) -> int:
    """Bytes per audio message: ``synthesis.chunk_seconds`` of whole samples."""
    return max(round(synthesis.chunk_seconds * fmt.sample_rate), 1) * fmt.sample_width


@dataclass(frozen=True)
class WordBoundary:
    """One word of the text and where it sits in the audio (ticks)."""

    text: str
    offset: int
    duration: int


def word_boundaries(text: str, synthesis: Synthesis) -> List[WordBoundary]:
    """Each word of ``text`` (whitespace-separated, punctuation stripped at its ends) with the
    ``word_seconds`` slice of audio it occupies."""
    ticks = round(synthesis.word_seconds * TICKS_PER_SECOND)
    boundaries = []
    for index, token in enumerate(text.split()):
        word = token.strip(".,;:!?\"'()[]{}")
        if word:
            boundaries.append(WordBoundary(word, index * ticks, ticks))
    return boundaries


def synthesis_seconds(text: str, synthesis: Synthesis) -> float:
    """How long the audio for ``text`` lasts: ``word_seconds`` per word, at least a chunk."""
    return max(len(text.split()) * synthesis.word_seconds, synthesis.chunk_seconds)


def format_audio_message(request_id: str, audio: bytes) -> bytes:
    """A service -> client binary audio message (header names are case-sensitive)."""
    head = (f"X-RequestId:{request_id}\r\nContent-Type:audio/x-wav\r\nPath:audio\r\n").encode(
        "ascii"
    )
    return struct.pack(">H", len(head)) + head + audio


def format_metadata(boundary: WordBoundary) -> Dict[str, Any]:
    """The ``audio.metadata`` body of one word boundary."""
    return {
        "Metadata": [
            {
                "Type": "WordBoundary",
                "Data": {
                    "Offset": boundary.offset,
                    "Duration": boundary.duration,
                    "text": {
                        "Text": boundary.text,
                        "Length": len(boundary.text),
                        "BoundaryType": "WordBoundary",
                    },
                },
            }
        ]
    }


def session_end(ticks: int) -> Dict[str, Any]:
    """The ``audio.metadata`` body that ends a synthesis session (the SDK takes the result's
    ``audio_duration`` from its offset)."""
    return {"Metadata": [{"Type": "SessionEnd", "Data": {"Offset": ticks}}]}


_STATUS_CLOSE_CODES: Mapping[str, int] = {"BadRequest": 1007, "TooManyRequests": 4429}


def synthesis_close(fault: Optional[Fault]) -> Optional[Tuple[int, str]]:
    """The websocket close ``(code, reason)`` that a fault makes of a synthesis turn, or
    ``None`` (no fault, or a ``HandshakeError``, which acts before any turn)."""
    if isinstance(fault, CloseError):
        return fault.code, fault.reason
    if isinstance(fault, StatusError):
        return _STATUS_CLOSE_CODES.get(fault.status, 1011), fault.status
    return None
