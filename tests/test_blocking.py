"""Releases that block, against the real SDK and the local speech service: a native release
in flight is ``releasing`` (still live) for as long as it blocks, every release is timed, a
slow one is recorded with its line, thread and cause, and a synchronous SDK call that holds
an event loop is recorded with its call site (C and Python hooks alike).

The local service never answers the end of the audio (``Teardown(answer_end=False)``), and
the SDK's stop timeout is 1 s: releasing (or stopping) a running recognizer then waits that
second for the end of the turn, every time.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace.analysis import cross_check, read_native_counts
from handletrace.testing import (
    SpeechService,
)

from . import blocking_scenarios
from .blocking_scenarios import running_recognizer

held_service = blocking_scenarios.held_service


#: Where blocking_scenarios.dispose_on_a_loop() calls dispose().
DISPOSE_LINE = blocking_scenarios.line_of(blocking_scenarios.__file__, "# DISPOSE-LINE")


def line_of(text: str) -> int:
    """The line of this file holding ``text`` (once)."""
    return blocking_scenarios.line_of(__file__, text)


def test_a_blocked_release_is_releasing_while_it_blocks_then_recorded(
    hook_kind: str, held_service: SpeechService
) -> None:
    """While the last reference's release blocks, another thread sees the recognizer
    'releasing' (live, counted, on MainThread, at the del line); afterwards it is released
    and recorded as a slow release at that line."""
    handletrace.install()
    recognizer, feed = running_recognizer(held_service)
    seen: List[Any] = []
    started = threading.Event()

    def watch() -> None:
        started.wait(30)
        # The release started just before the del line ran; it blocks for a second.
        for _ in range(200):
            snapshot = handletrace.snapshot()
            if snapshot.releasing:
                # The counts first, and a diagnosis of the recognizers only: the release
                # blocks for a second, which a whole-heap diagnosis on a loaded machine can
                # outlast.
                stats, native = handletrace.stats(), read_native_counts()
                wanted = snapshot.filter(kinds=["recognizer"])
                diagnosis = handletrace.diagnose(wanted, paths=False, native=False)
                seen.append((snapshot, diagnosis, stats, native))
                return
            threading.Event().wait(0.005)

    # Every record described now: a snapshot then makes no heap pass for them, so the
    # watcher's snapshot is quick enough to be taken, diagnosed and counted within the
    # second the release blocks, even on a loaded machine.
    handletrace.snapshot()
    watcher = threading.Thread(target=watch)
    watcher.start()
    started.set()
    del recognizer  # RELEASE-LINE
    watcher.join(60)
    assert seen, "no snapshot saw the release in flight"
    snapshot, diagnosis, stats, native = seen[0]
    (flight,) = [f for f in snapshot.releasing.values()]
    record = next(r for r in snapshot.records if r.seq == flight.seq)
    assert record.kind == "recognizer", record
    assert diagnosis.get(flight.seq).state == "releasing", diagnosis.get(flight.seq)
    assert stats.kinds["recognizer"].live == 1, stats.kinds["recognizer"]
    assert (flight.thread.name, flight.cause) == ("MainThread", "del"), flight
    assert flight.site.origin is not None, flight
    assert (flight.site.origin.filename, flight.site.origin.lineno) == (
        __file__,
        line_of("# RELEASE-LINE"),
    ), flight.site
    # The SDK's own handle table agrees: the recognizer in flight is a tracked one.
    if native is not None:
        tracked = {kind: s.live for kind, s in stats.kinds.items() if s.live}
        row = next(r for r in cross_check(tracked, native).rows if "recognizer" in r.kinds)
        assert not row.unexplained, row
    assert handletrace.stats().kinds["recognizer"].live == 0
    sites = [s for s in handletrace.blocking().sites if s.what == "release"]
    recognizer_sites = [s for s in sites if s.name == "recognizer"]
    assert len(recognizer_sites) == 1, sites
    (site,) = recognizer_sites
    assert site.site is not None and site.site.lineno == line_of("# RELEASE-LINE"), site
    assert site.worst >= 0.5 and site.last.cause == "del", site
    assert site.last.thread.name == "MainThread" and not site.last.thread.event_loop, site
    del feed


def test_dispose_of_a_running_recognizer_on_a_loop_is_a_forced_release_on_the_loop(
    hook_kind: str,
) -> None:
    """dispose() called on an event loop: its slow release is recorded, cause forced, at the
    dispose() line, on a thread running an event loop."""
    with SpeechService(blocking_scenarios.SLOW_CLOSE) as service:
        handletrace.install()
        blocking_scenarios.dispose_on_a_loop(service)
    sites = [s for s in handletrace.blocking().sites if s.what == "release"]
    assert sites, handletrace.blocking()
    site = sites[0]
    assert site.last.cause == "forced" and "SpeechRecognizer" in site.owner, site
    assert site.site is not None and site.site.lineno == DISPOSE_LINE, site
    assert site.last.thread.event_loop, site.last.thread


def test_a_synchronous_stop_on_an_event_loop_is_a_blocking_call(
    held_service: SpeechService,
) -> None:
    """stop_continuous_recognition() on a loop thread: recorded with its name and line; the
    same call off the loop is not recorded (only loops are blocked by it)."""
    handletrace.install()
    recognizer, feed = running_recognizer(held_service)

    async def main() -> None:
        recognizer.stop_continuous_recognition()  # STOP-LINE

    asyncio.run(main())
    other, other_feed = running_recognizer(held_service)
    other.stop_continuous_recognition()  # off the loop: not a blocking call
    calls = [s for s in handletrace.blocking().sites if s.what == "call"]
    assert [(s.name, s.owner, s.count) for s in calls] == [
        ("SpeechRecognizer.stop_continuous_recognition()", "SpeechRecognizer", 1)
    ], calls
    (call,) = calls
    assert call.site is not None and call.site.lineno == line_of("# STOP-LINE"), call
    assert call.worst >= 0.5 and call.on_event_loop == 1, call
    handletrace.dispose(recognizer)
    handletrace.dispose(other)
    del feed, other_feed


def test_every_release_is_timed_and_the_threshold_decides_what_is_kept() -> None:
    """The release listener hears every timed release; with slow_release=60 nothing is kept."""
    handletrace.install(slow_release=60)
    heard: List[Tuple[str, float]] = []
    handletrace._core.state.TRACKER.release_listener = lambda kind, s: heard.append((kind, s))
    try:
        config = speechsdk.SpeechConfig(subscription="not-a-key", region="westus")
        del config
    finally:
        handletrace._core.state.TRACKER.release_listener = None
    assert sorted(kind for kind, _ in heard) == ["property_bag", "speech_config"], heard
    assert all(seconds >= 0 for _, seconds in heard), heard
    assert handletrace.blocking().sites == ()
    assert handletrace.blocking().threshold == 60.0


@pytest.mark.parametrize("bad", [-1, "0.1", float("nan"), 3601, True])
def test_a_bad_threshold_is_refused(bad: Any) -> None:
    """slow_release must be a number of seconds from 0 to 3600."""
    with pytest.raises(ValueError, match="slow_release"):
        handletrace.install(slow_release=bad)
    assert not handletrace.is_installed()


def test_blocking_is_empty_for_a_program_that_blocks_nothing() -> None:
    """No release in flight and nothing recorded: clean."""
    handletrace.install()
    config = speechsdk.SpeechConfig(subscription="not-a-key", region="westus")
    del config
    result = handletrace.blocking()
    assert result.clean and result.on_event_loop() == 0.0, result
