"""Reliability: 1,000 transcription sessions with the seed's leak, each ended by ``dispose()``.

Every session makes a ConversationTranscriber whose callback closure captures it (the
seed's reference cycle), transcribes one second of audio against the local speech service,
and is ended with ``handletrace.dispose(transcriber)`` (four sessions at a time). Every 100
sessions the test samples handletrace's own Python memory (tracemalloc, handletrace's
modules only), the process RSS, the live records and the SDK's native handle table; it
prints them and asserts that all stay flat within generous bounds.
"""

from __future__ import annotations

import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Tuple

import azure.cognitiveservices.speech as speechsdk
import psutil
import pytest

import handletrace
from handletrace.testing import push_stream_audio_config

from . import speech_fixtures

speech_service = speech_fixtures.speech_service
service = speech_fixtures.service

SESSIONS = 1000
EVERY = 100
PARALLEL = 4  # sessions at a time (each mostly waits on the service)
HANDLETRACE_GROWTH_LIMIT = 256 * 1024  # bytes, from session 100 to the last
RSS_GROWTH_LIMIT = 64 * 1024 * 1024


def leaky_session(service: Any) -> Tuple[int, Any]:
    """One session in the seed's style; returns (segments received, dispose result)."""
    segments: List[Any] = []
    stopped = threading.Event()
    feed = push_stream_audio_config(speech_fixtures.ONE_SECOND)
    transcriber = speechsdk.transcription.ConversationTranscriber(
        speech_fixtures.speech_config(service), audio_config=feed.config
    )

    def on_transcribed(evt: Any) -> None:
        segments.append((transcriber, evt.result.text))  # captures its own transcriber

    transcriber.transcribed.connect(on_transcribed)
    transcriber.session_stopped.connect(lambda evt: stopped.set())
    transcriber.start_transcribing_async().get()
    feed.feed()
    stopped.wait(speech_fixtures.SESSION_TIMEOUT)
    transcriber.stop_transcribing_async().get()
    result = handletrace.dispose(transcriber)
    return len(segments), result


def handletrace_bytes() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(True, "*/handletrace/*"),
            tracemalloc.Filter(False, "*/handletrace/testing/*"),
        ]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


def native_total() -> int:
    counts = handletrace.analysis.read_native_counts()
    return -1 if counts is None else counts.total


@pytest.mark.slow
def test_1000_disposed_sessions_keep_memory_and_handles_flat(installed: None, service: Any) -> None:
    """handletrace's memory, RSS, live records and native handles stay flat over 1,000."""
    process = psutil.Process()
    native_before = native_total()
    rows = []
    tracemalloc.start()
    try:
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            for index in range(EVERY, SESSIONS + 1, EVERY):
                outcomes = list(pool.map(lambda _: leaky_session(service), range(EVERY)))
                assert {(n, r.released, r.errors) for n, r in outcomes} == {
                    (1, ("recognizer", "property_bag"), ())
                }
                service.reset()  # the service keeps a record per connection; not ours
                stats = handletrace.stats()
                rows.append(
                    (index, handletrace_bytes(), process.memory_info().rss, stats.live,
                     native_total(), stats.created)
                )  # fmt: skip
    finally:
        tracemalloc.stop()
    print("\nsessions  handletrace bytes  RSS MB  live records  native handles  created")
    for index, own, rss, live, native, created in rows:
        print(f"{index:8}  {own:17,}  {rss / 2**20:6.1f}  {live:12}  {native:14}  {created:7}")
    first, last = rows[0], rows[-1]
    print(
        f"growth from session {first[0]} to {last[0]}: handletrace {last[1] - first[1]:+,} "
        f"bytes, RSS {(last[2] - first[2]) / 2**20:+.1f} MB"
    )
    assert [row[3] for row in rows] == [0] * len(rows)  # no live record after dispose()
    assert [row[4] for row in rows] == [native_before] * len(rows)  # no native handle kept
    assert last[5] >= SESSIONS * 10  # every session was tracked
    assert last[1] - first[1] < HANDLETRACE_GROWTH_LIMIT
    assert last[2] - first[2] < RSS_GROWTH_LIMIT
