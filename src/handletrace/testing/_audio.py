"""Audio made in code for tests: WAV bytes and a push stream that feeds them to the SDK."""

from __future__ import annotations

import math
import struct
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.cognitiveservices.speech.audio import AudioConfig, PushAudioInputStream

__all__ = ["PushAudio", "pcm_from_wav", "push_stream_audio_config", "silence_wav", "tone_wav"]

SAMPLE_RATE = 16_000
"""Samples per second of the audio made here (the Speech SDK's default input format)."""

_BITS = 16
_CHANNELS = 1


def _wav(pcm: bytes) -> bytes:
    block = _CHANNELS * _BITS // 8
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(pcm), b"WAVE",
        b"fmt ", 16, 1, _CHANNELS, SAMPLE_RATE, SAMPLE_RATE * block, block, _BITS,
        b"data", len(pcm),
    )  # fmt: skip
    return header + pcm


def _samples(seconds: float) -> int:
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    return round(seconds * SAMPLE_RATE)


def silence_wav(seconds: float) -> bytes:
    """``seconds`` of silence as a WAV file (16 kHz, 16-bit, mono PCM, 44-byte header)."""
    return _wav(bytes(2 * _samples(seconds)))


def tone_wav(seconds: float, frequency: float = 440.0, amplitude: float = 0.5) -> bytes:
    """A sine tone as a WAV file (16 kHz, 16-bit, mono PCM, 44-byte header).

    ``amplitude`` is a fraction of full scale, between 0 and 1.
    """
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError(f"amplitude must be between 0 and 1, got {amplitude}")
    if not 0.0 < frequency <= SAMPLE_RATE / 2:
        raise ValueError(f"frequency must be in (0, {SAMPLE_RATE // 2}] Hz, got {frequency}")
    peak = amplitude * 32767
    step = 2 * math.pi * frequency / SAMPLE_RATE
    count = _samples(seconds)
    pcm = struct.pack(f"<{count}h", *(round(peak * math.sin(step * i)) for i in range(count)))
    return _wav(pcm)


def pcm_from_wav(wav: bytes) -> bytes:
    """The PCM samples of a 16 kHz, 16-bit, mono PCM WAV file.

    Raises ``ValueError`` for anything else, so a wrong format cannot reach the SDK silently.
    """
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    position, fmt = 12, None
    while position + 8 <= len(wav):
        chunk_id, size = struct.unpack("<4sI", wav[position : position + 8])
        payload = wav[position + 8 : position + 8 + size]
        if chunk_id == b"fmt ":
            fmt = struct.unpack("<HHIIHH", payload[:16])
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk before its fmt chunk")
            tag, channels, rate, _, _, bits = fmt
            if (tag, channels, rate, bits) != (1, _CHANNELS, SAMPLE_RATE, _BITS):
                raise ValueError(
                    f"expected 16 kHz 16-bit mono PCM, got format {tag}, {channels} channel(s), "
                    f"{rate} Hz, {bits} bits"
                )
            return payload
        position += 8 + size + (size & 1)
    raise ValueError("WAV file without a data chunk")


class _Feeder:
    """Writes the audio into the stream and closes it, once; refers to nothing else."""

    def __init__(self, stream: PushAudioInputStream, pcm: bytes) -> None:
        self.stream = stream
        self.pcm = pcm
        self.fed = False
        self._lock = threading.Lock()

    def feed(self) -> None:
        with self._lock:
            if self.fed:
                return
            self.fed = True
        if self.pcm:
            self.stream.write(self.pcm)
        self.stream.close()

    def __call__(self, _event: object) -> None:
        self.feed()


class PushAudio:
    """A ``PushAudioInputStream``, its ``AudioConfig`` and the audio to feed into it.

    Create it with ``push_stream_audio_config()`` and pass ``config`` to the recognizer. Feed
    the audio once the recognizer is connected, which is what keeps sessions fast::

        audio = push_stream_audio_config(silence_wav(1.0))
        recognizer = speechsdk.SpeechRecognizer(speech_config, audio_config=audio.config)
        audio.feed_when_connected(recognizer)   # for recognize_once() (and any other mode)
        result = recognizer.recognize_once()

        # or, in continuous modes, simply:
        recognizer.start_continuous_recognition_async().get()
        audio.feed()

    Why (measured with SDK 1.53.0 against ``SpeechService`` on 2 cores): when the stream
    reaches its end before the SDK's websocket is connected, the SDK often waits an extra
    500 ms before it connects (an internal timed wait). Writing and closing the stream
    before starting made 45-80 % of sessions pay it (a pull stream 65 %, and
    ``AudioConfig(filename=...)`` suffers the same); feeding it from a ``session_started``
    handler still 4-24 %; feeding it after ``start_continuous_recognition_async().get()``
    returned, or from the ``Connection.connected`` event, none in 600 sessions each (median
    start to ``session_stopped``: 22 ms and 32 ms). Closing the stream ends the audio: the
    SDK then sends its end-of-audio message, which is when ``SpeechService`` answers.

    A ``PushAudio`` owns SDK handles (the stream, the audio config and, after
    ``feed_when_connected()``, a ``speechsdk.Connection``): drop it together with the
    recognizer. It feeds one session; the stream stays closed afterwards.
    """

    def __init__(self, config: AudioConfig, stream: PushAudioInputStream, pcm: bytes) -> None:
        self.config = config
        self.stream = stream
        self.pcm = pcm
        self._feeder = _Feeder(stream, pcm)
        self._connection: Any = None

    @property
    def fed(self) -> bool:
        """Whether the audio was written and the stream closed."""
        return self._feeder.fed

    def feed(self) -> None:
        """Write the audio and close the stream now; later calls do nothing."""
        self._feeder.feed()

    def feed_when_connected(self, recognizer: Any) -> None:
        """Call ``feed()`` when ``recognizer``'s websocket connects.

        Uses ``speechsdk.Connection.from_recognizer(recognizer).connected``; the connection
        object is kept by this ``PushAudio`` and its handler refers to the stream only (never
        to the recognizer), so no reference cycle is created.
        """
        from azure.cognitiveservices.speech import Connection

        connection = Connection.from_recognizer(recognizer)
        connection.connected.connect(self._feeder)
        self._connection = connection

    def __repr__(self) -> str:
        state = "fed" if self.fed else "not fed"
        return f"<PushAudio {len(self.pcm)} PCM bytes, {state}>"


def push_stream_audio_config(audio: bytes = b"") -> PushAudio:
    """A 16 kHz 16-bit mono push stream with its ``AudioConfig``, ready to be fed ``audio``.

    ``audio`` is a WAV file as made by ``silence_wav()``/``tone_wav()`` (its header is
    stripped) or raw PCM. Nothing is written until ``feed()``; see ``PushAudio`` for when
    to call it. Imports the Speech SDK.
    """
    from azure.cognitiveservices.speech import audio as speech_audio

    pcm = pcm_from_wav(audio) if audio[:4] == b"RIFF" else bytes(audio)
    stream_format = speech_audio.AudioStreamFormat(
        samples_per_second=SAMPLE_RATE, bits_per_sample=_BITS, channels=_CHANNELS
    )
    stream = speech_audio.PushAudioInputStream(stream_format=stream_format)
    return PushAudio(speech_audio.AudioConfig(stream=stream), stream, pcm)
