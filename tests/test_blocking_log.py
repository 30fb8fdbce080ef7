"""The record of blocking releases and calls: per-site totals, bounded however long a
service runs."""

from __future__ import annotations

import sys
import threading

from handletrace._core.blocking import BlockingEvent, BlockingLog
from handletrace._core.stacks import EMPTY_TRACEBACK, Traceback, capture
from handletrace._core.threads import describe_thread, loop_in_frames, loop_running_here


def _site(depth: int = 1) -> Traceback:
    return capture(8, sys._getframe(depth))


def _event(duration: float, site: Traceback, *, loop: bool = False) -> BlockingEvent:
    thread = describe_thread(threading.get_ident(), event_loop=loop)
    return BlockingEvent("release", "recognizer", "SpeechRecognizer", duration, 0.0, thread, site)


def test_events_of_one_site_add_up() -> None:
    """Count, total, worst and how many ran on an event loop, per site; longest total first."""
    log = BlockingLog()
    first = _site()
    second = _site()  # another line: another site
    for duration, loop in ((0.2, True), (0.5, False), (0.1, True)):
        log.add(_event(duration, first, loop=loop))
    log.add(_event(2.0, second))
    sites = log.sites()
    assert [(s.count, round(s.total, 3), s.worst, s.on_event_loop) for s in sites] == [
        (1, 2.0, 2.0, 0),
        (3, 0.8, 0.5, 2),
    ], sites
    assert sites[1].site == first.origin and sites[1].last.duration == 0.1
    assert [e.duration for e in log.events()] == [0.2, 0.5, 0.1, 2.0]


def test_the_log_is_bounded() -> None:
    """Past the limits, the oldest events go and new sites are counted in one "other" row."""
    log = BlockingLog(recent=3, max_sites=2)
    for lineno in range(5):
        code = compile("\n" * lineno + "f()", f"service{lineno}.py", "exec")
        log.add(_event(1.0, Traceback((code,), (0,))))
    assert len(log.events()) == 3
    sites = log.sites()
    assert [(s.other, s.count) for s in sites] == [(False, 1), (False, 1), (True, 3)], sites
    assert sites[-1].site is None
    log.clear()
    assert (log.sites(), log.events()) == ((), ())


def test_threads_are_described_without_side_effects() -> None:
    """This thread: Python's, no loop; a loop's thread seen from another thread: a loop."""
    import asyncio

    here = describe_thread(threading.get_ident())
    assert (here.sdk_thread, here.event_loop) == (False, False), here
    assert not loop_running_here()
    seen = []

    async def main() -> None:
        assert loop_running_here()
        ident = threading.get_ident()
        probe = threading.Thread(target=lambda: seen.append(describe_thread(ident)))
        probe.start()
        probe.join(30)  # blocks the loop: its frames are on the stack meanwhile

    asyncio.run(main())
    assert [(info.event_loop, info.sdk_thread) for info in seen] == [(True, False)], seen
    assert not loop_in_frames(None)
    assert str(seen[0]).endswith("(event loop)"), seen
    assert EMPTY_TRACEBACK.origin is None
