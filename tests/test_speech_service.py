"""Specification of handletrace.testing: the local speech service, driven by the real SDK."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import struct
import subprocess
import sys
import wave
from io import BytesIO
from typing import Any, List, Sequence, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest

from handletrace.testing import (
    DEFAULT_SCRIPT,
    REDACTED,
    CloseError,
    HandshakeError,
    Phrase,
    Script,
    SpeechService,
    StatusError,
    pcm_from_wav,
    push_stream_audio_config,
    silence_wav,
    tone_wav,
)

from . import speech_fixtures
from .speech_fixtures import (
    FAST_ERRORS,
    ONE_SECOND,
    recognize_once,
    run_continuous,
    speech_config,
    timed,
)

speech_service = speech_fixtures.speech_service
service = speech_fixtures.service

Reason = speechsdk.ResultReason
Code = speechsdk.CancellationErrorCode
SECOND = 10_000_000  # ticks

# -- lifecycle ---------------------------------------------------------------------------


def test_host_is_a_websocket_url_on_the_loopback_address(service: SpeechService) -> None:
    """``host`` is ``ws://127.0.0.1:PORT``, ready for ``SpeechConfig(host=...)``."""
    assert service.host == f"ws://127.0.0.1:{service.port}"


def test_start_twice_keeps_the_same_port() -> None:
    """A second ``start()`` is a no-op."""
    with SpeechService() as service:
        port = service.port
        service.start()
        assert service.port == port


def test_stop_is_idempotent() -> None:
    """``stop()`` may be called again, and before ``start()``."""
    service = SpeechService()
    service.stop()
    service.start()
    service.stop()
    service.stop()
    assert service.running is False


def test_port_raises_when_not_running() -> None:
    """Asking a stopped service for its port is an error, not a stale number."""
    with pytest.raises(RuntimeError, match="not running"):
        SpeechService().port  # noqa: B018


def test_stop_closes_open_websockets() -> None:
    """Stopping the service closes the websocket a live recognizer still holds."""
    with SpeechService() as service:
        feed = push_stream_audio_config(ONE_SECOND)
        recognizer = speechsdk.SpeechRecognizer(speech_config(service), audio_config=feed.config)
        feed.feed_when_connected(recognizer)
        recognizer.recognize_once()
        service.stop()
        assert (service.active_connections, service.connections[0].close_code) == (0, 1001)
        del recognizer, feed


def test_importing_the_package_starts_and_imports_nothing() -> None:
    """``import handletrace.testing`` neither imports the SDK or websockets nor starts a thread."""
    code = (
        "import sys, threading, handletrace.testing\n"
        "print(sorted(m for m in ('azure.cognitiveservices.speech', 'websockets') "
        "if m in sys.modules), threading.active_count())"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert output == "[] 1\n"


# -- recognize_once ----------------------------------------------------------------------


def test_recognize_once_returns_the_phrase_text(service: SpeechService) -> None:
    """The default script recognizes "hello world"."""
    result, _ = recognize_once(service)
    assert (result.reason, result.text) == (Reason.RecognizedSpeech, "hello world")


def test_phrase_without_timing_spans_the_audio(service: SpeechService) -> None:
    """Answered at the end of the audio, a single untimed phrase covers the audio received."""
    service.script = Script(phrases=DEFAULT_SCRIPT.phrases, streaming=False)
    result, _ = recognize_once(service, silence_wav(0.7))
    assert (result.offset, result.duration) == (0, 7 * SECOND // 10)


def test_recognize_once_fires_every_event_in_order(service: SpeechService) -> None:
    """Session, speech detection, hypothesis and result events arrive in protocol order."""
    _, log = recognize_once(service)
    assert log.names() == [
        "session_started",
        "speech_start_detected",
        "recognizing",
        "speech_end_detected",
        "recognized",
        "session_stopped",
    ]


def test_speech_detected_events_carry_the_phrase_bounds(service: SpeechService) -> None:
    """speech_start/end_detected report the phrase's offset and offset + duration."""
    service.script = Script(phrases=(Phrase("x", offset=1_000_000, duration=2_000_000),))
    _, log = recognize_once(service)
    assert (log.named("speech_start_detected"), log.named("speech_end_detected")) == (
        [(1_000_000,)],
        [(3_000_000,)],
    )


def test_explicit_offset_and_duration_reach_the_result(service: SpeechService) -> None:
    """A phrase's own offset and duration are the result's."""
    service.script = Script(phrases=(Phrase("x", offset=123, duration=456),))
    result, _ = recognize_once(service)
    assert (result.offset, result.duration) == (123, 456)


def test_hypotheses_give_recognizing_events(service: SpeechService) -> None:
    """Each hypothesis is one recognizing event; the k-th of n lasts k/(n+1) of the phrase."""
    service.script = Script(phrases=(Phrase("a b c", hypotheses=("a", "a b")),))
    _, log = recognize_once(service)
    assert log.named("recognizing") == [("a", 0, 3_333_333), ("a b", 0, 6_666_666)]


def test_recognize_once_gets_only_the_first_phrase(service: SpeechService) -> None:
    """An interactive turn answers one phrase, as the real service does."""
    service.script = Script.of("one", "two", streaming=False)
    _, log = recognize_once(service)
    assert log.named("recognized") == [("one", 0, SECOND // 2)]


def test_no_phrases_give_no_match(service: SpeechService) -> None:
    """An empty script answers InitialSilenceTimeout: the result is NoMatch."""
    service.script = Script()
    result, _ = recognize_once(service)
    assert (result.reason, result.text) == (Reason.NoMatch, "")


def test_session_is_fast(service: SpeechService) -> None:
    """A recognize_once() session, release included, never pays the SDK's 500 ms start stall:
    it is quicker than the same session held back 0.5 s by the service (a comparison, so a
    loaded machine slows both)."""
    elapsed, _ = timed(recognize_once, service)
    service.script = Script(phrases=DEFAULT_SCRIPT.phrases, start_delay=0.5)
    held_back, _ = timed(recognize_once, service)
    assert elapsed < held_back, f"{elapsed:.3f} s; held back 0.5 s: {held_back:.3f} s"


# -- continuous recognition --------------------------------------------------------------


def test_continuous_recognition_gets_all_phrases_in_order(service: SpeechService) -> None:
    """Every phrase of the script is one recognized event, in script order."""
    service.script = Script.of("one", "two", "three")
    log = run_continuous(service)
    assert [text for text, *_ in log.named("recognized")] == ["one", "two", "three"]


def test_untimed_phrases_split_the_audio_evenly(service: SpeechService) -> None:
    """Answered at the end of the audio, two untimed phrases over 1 s last 0.5 s each."""
    service.script = Script.of("one", "two", streaming=False)
    log = run_continuous(service)
    assert log.named("recognized") == [("one", 0, SECOND // 2), ("two", SECOND // 2, SECOND // 2)]


def test_continuous_session_ends_with_end_of_stream_then_session_stopped(
    service: SpeechService,
) -> None:
    """Closing the input stream ends a continuous session: canceled(EndOfStream), stopped."""
    log = run_continuous(service)
    assert log.events[-2:] == [
        ("canceled", speechsdk.CancellationReason.EndOfStream, Code.NoError),
        ("session_stopped",),
    ]


def test_continuous_session_needs_no_continuation_turn(service: SpeechService) -> None:
    """The service acknowledges all audio, so the SDK replays none in a second turn."""
    service.script = Script(phrases=(Phrase("short", offset=0, duration=1000),))
    run_continuous(service)
    turns = service.connections[0].turns
    assert [(turn.continuation, turn.audio_bytes) for turn in turns] == [(False, 32_000)]


def test_stopping_recognition_ends_the_audio_and_gets_the_phrases(
    service: SpeechService,
) -> None:
    """stop_continuous_recognition on an open stream still delivers the phrases."""
    service.script = Script.of("one", "two")
    log = run_continuous(service, close_stream=False)
    assert [text for text, *_ in log.named("recognized")] == ["one", "two"]


def test_continuous_mode_uses_the_conversation_path(service: SpeechService) -> None:
    """Continuous recognition connects to the conversation endpoint."""
    run_continuous(service)
    connection = service.connections[0]
    assert (connection.path, connection.turns[0].mode) == (
        "/speech/recognition/conversation/cognitiveservices/v1",
        "conversation",
    )


# -- ConversationTranscriber -------------------------------------------------------------


def test_transcriber_gets_speaker_ids(service: SpeechService) -> None:
    """Each transcribed event carries its phrase's speaker id."""
    service.script = Script(
        phrases=(Phrase("hi", speaker_id="Guest-1"), Phrase("hello", speaker_id="Guest-2")),
        streaming=False,
    )
    log = run_continuous(service, transcriber=True)
    assert log.named("transcribed") == [
        ("hi", 0, SECOND // 2, "Guest-1"),
        ("hello", SECOND // 2, SECOND // 2, "Guest-2"),
    ]


def test_transcribing_events_carry_speaker_ids(service: SpeechService) -> None:
    """Hypotheses of a transcriber phrase are transcribing events with the speaker id."""
    service.script = Script(phrases=(Phrase("hi there", speaker_id="Guest-1", hypotheses=("hi",)),))
    log = run_continuous(service, transcriber=True)
    assert log.named("transcribing") == [("hi", 0, SECOND // 2, "Guest-1")]


def test_transcriber_fires_every_event_in_order(service: SpeechService) -> None:
    """A transcriber session fires the same events as a recognizer, then EndOfStream."""
    log = run_continuous(service, transcriber=True)
    assert log.names() == [
        "session_started",
        "speech_start_detected",
        "transcribing",
        "speech_end_detected",
        "transcribed",
        "canceled",
        "session_stopped",
    ]


def test_transcriber_uses_the_universal_path(service: SpeechService) -> None:
    """ConversationTranscriber connects to /speech/universal/v2."""
    run_continuous(service, transcriber=True)
    assert service.connections[0].path == "/speech/universal/v2"


# -- error replies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, Code.BadRequest),
        (401, Code.AuthenticationFailure),
        (403, Code.AuthenticationFailure),
        (429, Code.TooManyRequests),
        (500, Code.ServiceError),
        (503, Code.ServiceUnavailable),
    ],
)
def test_handshake_error_cancels_with_its_code(
    service: SpeechService, status: int, code: Any
) -> None:
    """An HTTP status refusing the handshake cancels the session with the matching code."""
    service.script = Script(fault=HandshakeError(status))
    log = run_continuous(service, properties=FAST_ERRORS)
    assert log.named("canceled")[0] == (speechsdk.CancellationReason.Error, code)


def test_handshake_error_is_recorded_with_its_status(service: SpeechService) -> None:
    """A refused handshake is a connection record with the HTTP status and no turn."""
    service.script = Script(fault=HandshakeError(400))
    run_continuous(service, properties=FAST_ERRORS)
    connection = service.connections[0]
    assert (connection.status, connection.turns, connection.open) == (400, (), False)


@pytest.mark.parametrize(
    ("close_code", "code"),
    [(1007, Code.BadRequest), (1011, Code.ServiceError), (1008, Code.ConnectionFailure)],
)
def test_close_error_cancels_with_its_code(
    service: SpeechService, close_code: int, code: Any
) -> None:
    """Closing the websocket with a code cancels the session with the matching code."""
    service.script = Script(fault=CloseError(close_code))
    log = run_continuous(service, properties=FAST_ERRORS)
    assert log.named("canceled")[0] == (speechsdk.CancellationReason.Error, code)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("Error", Code.ServiceError),
        ("BadRequest", Code.BadRequest),
        ("TooManyRequests", Code.TooManyRequests),
        ("Forbidden", Code.Forbidden),
        ("ServiceUnavailable", Code.ServiceUnavailable),
    ],
)
def test_status_error_cancels_with_its_code(service: SpeechService, status: str, code: Any) -> None:
    """A failing RecognitionStatus cancels the session with the matching code."""
    service.script = Script(fault=StatusError(status))
    log = run_continuous(service, properties=FAST_ERRORS)
    assert log.named("canceled")[0] == (speechsdk.CancellationReason.Error, code)


def test_status_error_cancels_recognize_once(service: SpeechService) -> None:
    """recognize_once() returns a canceled result carrying the error code."""
    service.script = Script(fault=StatusError("TooManyRequests"))
    result, _ = recognize_once(service, properties=FAST_ERRORS)
    assert (result.reason, result.error_code) == (Reason.Canceled, Code.TooManyRequests)


def test_status_error_cancels_a_transcriber(service: SpeechService) -> None:
    """A transcriber session is canceled like a recognizer's."""
    service.script = Script(fault=StatusError("Error"))
    log = run_continuous(service, properties=FAST_ERRORS, transcriber=True)
    assert log.named("canceled")[0] == (speechsdk.CancellationReason.Error, Code.ServiceError)


def test_phrases_before_a_fault_are_recognized(service: SpeechService) -> None:
    """The fault replaces the end of the turn: earlier phrases are still delivered."""
    service.script = Script(phrases=(Phrase("before"),), fault=StatusError("Error"))
    log = run_continuous(service, properties=FAST_ERRORS)
    assert [entry[0] for entry in log.events if entry[0] in ("recognized", "canceled")] == [
        "recognized",
        "canceled",
    ]


def test_error_session_ends_with_session_stopped(service: SpeechService) -> None:
    """An error still ends the session with session_stopped (fast-error properties)."""
    service.script = Script(fault=StatusError("Error"))
    log = run_continuous(service, properties=FAST_ERRORS)
    assert log.names()[-1] == "session_stopped"


# -- delays ------------------------------------------------------------------------------


def test_start_delay_delays_the_session(service: SpeechService) -> None:
    """start_delay holds turn.start back, so the session lasts at least that long."""
    service.script = Script(phrases=DEFAULT_SCRIPT.phrases, start_delay=0.3)
    elapsed, _ = timed(recognize_once, service)
    assert elapsed >= 0.3


def test_message_delay_paces_every_message(service: SpeechService) -> None:
    """message_delay passes before each of the 5 answer messages of the default turn."""
    service.script = Script(phrases=DEFAULT_SCRIPT.phrases, message_delay=0.06)
    elapsed, _ = timed(recognize_once, service)
    assert elapsed >= 5 * 0.06


# -- records -----------------------------------------------------------------------------


def test_records_one_closed_connection_per_released_recognizer(service: SpeechService) -> None:
    """A released recognizer leaves one accepted connection, closed normally by the SDK."""
    recognize_once(service)
    assert service.wait_active_connections(0)
    [connection] = service.connections
    assert (connection.status, connection.open, connection.close_code) == (101, False, 1000)


def test_records_the_request_path_and_query(service: SpeechService) -> None:
    """recognize_once connects to the interactive endpoint with language=en-us."""
    recognize_once(service)
    connection = service.connections[0]
    assert (connection.path, connection.query) == (
        "/speech/recognition/interactive/cognitiveservices/v1",
        (("language", "en-us"),),
    )


def test_records_the_turn_and_its_audio(service: SpeechService) -> None:
    """The turn is interactive and received 1 s of 16 kHz 16-bit PCM (WAV header excluded)."""
    recognize_once(service)
    [turn] = service.connections[0].turns
    assert (turn.mode, turn.continuation, turn.audio_bytes, turn.audio_ended) == (
        "interactive",
        False,
        32_000,
        True,
    )


def test_records_the_sdk_headers(service: SpeechService) -> None:
    """Handshake headers are recorded, names lower-cased (here the USP subprotocol)."""
    recognize_once(service)
    assert service.connections[0].header("Sec-WebSocket-Protocol") == "USP"


def test_subscription_key_is_never_recorded(service: SpeechService) -> None:
    """The subscription key header is recorded as REDACTED and its value appears nowhere."""
    recognize_once(service, subscription="secret-subscription-key-123")
    connection = service.connections[0]
    assert connection.header("Ocp-Apim-Subscription-Key") == REDACTED
    assert "secret-subscription-key-123" not in repr(service.connections)


def test_authorization_header_and_secret_query_are_never_recorded(
    service: SpeechService,
) -> None:
    """Authorization headers and key/token query parameters are redacted."""
    _raw_session(
        service.host + "/speech/x?language=en&subscription-key=k1&access_token=t1",
        headers={"Authorization": "Bearer t2"},
    )
    connection = service.connections[0]
    assert (connection.header("authorization"), connection.query) == (
        REDACTED,
        (("language", "en"), ("subscription-key", REDACTED), ("access_token", REDACTED)),
    )


def test_active_connections_counts_unreleased_recognizers(service: SpeechService) -> None:
    """Each recognizer keeps its websocket open until released: the leak signal."""
    feeds = [push_stream_audio_config(ONE_SECOND) for _ in range(2)]
    recognizers = [
        speechsdk.SpeechRecognizer(speech_config(service), audio_config=feed.config)
        for feed in feeds
    ]
    for recognizer, feed in zip(recognizers, feeds):
        feed.feed_when_connected(recognizer)
        recognizer.recognize_once()
    open_while_alive = service.active_connections
    del recognizer, recognizers, feeds
    gc.collect()
    assert (open_while_alive, service.wait_active_connections(0)) == (2, True)


def test_reset_forgets_connections_and_restores_the_script(service: SpeechService) -> None:
    """reset() empties the records and brings back the constructor's script."""
    service.script = Script.of("changed")
    recognize_once(service)
    service.reset()
    assert (service.connections, service.script) == ((), DEFAULT_SCRIPT)


def test_script_setter_rejects_other_types(service: SpeechService) -> None:
    """Only a Script can be set."""
    with pytest.raises(TypeError, match="must be a Script"):
        service.script = ("hello",)  # type: ignore[assignment]


# -- protocol details (raw websocket client) ---------------------------------------------


def _raw_session(
    url: str, headers: Any = None, messages: Sequence[Any] = (), expect: int = 0
) -> List[Tuple[str, str, Any]]:
    """Send ``messages`` over a plain websocket; return ``expect`` replies as
    ``(path, request_id, body)``."""
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async def run() -> List[Tuple[str, str, Any]]:
        replies = []
        async with connect(
            url, additional_headers=headers, subprotocols=[Subprotocol("USP")]
        ) as socket:
            for message in messages:
                await socket.send(message)
            for _ in range(expect):
                head, _, body = str(await socket.recv()).partition("\r\n\r\n")
                fields = dict(line.split(": ", 1) for line in head.split("\r\n"))
                replies.append((fields["Path"], fields["X-RequestId"], json.loads(body)))
        return replies

    return asyncio.run(run())


def _audio(request_id: str, body: bytes) -> bytes:
    head = f"Path: audio\r\nX-RequestId: {request_id}\r\nX-StreamId: 2\r\n".encode()
    return struct.pack(">H", len(head)) + head + body


def test_continuation_turn_is_acknowledged_and_ended(service: SpeechService) -> None:
    """A continuation turn gets turn.start, EndOfDictation over the replayed audio, turn.end."""
    context = json.dumps({"continuation": {"audio": {"streams": {"1": {"offset": "5000"}}}}})
    replies = _raw_session(
        service.host + "/speech/recognition/conversation/cognitiveservices/v1",
        messages=[
            f"Path: speech.context\r\nX-RequestId: r2\r\n\r\n{context}",
            _audio("r2", silence_wav(0.1)),
            _audio("r2", b""),
        ],
        expect=3,
    )
    assert [(path, request_id) for path, request_id, _ in replies] == [
        ("turn.start", "r2"),
        ("speech.phrase", "r2"),
        ("turn.end", "r2"),
    ]
    assert replies[1][2] == {
        "RecognitionStatus": "EndOfDictation",
        "Offset": 0,
        "Duration": SECOND // 10,
    }


# -- script values -----------------------------------------------------------------------


def test_script_of_makes_untimed_phrases() -> None:
    """Script.of(texts) is a script of plain phrases."""
    assert Script.of("a", "b") == Script(phrases=(Phrase("a"), Phrase("b")))


def test_default_script_is_hello_world_with_one_hypothesis() -> None:
    """The default script: one phrase, "hello world", after the hypothesis "hello"."""
    expected = Script(phrases=(Phrase("hello world", hypotheses=("hello",)),))
    assert expected == DEFAULT_SCRIPT


def test_phrase_rejects_a_negative_offset() -> None:
    """Offsets are ticks since the start of the audio: never negative."""
    with pytest.raises(ValueError, match="offset must be >= 0"):
        Phrase("x", offset=-1)


def test_phrase_rejects_a_string_as_hypotheses() -> None:
    """A bare string is not a tuple of hypotheses (it would be split into letters)."""
    with pytest.raises(TypeError, match="hypotheses must be a tuple"):
        Phrase("x", hypotheses="x")  # type: ignore[arg-type]


def test_handshake_error_requires_an_http_error_status() -> None:
    """Only 4xx/5xx statuses refuse a handshake."""
    with pytest.raises(ValueError, match="HTTP error status"):
        HandshakeError(200)


def test_status_error_rejects_success() -> None:
    """Success is not an error status."""
    with pytest.raises(ValueError, match="failing RecognitionStatus"):
        StatusError("Success")


def test_script_rejects_a_negative_delay() -> None:
    """Delays are durations in seconds: never negative."""
    with pytest.raises(ValueError, match="start_delay must be >= 0"):
        Script(start_delay=-0.1)


# -- audio helpers -----------------------------------------------------------------------


def test_silence_wav_is_16khz_16bit_mono() -> None:
    """silence_wav(1.0) is a WAV file of 16 000 zero samples, 16-bit mono at 16 kHz."""
    with wave.open(BytesIO(silence_wav(1.0))) as wav:
        params = (wav.getframerate(), wav.getsampwidth(), wav.getnchannels(), wav.getnframes())
        frames = wav.readframes(wav.getnframes())
    assert (params, frames) == ((16_000, 2, 1, 16_000), bytes(32_000))


def test_tone_wav_peaks_at_its_amplitude() -> None:
    """A 1 kHz tone at half scale peaks at 16384 (16 samples a period hit the crest)."""
    pcm = pcm_from_wav(tone_wav(0.01, frequency=1000.0, amplitude=0.5))
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    assert (len(samples), max(samples), min(samples)) == (160, 16384, -16384)


def test_pcm_from_wav_strips_the_header() -> None:
    """The PCM of a WAV file is its data chunk."""
    assert pcm_from_wav(silence_wav(0.5)) == bytes(16_000)


def test_pcm_from_wav_rejects_other_formats() -> None:
    """An 8 kHz WAV file is refused rather than fed at the wrong speed."""
    buffer = BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(160))
    with pytest.raises(ValueError, match="expected 16 kHz 16-bit mono PCM"):
        pcm_from_wav(buffer.getvalue())


def test_feeding_twice_is_harmless() -> None:
    """feed() writes and closes once; a second call does nothing."""
    feed = push_stream_audio_config(silence_wav(0.1))
    feed.feed()
    feed.feed()
    assert feed.fed is True


# -- command line ------------------------------------------------------------------------


def test_cli_prints_its_host_and_serves_until_sigterm() -> None:
    """python -m handletrace.testing prints the host, answers its --phrase, exits 0 on TERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "handletrace.testing", "--phrase", "from the command line"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        host = process.stdout.readline().strip()
        cli_service = _ServiceAt(host)
        result, _ = recognize_once(cli_service)
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)
    assert (host.startswith("ws://127.0.0.1:"), result.text, returncode) == (
        True,
        "from the command line",
        0,
    )


class _ServiceAt:
    """Stands in for a SpeechService running in another process."""

    def __init__(self, host: str) -> None:
        self.host = host


def test_cli_rejects_an_out_of_range_port() -> None:
    """--port must be a TCP port number."""
    from handletrace.testing.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "70000"])
    assert exit_info.value.code == 2


def test_cli_reports_a_port_in_use(
    service: SpeechService, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port that is taken is an error message and exit status 1, not a traceback."""
    from handletrace.testing.__main__ import main

    status = main(["--port", str(service.port)])
    assert (status, "address already in use" in capsys.readouterr().err) == (1, True)
