"""The seed's transcription service, end to end on the real SDK and the local speech service."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import handletrace
from handletrace.cli.demo import load_example_service, measure
from handletrace.testing import Phrase, Script, SpeechService, silence_wav

REQUESTS = 5
example = load_example_service()
SCRIPT = Script(
    phrases=(Phrase("hello there", speaker_id="Guest-1"), Phrase("general", speaker_id="Guest-2"))
)
AUDIO = silence_wav(1.0)


@pytest.fixture(scope="module")
def speech_service() -> Iterator[SpeechService]:
    with SpeechService(SCRIPT) as service:
        yield service
        gc.collect()  # release every transcriber before the service stops


def settle(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Native threads and sockets start and end a little after the call that makes or
    releases their recognizer returns: wait (generously) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def live_recognizers() -> int:
    kinds = handletrace.stats().kinds
    return kinds["recognizer"].live if "recognizer" in kinds else 0


def test_service_returns_the_segments_with_speaker_ids(
    installed: None, speech_service: SpeechService
) -> None:
    """process_audio() returns each transcribed phrase with its speaker."""
    service = example.FixedTranscriptionService(speech_service.host)
    segments = service.process_audio(AUDIO)
    assert [(s.text, s.speaker_id) for s in segments] == [
        ("hello there", "Guest-1"),
        ("general", "Guest-2"),
    ]


def test_leaky_service_leaks_exactly_one_recognizer_per_request(
    installed: None, no_gc: None, speech_service: SpeechService
) -> None:
    """With the cyclic GC not running, every request leaves one native recognizer alive."""
    service = example.LeakyTranscriptionService(speech_service.host)
    counts = []
    for _ in range(REQUESTS):
        service.process_audio(AUDIO)
        counts.append(live_recognizers())
    assert counts == [1, 2, 3, 4, 5]
    gc.collect()
    assert live_recognizers() == 0
    assert handletrace.stats().released_by_cause["gc"] == 2 * REQUESTS  # recognizer + bag each


def test_fixed_service_leaks_nothing_and_releases_with_cause_forced(
    installed: None, no_gc: None, speech_service: SpeechService
) -> None:
    """handletrace.disposing() releases each request's recognizer when the request ends."""
    service = example.FixedTranscriptionService(speech_service.host)
    for _ in range(REQUESTS):
        service.process_audio(AUDIO)
        assert live_recognizers() == 0
    stats = handletrace.stats()
    assert stats.kinds["recognizer"].released == REQUESTS
    assert stats.released_by_cause["forced"] == 2 * REQUESTS
    assert stats.released_by_cause["gc"] == 0


def test_threads_and_sockets_return_to_baseline_after_the_fixed_run(
    installed: None, no_gc: None, speech_service: SpeechService
) -> None:
    """The fixed service keeps no native thread and no socket once its requests are done."""
    service = example.FixedTranscriptionService(speech_service.host)
    service.process_audio(AUDIO)  # warm-up: the SDK starts its shared threads once
    assert settle(lambda: speech_service.active_connections == 0)
    baseline = measure()
    for _ in range(REQUESTS):
        service.process_audio(AUDIO)
    now = [measure()]

    def at_baseline() -> bool:
        now[0] = measure()
        return (now[0].threads, now[0].sockets) == (baseline.threads, baseline.sockets)

    assert settle(at_baseline, timeout=30), f"{baseline} before; {now[0]} 30 s after"
    assert speech_service.active_connections == 0


def test_leaky_run_keeps_two_native_threads_per_request(
    installed: None, no_gc: None, speech_service: SpeechService
) -> None:
    """Each leaked transcriber holds two native threads until a collection.

    Sockets are not asserted: the SDK closes the idle websockets of a leaked recognizer at
    its own pace (from one per leak down to none, run to run).
    """
    service = example.LeakyTranscriptionService(speech_service.host)
    assert settle(lambda: speech_service.active_connections == 0)
    before = measure()
    for _ in range(REQUESTS):
        service.process_audio(AUDIO)
    after = [measure()]

    def two_per_request() -> bool:
        after[0] = measure()
        return after[0].threads - before.threads == 2 * REQUESTS

    assert settle(two_per_request, timeout=30), (
        f"{REQUESTS} leaked transcribers: {before.threads} native threads before, "
        f"{after[0].threads} after (expected +{2 * REQUESTS})"
    )
    gc.collect()
    assert settle(lambda: speech_service.active_connections == 0)


def test_leak_report_draws_the_cycle_at_the_creation_line(
    installed: None, no_gc: None, speech_service: SpeechService
) -> None:
    """The report explains the leak: created where, the closure cycle, and the callback's line."""
    service = example.LeakyTranscriptionService(speech_service.host)
    service.process_audio(AUDIO)
    report: Any = handletrace.build_report(handletrace.snapshot().filter(kinds=["recognizer"]))
    source = Path(example.__file__).read_text().splitlines()
    creation_line = 1 + next(
        i for i, line in enumerate(source) if "transcriber = speechsdk.transcription" in line
    )
    (group,) = report.groups
    assert (group.site.filename, group.site.lineno) == (example.__file__, creation_line)
    assert group.cycle.text == (
        "ConversationTranscriber -> EventSignal (transcribed) -> list -> function on_transcribed "
        "(closure cell 'transcriber') -> ConversationTranscriber"
    )
    callback_line = 1 + next(i for i, line in enumerate(source) if "def on_transcribed(" in line)
    assert [(f.pattern, f.filename, f.lineno) for f in group.findings] == [
        ("callback-captures-owner", example.__file__, callback_line)
    ]
    gc.collect()
