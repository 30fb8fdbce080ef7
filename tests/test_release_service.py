"""dispose() and release_all() on running sessions, against the local speech service.

The SDK talks to ``handletrace.testing.SpeechService`` on 127.0.0.1: real websocket
sessions, no Azure, no internet.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Iterator, List, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.cognitiveservices.speech import transcription

import handletrace
from handletrace import DisposeResult
from handletrace.errors import DisposedError

testing = pytest.importorskip("handletrace.testing")
pytest.importorskip("websockets")

pytestmark = pytest.mark.slow

FULL_RELEASE = DisposeResult(
    target="ConversationTranscriber",
    disconnected=("session_started", "transcribing", "transcribed"),  # connection order
    stopped=("stop_transcribing_async",),
    released=("recognizer", "property_bag"),
)


@pytest.fixture(scope="module")
def service() -> Iterator[Any]:
    script = testing.Script(
        phrases=(testing.Phrase("hello world", hypotheses=("hello",)),),
    )
    with testing.SpeechService(script) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_transcriber_left_behind(installed: None) -> Iterator[None]:
    """Release whatever a failed test leaves behind: a running transcriber in a callback
    cycle, alive at interpreter exit with the service gone, can abort the process (SDK 1.53:
    "FATAL: exception not rethrown")."""
    yield
    handletrace.release_all()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def live(kind: str) -> int:
    stats = handletrace.stats().kinds.get(kind)
    return stats.live if stats is not None else 0


def running_transcriber(
    service: Any, events: List[Any]
) -> Tuple[transcription.ConversationTranscriber, Any]:
    """A transcriber in a running session (its audio stream still open), whose callbacks
    capture it (the seed's cycle)."""
    push = testing.push_stream_audio_config(testing.silence_wav(0.5))
    config = speechsdk.SpeechConfig(host=service.host, subscription="dummy")
    transcriber = transcription.ConversationTranscriber(config, audio_config=push.config)
    started = threading.Event()

    def on_started(evt: Any) -> None:
        events.append((transcriber, evt))
        started.set()

    transcriber.session_started.connect(on_started)
    transcriber.transcribing.connect(lambda evt: events.append((transcriber, evt)))
    transcriber.transcribed.connect(lambda evt: events.append((transcriber, evt)))
    transcriber.start_transcribing_async().get()
    assert started.wait(10), "the session never started"
    return transcriber, push


def test_dispose_during_a_running_transcription_stops_and_releases_everything(
    installed: None, service: Any
) -> None:
    """100 times: a session mid-stream, or with results arriving while dispose() runs."""
    for repetition in range(100):
        events: List[Any] = []
        transcriber, push = running_transcriber(service, events)
        if repetition % 2:
            push.feed()  # end the audio: hypotheses and phrases race with dispose()
        else:
            push.stream.write(b"\0" * 3200)  # mid-stream: the session waits for more audio
        result = handletrace.dispose(transcriber)
        assert result == FULL_RELEASE, f"repetition {repetition}"
        del transcriber, events
    assert live("recognizer") == 0
    assert wait_until(lambda: service.active_connections == 0)


def test_dispose_inside_an_event_handler_is_deferred_and_completes(
    installed: None, service: Any
) -> None:
    """On the SDK's callback thread the release would wait for the handler itself: dispose()
    disconnects at once and finishes the teardown in a background thread."""
    results: List[DisposeResult] = []
    events: List[Any] = []
    transcriber, push = running_transcriber(service, events)

    def dispose_from_handler(evt: Any) -> None:
        if not results:
            results.append(handletrace.dispose(transcriber))

    transcriber.transcribing.connect(dispose_from_handler)
    push.feed()
    assert wait_until(lambda: bool(results))
    assert results[0].deferred is True
    assert results[0].released == ()
    assert wait_until(lambda: live("recognizer") == 0)
    assert wait_until(lambda: service.active_connections == 0)


def test_an_object_disposed_inside_an_event_handler_names_the_handler_line(
    installed: None, service: Any
) -> None:
    """After the deferred teardown, using the transcriber raises DisposedError with the line
    of the handler that disposed it."""
    lines: List[int] = []
    events: List[Any] = []
    transcriber, push = running_transcriber(service, events)

    def dispose_from_handler(evt: Any) -> None:
        if not lines:
            lines.append(sys._getframe().f_lineno + 1)
            handletrace.dispose(transcriber)

    transcriber.transcribing.connect(dispose_from_handler)
    push.feed()
    assert wait_until(lambda: bool(lines) and live("recognizer") == 0)
    with pytest.raises(DisposedError) as info:
        transcriber.start_transcribing_async()
    assert str(info.value) == (
        f"ConversationTranscriber was disposed by handletrace.dispose() at {__file__}:"
        f"{lines[0]}; it cannot be used any more"
    )
    assert wait_until(lambda: service.active_connections == 0)


def test_dispose_does_not_wait_for_final_results_of_a_slow_service(installed: None) -> None:
    """The audio has ended and the service is slow to answer: stopping would wait 10 s for
    its final results, and the native release as long again (measured without the stop
    timeout property: 3 s timed-out stop + 10 s release). dispose() tells the SDK not to
    wait: nobody is connected to receive them any more."""
    slow = testing.Script(phrases=(testing.Phrase("hello world"),), message_delay=30.0)
    with testing.SpeechService(slow) as service:
        transcriber, push = running_transcriber(service, [])
        push.feed()
        assert wait_until(
            lambda: any(t.audio_ended for c in service.connections for t in c.turns)
        ), "the service never saw the end of the audio"
        result = handletrace.dispose(transcriber, stop_timeout=3.0)
        assert result.stop_timed_out is False
        assert result.stopped == ("stop_transcribing_async",)
        assert result.released == ("recognizer", "property_bag")


def test_release_all_stops_and_releases_running_leaked_transcribers(
    installed: None, no_gc: None, service: Any
) -> None:
    """Five running transcribers in callback cycles, dropped by the program: release_all()
    stops their sessions and releases them, no garbage collection needed."""
    for _ in range(5):
        transcriber, push = running_transcriber(service, [])
        push.stream.write(b"\0" * 3200)
        del transcriber, push
    assert live("recognizer") == 5
    result = handletrace.release_all(kinds="recognizer")
    assert result.released_by_kind == {"recognizer": 5, "property_bag": 5}
    assert all(r.stopped == ("stop_transcribing_async",) for r in result.results)
    assert live("recognizer") == 0
    assert wait_until(lambda: service.active_connections == 0)
