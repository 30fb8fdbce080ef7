"""Releases and calls that block, made deterministically with the real SDK and the local
speech service (as in tests/test_blocking.py): the service never answers the end of a turn's
audio (``Teardown(answer_end=False)``) and the SDK's stop timeout is 1 s, so releasing or
stopping a running recognizer waits that second, every time.

Expose the fixture in a test module with ``held_service = blocking_scenarios.held_service``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterator, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace.testing import (
    Script,
    SpeechService,
    Teardown,
    push_stream_audio_config,
    silence_wav,
)

STOP_TIMEOUT = "1"  # seconds the SDK waits for the end of the turn (its default is 10)


@pytest.fixture(scope="module")
def held_service() -> Iterator[SpeechService]:
    """A service that never answers the end of a turn's audio."""
    with SpeechService(Script.of("hello", teardown=Teardown(answer_end=False))) as service:
        yield service


def running_recognizer(service: SpeechService) -> Tuple[Any, Any]:
    """A recognizer in continuous recognition whose audio has reached the service (which
    holds the end of the turn), and its feed: dropping or stopping it blocks ~1 s."""
    config = speechsdk.SpeechConfig(host=service.host)
    config.set_property_by_name("SPEECH-StopRecognitionTimeoutInSeconds", STOP_TIMEOUT)
    feed = push_stream_audio_config(silence_wav(0.5))
    recognizer = speechsdk.SpeechRecognizer(config, audio_config=feed.config)  # CREATE-LINE
    before = len(service.connections)
    recognizer.start_continuous_recognition_async().get()
    feed.feed()
    waiting = threading.Event()
    for _ in range(3000):  # up to 30 s
        connections = service.connections[before:]
        if connections and connections[-1].time_of("audio.end") is not None:
            break
        waiting.wait(0.01)
    else:
        raise AssertionError(f"the audio never ended at the service: {service.connections}")
    return recognizer, feed


#: A service whose answer to the SDK's close frame comes 0.5 s late: a recognizer's teardown
#: (dispose() included) waits for it.
SLOW_CLOSE = Script.of("hello", teardown=Teardown(close_delay=0.5))


def dispose_on_a_loop(service: SpeechService) -> None:
    """A recognizer that recognized once, then handletrace.dispose()d on an event loop: its
    teardown waits for the late close answer there (use with a SLOW_CLOSE service)."""
    config = speechsdk.SpeechConfig(host=service.host)
    feed = push_stream_audio_config(silence_wav(0.5))
    recognizer = speechsdk.SpeechRecognizer(config, audio_config=feed.config)
    feed.feed_when_connected(recognizer)
    assert recognizer.recognize_once_async().get().text == "hello"

    async def main(target: Any) -> None:
        handletrace.dispose(target)  # DISPOSE-LINE

    asyncio.run(main(recognizer))
    del recognizer, feed


def line_of(path: str, text: str) -> int:
    """The line of the file ``path`` holding ``text`` (once)."""
    with open(path, encoding="utf-8") as source:
        lines = [n for n, line in enumerate(source, 1) if text in line and "line_of(" not in line]
    assert len(lines) == 1, lines
    return lines[0]
