"""Specification of the local service's text-to-speech endpoint, driven by the real SDK."""

from __future__ import annotations

import gc
import struct
import threading
import time
import wave
from io import BytesIO
from typing import Any, Callable, List

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace.testing import (
    REDACTED,
    TICKS_PER_SECOND,
    CloseError,
    HandshakeError,
    Script,
    SpeechService,
    StatusError,
    Synthesis,
)

from . import speech_fixtures
from .speech_fixtures import FAST_ERRORS, native_threads, synthesize, synthesizer

speech_service = speech_fixtures.speech_service
service = speech_fixtures.service

Reason = speechsdk.ResultReason
Code = speechsdk.CancellationErrorCode
Format = speechsdk.SpeechSynthesisOutputFormat
TEXT = "Hello world, this is a test."  # 6 words: 1.8 s at 0.3 s a word


def wav_params(data: bytes) -> Any:
    """(rate, width, channels, frames, samples) of a WAV file."""
    with wave.open(BytesIO(data)) as wav:
        frames = wav.readframes(wav.getnframes())
        return wav.getframerate(), wav.getsampwidth(), wav.getnchannels(), wav.getnframes(), frames


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 10 ms until it holds or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- one request -------------------------------------------------------------------------


def test_speak_text_returns_audio_of_the_text_length(service: SpeechService) -> None:
    """speak_text_async().get() completes with a WAV of 0.3 s per word (default format)."""
    [result], _ = synthesize(service, [TEXT])
    rate, width, channels, frames, _ = wav_params(result.audio)
    assert (result.reason, rate, width, channels, frames) == (
        Reason.SynthesizingAudioCompleted,
        16_000,
        2,
        1,
        int(1.8 * 16_000),
    )


def test_synthesis_events_fire_in_order(service: SpeechService) -> None:
    """synthesis_started, one synthesizing per 100 ms chunk, then synthesis_completed."""
    _, log = synthesize(service, [TEXT])
    names = [entry[0] for entry in log.events]
    assert names == ["synthesis_started"] + ["synthesizing"] * 18 + ["synthesis_completed"]


def test_audio_duration_comes_from_the_session_end(service: SpeechService) -> None:
    """The result's audio_duration is the length of the audio sent (SessionEnd metadata)."""
    [result], _ = synthesize(service, [TEXT])
    assert result.audio_duration == 1.8


def test_the_audio_is_a_tone_by_default(service: SpeechService) -> None:
    """The default audio is a 440 Hz tone at 0.3 of full scale."""
    [result], _ = synthesize(service, ["one"])
    samples = struct.unpack("<4800h", wav_params(result.audio)[4])
    assert (max(samples), min(samples)) == (round(0.3 * 32767), -round(0.3 * 32767))


def test_silence_is_available(service: SpeechService) -> None:
    """Synthesis(audio="silence") sends zero samples."""
    service.script = Script(synthesis=Synthesis(audio="silence"))
    [result], _ = synthesize(service, ["one"])
    assert wav_params(result.audio)[4] == bytes(9600)


def test_word_seconds_sets_the_length(service: SpeechService) -> None:
    """Synthesis(word_seconds=1.0) makes 1 s of audio per word."""
    service.script = Script(synthesis=Synthesis(word_seconds=1.0))
    [result], _ = synthesize(service, ["two words"])
    assert wav_params(result.audio)[3] == 32_000


@pytest.mark.parametrize(
    ("output_format", "rate", "width"),
    [
        (Format.Riff24Khz16BitMonoPcm, 24_000, 2),
        (Format.Riff48Khz16BitMonoPcm, 48_000, 2),
        (Format.Riff22050Hz16BitMonoPcm, 22_050, 2),
        (Format.Riff8Khz16BitMonoPcm, 8_000, 2),
    ],
)
def test_pcm_output_formats(
    service: SpeechService, output_format: Any, rate: int, width: int
) -> None:
    """The audio has the sample rate the SDK asked for (it writes the WAV header itself)."""
    [result], _ = synthesize(service, ["one two"], output_format)
    params = wav_params(result.audio)[:4]
    assert params == (rate, width, 1, round(0.6 * rate))


@pytest.mark.parametrize(
    ("output_format", "name", "silence"),
    [
        (Format.Raw8Khz8BitMonoMULaw, "raw-8khz-8bit-mono-mulaw", 0xFF),
        (Format.Raw8Khz8BitMonoALaw, "raw-8khz-8bit-mono-alaw", 0xD5),
    ],
)
def test_g711_output_formats(
    service: SpeechService, output_format: Any, name: str, silence: int
) -> None:
    """mu-law and A-law formats get 8-bit G.711 samples (silence encodes as its code)."""
    service.script = Script(synthesis=Synthesis(audio="silence"))
    [result], _ = synthesize(service, ["one"], output_format)
    turn = service.connections[0].turns[0]
    assert (result.audio, turn.output_format) == (bytes([silence]) * 2400, name)


def test_unsupported_output_format_is_a_bad_request(service: SpeechService) -> None:
    """Compressed formats are not made locally: the request is canceled with BadRequest."""
    [result], _ = synthesize(service, [TEXT], Format.Audio16Khz32KBitRateMonoMp3)
    assert (result.reason, result.error_code) == (Reason.Canceled, Code.BadRequest)
    assert "audio-16khz-32kbitrate-mono-mp3" in result.error_details


def test_word_boundaries_when_asked_for(service: SpeechService) -> None:
    """A word-boundary handler gets each word, its audio offset and where it is in the text."""
    _, log = synthesize(service, [TEXT], word_boundaries=True)
    tick = TICKS_PER_SECOND * 3 // 10
    assert log.named("synthesis_word_boundary") == [
        ("Hello", 0, 0, 5),
        ("world", tick, 6, 5),
        ("this", 2 * tick, 13, 4),
        ("is", 3 * tick, 18, 2),
        ("a", 4 * tick, 21, 1),
        ("test", 5 * tick, 23, 4),
    ]


def test_ssml_is_spoken_as_its_text(service: SpeechService) -> None:
    """speak_ssml_async: the markup is removed, the words are spoken (and recorded)."""
    ssml = (
        "<speak version='1.0' xmlns='http://www.w3.org/2001/10/synthesis' xml:lang='en-US'>"
        "<voice name='en-US-AvaMultilingualNeural'>Good <break time='100ms'/> morning"
        "</voice></speak>"
    )
    [result], _ = synthesize(service, [ssml], ssml=True)
    turn = service.connections[0].turns[0]
    assert (result.reason, turn.text, wav_params(result.audio)[3]) == (
        Reason.SynthesizingAudioCompleted,
        "Good morning",
        int(0.6 * 16_000),
    )


def test_invalid_ssml_is_a_bad_request(service: SpeechService) -> None:
    """SSML that is not well-formed XML is canceled with BadRequest."""
    [result], _ = synthesize(service, ["<speak>unclosed"], ssml=True)
    assert (result.reason, result.error_code) == (Reason.Canceled, Code.BadRequest)


# -- many requests -----------------------------------------------------------------------


def test_twenty_requests_on_one_synthesizer(service: SpeechService) -> None:
    """20 requests complete on one websocket, one synthesis turn each."""
    texts = [f"request number {index}" for index in range(20)]
    results, log = synthesize(service, texts)
    [connection] = service.connections
    assert [r.reason for r in results] == [Reason.SynthesizingAudioCompleted] * 20
    assert [(turn.mode, turn.text) for turn in connection.turns] == [
        ("synthesis", text) for text in texts
    ]
    assert len(log.named("synthesis_completed")) == 20, log.events


def test_synthesis_records_the_endpoint_and_redacts_the_key(service: SpeechService) -> None:
    """The synthesis endpoint is /cognitiveservices/websocket/v1; the key is never stored."""
    synthesize(service, [TEXT], subscription="secret-tts-key-123")
    connection = service.connections[0]
    assert (connection.path, connection.header("Ocp-Apim-Subscription-Key")) == (
        "/cognitiveservices/websocket/v1",
        REDACTED,
    )
    assert "secret-tts-key-123" not in repr(service.connections)


# -- faults and delays -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (HandshakeError(400), Code.BadRequest),
        (HandshakeError(401), Code.AuthenticationFailure),
        (HandshakeError(429), Code.TooManyRequests),
        (HandshakeError(503), Code.ServiceUnavailable),
        (CloseError(1011), Code.ServiceError),
        (CloseError(1007), Code.BadRequest),
        (StatusError("TooManyRequests"), Code.TooManyRequests),
        (StatusError("BadRequest"), Code.BadRequest),
        (StatusError("Error"), Code.ServiceError),
    ],
)
def test_faults_cancel_synthesis_with_their_code(
    service: SpeechService, fault: Any, code: Any
) -> None:
    """A fault cancels the request with the matching error code and no audio."""
    service.script = Script(fault=fault)
    [result], log = synthesize(service, [TEXT], properties=FAST_ERRORS)
    assert (result.reason, result.error_code, result.audio) == (Reason.Canceled, code, b"")
    assert log.named("synthesis_canceled") == [()]


def test_start_delay_delays_the_first_audio(service: SpeechService) -> None:
    """start_delay holds turn.start (and so the audio) back."""
    service.script = Script(start_delay=0.3)
    started = time.perf_counter()
    synthesize(service, ["one"])
    elapsed = time.perf_counter() - started
    assert elapsed >= 0.3, f"took {elapsed:.3f} s"


def test_message_delay_paces_every_message(service: SpeechService) -> None:
    """message_delay passes before each message after turn.start (here 2 chunks, SessionEnd
    and turn.end)."""
    service.script = Script(message_delay=0.06, synthesis=Synthesis(word_seconds=0.2))
    started = time.perf_counter()
    synthesize(service, ["one"])
    elapsed = time.perf_counter() - started
    assert elapsed >= 4 * 0.06, f"took {elapsed:.3f} s"


# -- leaks: native threads of synthesizers -----------------------------------------------


def speak_once(service: SpeechService, leak: bool) -> None:
    """One synthesizer, one request; ``leak`` keeps it in a reference cycle (its handler's
    default argument holds it), otherwise its handler is disconnected and it is dropped.
    Returns once the handler has run (it may run after ``get()`` returned)."""
    speaker = synthesizer(service)
    holder: List[Any] = [speaker]
    done = threading.Event()
    speaker.synthesis_completed.connect(lambda event, holder=holder: done.set())
    assert speaker.speak_text_async("hi").get().reason == Reason.SynthesizingAudioCompleted
    assert done.wait(10), "synthesis_completed never fired"
    if not leak:
        speaker.synthesis_completed.disconnect_all()
        holder.clear()
    del speaker, holder


def collected(condition: Callable[[], bool]) -> bool:
    """Collect garbage until ``condition`` holds (a cycle still on the stack of an SDK
    callback that is just returning survives one collection), at most 10 s."""
    return wait_until(lambda: gc.collect() >= 0 and condition())


def test_leaked_synthesizers_keep_their_native_threads(service: SpeechService, no_gc: None) -> None:
    """Five synthesizers left in reference cycles keep their native threads and websockets
    until a collection, while five disposed properly leave none behind."""
    speak_once(service, leak=False)  # the SDK's shared threads start once
    assert wait_until(lambda: service.active_connections == 0), service.connections
    baseline = native_threads()  # may still count threads that are ending
    for _ in range(5):
        speak_once(service, leak=False)
    fixed_settled = wait_until(
        lambda: native_threads() <= baseline and service.active_connections == 0, 30
    )
    fixed = (native_threads() - baseline, service.active_connections)
    before_leaks = native_threads()
    for _ in range(5):
        speak_once(service, leak=True)
    leaked = (native_threads() - before_leaks, service.active_connections)
    released = collected(lambda: native_threads() <= before_leaks)
    print(f"extra threads: fixed {fixed[0]}, leaked {leaked[0]} (per synthesizer {leaked[0] / 5})")
    assert (fixed_settled, fixed[1]) == (True, 0), fixed
    assert leaked[1] == 5, leaked
    assert leaked[0] >= 5, f"5 leaked synthesizers kept only {leaked[0]} extra threads"
    assert released, f"{native_threads() - before_leaks} threads left after collecting"


def test_handletrace_counts_synthesizer_handles(
    installed: None, service: SpeechService, no_gc: None
) -> None:
    """handletrace.stats() shows a disposed synthesizer released and a leaked one live."""

    def synthesizers() -> Any:
        stats = handletrace.stats().kinds.get("synthesizer")
        return (stats.created, stats.released, stats.live) if stats else (0, 0, 0)

    speak_once(service, leak=False)
    after_fixed = synthesizers()
    speak_once(service, leak=True)
    after_leak = synthesizers()
    collected(lambda: synthesizers()[2] == 0)
    after_collect = synthesizers()
    assert (after_fixed, after_leak, after_collect) == ((1, 1, 0), (2, 1, 1), (2, 2, 0))
