"""Specification of the teardown options: what the real SDK does when the service answers
its close or the end of its audio late, never, or closes the connection itself.

Only orders of events are asserted (the service's ``ConnectionRecord.timeline`` and the
test's own ``time.monotonic()`` share a clock), never how long something took; the
durations are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import azure.cognitiveservices.speech as speechsdk

from handletrace.testing import (
    ConnectionRecord,
    Script,
    ServerClose,
    SpeechService,
    Teardown,
    push_stream_audio_config,
)

from . import speech_fixtures
from .speech_fixtures import (
    FAST_ERRORS,
    EventLog,
    StreamLog,
    speech_config,
    synthesize,
    synthesizer,
    write_audio,
)

speech_service = speech_fixtures.speech_service
service = speech_fixtures.service

Reason = speechsdk.ResultReason
Code = speechsdk.CancellationErrorCode
STOP_AFTER_1_S = {"SPEECH-StopRecognitionTimeoutInSeconds": "1"}
NO_STOP_WAIT = {"SPEECH-StopRecognitionTimeoutInSeconds": "0"}  # after an error: no 10 s wait


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``condition`` every 10 ms until it holds or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def closed_record(service: SpeechService, index: int = 0) -> ConnectionRecord:
    """Connection ``index`` once the service saw it close."""
    assert wait_until(lambda: not service.connections[index].open), service.connections
    return service.connections[index]


def events(record: ConnectionRecord) -> List[str]:
    """The timeline's event names, in order."""
    return [name for name, _ in record.timeline]


def running_recognizer(
    service: SpeechService, properties: Dict[str, str] = speech_fixtures.NO_PROPERTIES
) -> Tuple[speechsdk.SpeechRecognizer, Any, StreamLog]:
    """A continuous recognizer whose push stream stays open, after its first phrase."""
    log = StreamLog()
    feed = push_stream_audio_config(b"")
    recognizer = speechsdk.SpeechRecognizer(
        speech_config(service, properties), audio_config=feed.config
    )
    log.connect(recognizer)
    recognizer.start_continuous_recognition_async().get()
    write_audio(feed.stream, 2.0)
    assert log.wait_count("recognized", 1), log.events
    return recognizer, feed, log


def release(holder: List[Any]) -> float:
    """Drop the SDK object that ``holder`` holds as its only reference; returns when the
    release returned (``time.monotonic()``) and prints how long it took.

    An SDK callback thread that has just run a handler may still hold the object for a
    moment (the last release would then happen there, not here): wait until ``holder`` is
    the only reference left.
    """
    alone = wait_until(lambda: sys.getrefcount(holder[0]) == 2)  # the holder, the argument
    assert alone, f"{sys.getrefcount(holder[0]) - 2} other references to {holder[0]!r}"
    started = time.monotonic()
    holder.clear()
    returned = time.monotonic()
    print(f"release took {returned - started:.3f} s")
    return returned


def drop_after_session(service: SpeechService) -> float:
    """A continuous session run to its end, then the recognizer dropped; returns when the
    release returned."""
    recognizer, feed, log = running_recognizer(service)
    feed.stream.close()
    assert log.stopped.wait(10), log.events
    recognizer.stop_continuous_recognition_async().get()
    log.disconnect(recognizer)
    holder: List[Any] = [recognizer]
    del recognizer, feed
    return release(holder)


# -- the close handshake -----------------------------------------------------------------
#
# Whether the release call itself waits (for the end of the turn, for the close answer)
# depends on which thread drops the SDK's last native reference: an SDK thread that has just
# dispatched an event or finished a request may still hold the object for a moment, and the
# teardown then runs there (SDK 1.53: 9 of 20 synthesizer releases right after get()
# returned at once; rarely a running recognizer's too). So these tests state what the SDK
# does on the wire and print how long the release took.


def test_the_sdk_waits_for_the_close_answer(service: SpeechService) -> None:
    """By default the service answers the SDK's close at once and the SDK closes TCP after."""
    drop_after_session(service)
    record = closed_record(service)
    assert (events(record)[-4:], record.close_code) == (
        ["close.received", "close.answered", "peer.eof", "closed"],
        1000,
    ), record.timeline


def test_the_sdk_waits_for_a_late_close_answer(service: SpeechService) -> None:
    """close_delay=0.3: the service answers 0.3 s late and the SDK still waits for it."""
    service.script = Script(phrases=service.script.phrases, teardown=Teardown(close_delay=0.3))
    drop_after_session(service)
    record = closed_record(service)
    received, answered = record.time_of("close.received"), record.time_of("close.answered")
    assert events(record)[-3:] == ["close.answered", "peer.eof", "closed"], record.timeline
    assert received is not None and answered is not None and answered - received >= 0.3


def test_the_sdk_gives_up_on_a_very_late_close_answer(service: SpeechService) -> None:
    """close_delay=2: the SDK drops its side of the connection before the service answers
    (SDK 1.53 waits about 1 s)."""
    service.script = Script(phrases=service.script.phrases, teardown=Teardown(close_delay=2.0))
    drop_after_session(service)
    record = closed_record(service)
    received, eof = record.time_of("close.received"), record.time_of("peer.eof")
    assert events(record)[-4:] == [
        "close.received",
        "peer.eof",
        "close.answered",
        "closed",
    ], record.timeline
    if received is not None and eof is not None:
        print(f"the SDK waited {eof - received:.3f} s for the answer")


def test_an_unanswered_close_ends_when_the_sdk_drops_the_connection(
    service: SpeechService,
) -> None:
    """answer_close=False: the close is never answered and the SDK drops the TCP connection
    itself (1006, no close frame from the service)."""
    service.script = Script(phrases=service.script.phrases, teardown=Teardown(answer_close=False))
    drop_after_session(service)
    record = closed_record(service)
    assert (events(record)[-3:], record.close_code) == (
        ["close.received", "peer.eof", "closed"],
        1006,
    ), record.timeline


def test_a_synthesizer_waits_for_a_late_close_answer(service: SpeechService) -> None:
    """A released synthesizer waits for the late close answer too."""
    service.script = Script(teardown=Teardown(close_delay=0.3))
    speaker = synthesizer(service)
    reason = speaker.speak_text_async("hi").get().reason
    holder: List[Any] = [speaker]
    del speaker
    release(holder)
    record = closed_record(service)
    received, answered = record.time_of("close.received"), record.time_of("close.answered")
    assert reason == Reason.SynthesizingAudioCompleted
    assert events(record)[-3:] == ["close.answered", "peer.eof", "closed"], record.timeline
    assert received is not None and answered is not None and answered - received >= 0.3


def test_stop_answers_a_held_close(service: SpeechService) -> None:
    """stop() lets a held close frame through, so the connection ends with a close answer."""
    with SpeechService(Script(teardown=Teardown(answer_close=False))) as own:
        speaker = synthesizer(own)
        reason = speaker.speak_text_async("hi").get().reason
        holder: List[Any] = [speaker]
        del speaker
        releasing = threading.Thread(target=release, args=(holder,))
        releasing.start()  # the SDK waits about 1 s for the answer to its close
        assert wait_until(lambda: own.connections[0].time_of("close.received") is not None), (
            own.connections
        )
        own.stop()
        releasing.join(10)
    record = own.connections[0]
    assert reason == Reason.SynthesizingAudioCompleted
    assert events(record)[events(record).index("close.received") :] == [
        "close.received",
        "server.close",
        "close.answered",
        "peer.eof",
        "closed",
    ], record.timeline


# -- the end of the audio ----------------------------------------------------------------


def stop_running(service: SpeechService, properties: Dict[str, str]) -> Tuple[float, EventLog]:
    """Stop a running continuous recognizer (stream still open), then drop it; returns when
    the stop returned, and the events."""
    recognizer, feed, log = running_recognizer(service, properties)
    started = time.monotonic()
    recognizer.stop_continuous_recognition_async().get()
    returned = time.monotonic()
    print(f"stop took {returned - started:.3f} s")
    log.stopped.wait(10)
    log.disconnect(recognizer)
    del recognizer, feed
    return returned, log


def test_stop_waits_for_the_answer_to_the_end_of_audio(service: SpeechService) -> None:
    """end_delay=0.3: stop_continuous_recognition() returns only after the service's late
    turn.end."""
    service.script = Script(phrases=service.script.phrases, teardown=Teardown(end_delay=0.3))
    returned, _ = stop_running(service, {})
    record = closed_record(service)
    audio_end, turn_end = record.time_of("audio.end"), record.time_of("turn.end")
    assert audio_end is not None and turn_end is not None, record.timeline
    assert (turn_end - audio_end >= 0.3, turn_end <= returned) == (True, True), (
        returned,
        record.timeline,
    )


def test_an_unanswered_end_of_audio_times_the_stop_out(service: SpeechService) -> None:
    """answer_end=False: the stop returns after the SDK's stop timeout with a ServiceTimeout
    cancellation, and no turn.end ever came."""
    service.script = Script(phrases=service.script.phrases, teardown=Teardown(answer_end=False))
    _, log = stop_running(service, STOP_AFTER_1_S)
    record = closed_record(service)
    assert "turn.end" not in events(record), record.timeline
    assert log.named("canceled") == [(speechsdk.CancellationReason.Error, Code.ServiceTimeout)]


def drop_running(service: SpeechService, properties: Dict[str, str]) -> None:
    """Drop a continuous recognizer that is still running (never stopped, stream open)."""
    recognizer, feed, log = running_recognizer(service, properties)
    log.disconnect(recognizer)
    holder: List[Any] = [recognizer]
    del recognizer, feed
    release(holder)


def test_dropping_a_running_recognizer_ends_its_audio_first(service: SpeechService) -> None:
    """Releasing a running recognizer ends its audio, waits for the turn's end, then closes."""
    drop_running(service, {})
    record = closed_record(service)
    assert events(record)[1:] == [
        "audio.end",
        "turn.end",
        "close.received",
        "close.answered",
        "peer.eof",
        "closed",
    ], record.timeline


def test_dropping_a_running_recognizer_waits_out_an_unanswered_end(
    service: SpeechService,
) -> None:
    """answer_end=False: the teardown of a dropped running recognizer waits for the stop
    timeout (no turn.end ever comes) before it closes the websocket."""
    service.script = Script(phrases=service.script.phrases, teardown=Teardown(answer_end=False))
    drop_running(service, STOP_AFTER_1_S)
    record = closed_record(service)
    assert events(record)[1:] == [
        "audio.end",
        "close.received",
        "close.answered",
        "peer.eof",
        "closed",
    ], record.timeline


# -- the service closes ------------------------------------------------------------------


def test_close_when_connected_cancels_with_the_code_after_the_sdk_retries(
    service: SpeechService,
) -> None:
    """ServerClose(at="connected", code=1011): the SDK reconnects a few times, then cancels
    with ServiceError; no connection got a turn."""
    service.script = Script(teardown=Teardown(server_close=ServerClose("connected", 1011)))
    log = speech_fixtures.run_continuous(service, properties=NO_STOP_WAIT)
    records = service.connections
    assert log.named("canceled")[0] == (speechsdk.CancellationReason.Error, Code.ServiceError)
    assert {(r.close_code, r.turns) for r in records} == {(1011, ())}, records
    print(f"the SDK connected {len(records)} times")


def test_close_after_the_first_phrase_makes_the_sdk_reconnect(service: SpeechService) -> None:
    """ServerClose(at="result"): the phrase arrives, the service closes (1000), and the SDK
    opens a new connection for the session."""
    service.script = Script.of("one", "two", teardown=Teardown(server_close=ServerClose("result")))
    recognizer, feed, log = running_recognizer(service)
    reconnected = wait_until(lambda: len(service.connections) >= 2)
    recognizer.stop_continuous_recognition_async().get()
    log.disconnect(recognizer)
    del recognizer, feed
    first = closed_record(service)
    assert (reconnected, log.named("recognized")[0][0], first.close_code) == (True, "one", 1000)
    assert events(first)[-4:] == [
        "server.close",
        "close.received",
        "peer.eof",
        "closed",
    ], first.timeline


def test_abort_after_turn_end_cancels_recognize_once_with_connection_failure(
    service: SpeechService,
) -> None:
    """ServerClose(at="turn.end", abort=True): recognize_once() has its result, then the SDK
    reports the dropped connection as a ConnectionFailure cancellation (after
    session_stopped)."""
    service.script = Script(
        phrases=service.script.phrases,
        teardown=Teardown(server_close=ServerClose("turn.end", abort=True)),
    )
    log = StreamLog()
    feed = push_stream_audio_config(speech_fixtures.ONE_SECOND)
    recognizer = speechsdk.SpeechRecognizer(speech_config(service), audio_config=feed.config)
    log.connect(recognizer)
    feed.feed_when_connected(recognizer)
    reason = recognizer.recognize_once().reason
    canceled = log.wait_count("canceled", 1)
    log.disconnect(recognizer)
    del recognizer, feed
    record = closed_record(service)
    assert (reason, record.close_code, canceled) == (Reason.RecognizedSpeech, 1006, True)
    assert log.named("canceled") == [(speechsdk.CancellationReason.Error, Code.ConnectionFailure)]
    assert log.names()[-2:] == ["session_stopped", "canceled"], log.events


def test_close_mid_synthesis_cancels_with_partial_audio(service: SpeechService) -> None:
    """ServerClose(at="result", code=1011) during synthesis: canceled with ServiceError."""
    service.script = Script(teardown=Teardown(server_close=ServerClose("result", 1011)))
    [result], _ = synthesize(service, ["one two three"], properties=FAST_ERRORS)
    assert (result.reason, result.error_code) == (Reason.Canceled, Code.ServiceError)


def test_server_close_waits_its_delay(service: SpeechService) -> None:
    """ServerClose(delay=0.3) closes 0.3 s after its moment (here: an idle synthesizer's
    connection, 0.3 s after it opened)."""
    service.script = Script(teardown=Teardown(server_close=ServerClose("connected", delay=0.3)))
    speaker = synthesizer(service)
    reason = speaker.speak_text_async("one").get().reason
    record = closed_record(service)
    del speaker
    opened, closing = record.time_of("opened"), record.time_of("server.close")
    assert reason == Reason.SynthesizingAudioCompleted
    assert opened is not None and closing is not None and closing - opened >= 0.3, record.timeline


def test_close_connections_closes_an_idle_synthesizer(service: SpeechService) -> None:
    """close_connections() closes what is open; the synthesizer reconnects for its next
    request."""
    speaker = synthesizer(service)
    first = speaker.speak_text_async("one").get().reason
    closed = service.close_connections()
    record = closed_record(service)
    second = speaker.speak_text_async("two").get().reason
    del speaker
    assert (first, closed, record.close_code, second) == (
        Reason.SynthesizingAudioCompleted,
        1,
        1000,
        Reason.SynthesizingAudioCompleted,
    )
    assert len(service.connections) == 2, service.connections


def test_teardown_comes_from_the_script_of_the_connection(service: SpeechService) -> None:
    """A connection keeps the teardown of the script in effect when it opened."""
    service.script = Script(teardown=Teardown(close_delay=0.3))
    speaker = synthesizer(service)
    speaker.speak_text_async("one").get()
    service.script = Script()
    holder: List[Any] = [speaker]
    del speaker
    release(holder)
    record = closed_record(service)
    received, answered = record.time_of("close.received"), record.time_of("close.answered")
    assert received is not None and answered is not None and answered - received >= 0.3, (
        record.timeline
    )
