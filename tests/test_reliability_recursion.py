"""Reliability: the ``_Handle`` hooks at the program's recursion limit (issue #18.8).

A Python hook is a frame the program does not have. At the recursion limit the SDK's
``_Handle.__init__`` called from it raised RecursionError: the program saw one more
RecursionError than without handletrace, the native handle made just before was never
released, the half-made ``_Handle``'s ``__del__`` printed "Exception ignored ... no
attribute '_Handle__test_fn'", and records were dropped uncounted. Now the program sees
what it sees without handletrace (the control: the same loop, not installed); a record
that cannot be made at that depth is counted as an instrumentation error.
"""

from __future__ import annotations

import gc
import sys
from typing import Any, Iterator, List, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace.analysis import read_native_counts

#: Depths tried below the limit: each PushAudioInputStream() meets the limit at one of them.
DEPTHS = 60


def native_total() -> int:
    counts = read_native_counts()
    if counts is None:
        pytest.skip("this SDK does not export its handle table (read_native_counts)")
    return counts.total


def depth() -> int:
    frame, count = sys._getframe(), 0
    while frame is not None:
        frame, count = frame.f_back, count + 1
    return count


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[str]]:
    """What would be printed as "Exception ignored in ..." (collected, not printed)."""
    seen: List[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: seen.append(f"{u.object!r}: {u.exc_type.__name__}")
    )
    yield seen


def streams_at_every_depth_near_the_limit() -> Tuple[List[Any], int, int]:
    """Make a push stream at each depth up to past the recursion limit (a limit set just
    above this frame). Returns the streams made, the RecursionErrors the program saw, and
    the SDK's live handles they hold."""
    kept: List[Any] = []
    errors = [0]

    def deep(n: int) -> None:
        if n:
            return deep(n - 1)
        try:
            kept.append(speechsdk.audio.PushAudioInputStream())
        except RecursionError:
            errors[0] += 1

    base = native_total()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth() + DEPTHS)
    try:
        for n in range(DEPTHS):
            try:
                deep(n)
            except RecursionError:
                errors[0] += 1
    finally:
        sys.setrecursionlimit(limit)
    gc.collect()
    return kept, errors[0], native_total() - base


def test_at_the_recursion_limit_the_program_sees_what_it_sees_without_handletrace(
    hook_kind: str, unraisable: List[str]
) -> None:
    """Push streams made at every depth up to the limit: the same streams made and the same
    RecursionErrors as uninstalled, the SDK's handles match the streams, nothing printed,
    and each stream is on record or counted as an instrumentation error."""
    control, control_errors, control_native = streams_at_every_depth_near_the_limit()
    assert control_native == len(control) > 0, (control_native, len(control))
    del control
    gc.collect()
    handletrace.install()
    errors_before = handletrace.stats().instrumentation_errors
    kept, program_errors, native = streams_at_every_depth_near_the_limit()
    stats = handletrace.stats()
    counted = stats.instrumentation_errors - errors_before
    seen = (len(kept), program_errors, native, stats.live, counted, unraisable)
    assert (len(kept), program_errors) == (DEPTHS - control_errors, control_errors), seen
    assert native == len(kept), seen
    assert unraisable == [], seen
    # Each stream has a _Handle (and its format one, released): on record or counted.
    assert stats.live + counted >= len(kept), seen
    base = native_total() - native
    del kept
    gc.collect()
    assert (handletrace.stats().live, native_total() - base) == (0, 0), handletrace.stats()
