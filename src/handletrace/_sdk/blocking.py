"""Slow native releases and blocking SDK calls, described from what the registry kept of the
handle (its kind, creation stack and the SDK class that made it) and from the thread that ran
them, then recorded in ``tracker.blocking``.

Called only for releases and calls that took at least ``config.slow_release`` (the hooks time
every release; only the slow ones come here), so its cost is not on the per-handle path. It
runs on the thread that made the release or call, right after it returned: that thread's
stack still holds the line that dropped the last reference (or called ``dispose()``, or made
the call), and whether an asyncio loop runs on it can be asked directly.
"""

from __future__ import annotations

import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Dict, Optional, TypeVar

from .._core import stacks
from .._core.blocking import BlockingEvent, InFlight
from .._core.registry import (
    CAUSE_COLUMN,
    ENTRY_CODE,
    ENTRY_KIND,
    ENTRY_TRACEBACK,
    FIRST_CAUSE_COLUMN,
    FUTURE_ENTRY,
    HANDLE_ENTRY_LEN,
    RELEASE_CAUSES,
    RELEASING_CAUSE_COLUMN,
    RELEASING_STARTED,
    RELEASING_THREAD,
    RecordFields,
)
from .._core.stacks import EMPTY_TRACEBACK, Traceback
from .._core.state import Tracker
from .._core.threads import describe_thread, loop_running_here
from .owners import class_of_code

__all__ = ["in_flight", "record_call", "record_release", "timed_release"]

T = TypeVar("T")
# Running threads by ident (read without creating a _DummyThread for native SDK threads).
_active: Dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]
_FUTURE_OWNER = FUTURE_ENTRY.index("owner")
_FUTURE_TRACEBACK = FUTURE_ENTRY.index("traceback")
#: Frames kept of a release's or call's site (the user's line and its callers).
SITE_DEPTH = 16


def _cause(column: int) -> str:
    index = column - FIRST_CAUSE_COLUMN
    return RELEASE_CAUSES[index] if 0 <= index < len(RELEASE_CAUSES) else "del"


def _site(frame: Optional[FrameType]) -> Traceback:
    return stacks.capture(SITE_DEPTH, frame) if frame is not None else EMPTY_TRACEBACK


def record_release(
    tracker: Tracker,
    entry: RecordFields,
    duration: float,
    column: int,
    frame: Optional[FrameType],
    owner: str = "",
) -> None:
    """Record the release of the handle of ``entry``, which took ``duration`` seconds, with
    the cause of counters' ``column``; ``frame``: where it was made (``None``: unknown);
    ``owner``: the SDK class of the object released, when the caller knows it."""
    if len(entry) == HANDLE_ENTRY_LEN:
        created = entry[ENTRY_TRACEBACK]
        owner = owner or class_of_code(entry[ENTRY_CODE])
    else:  # a ResultFuture's async handle
        created = entry[_FUTURE_TRACEBACK]
        owner = owner or entry[_FUTURE_OWNER]
    thread = describe_thread(threading.get_ident(), event_loop=loop_running_here())
    tracker.blocking.add(
        BlockingEvent(
            what="release",
            name=entry[ENTRY_KIND],
            owner=owner,
            duration=duration,
            ended_at=time.time(),
            thread=thread,
            site=_site(frame),
            created=created,
            cause=_cause(column),
        )
    )


def timed_release(
    tracker: Tracker, seq: Optional[int], cause: str, release: Callable[[], T], owner: str = ""
) -> T:
    """``release()``, the native release of the record ``seq`` (``None``: not tracked), made
    with the record in flight (``releasing``, still live) and timed: the record is removed
    and counted with ``cause`` when it returns, and a slow one is recorded as blocking.
    (What the ``__del__`` hooks do for a ``_Handle``; this is for ``dispose()`` and direct
    calls of release functions.)"""
    registry = tracker.registry
    marked = False
    if seq is not None:
        ident = threading.get_ident()
        thread = _active.get(ident)
        started = time.monotonic()
        try:
            marked = registry.begin_release(seq, cause, thread or ident, started)
        except Exception as exc:
            registry.count_error(f"{cause} release", exc)
    try:
        return release()
    finally:
        if marked:
            try:
                duration = time.monotonic() - started
                entry = registry.end_release(seq)  # type: ignore[arg-type]
                if entry is not None:
                    listener = tracker.release_listener
                    if listener is not None:
                        listener(entry[ENTRY_KIND], duration)
                    if duration >= tracker.config.slow_release:
                        record_release(
                            tracker, entry, duration, CAUSE_COLUMN[cause], sys._getframe(), owner
                        )
            except Exception as exc:
                registry.count_error(f"{cause} release", exc)


def record_call(
    tracker: Tracker, name: str, owner: str, duration: float, frame: Optional[FrameType]
) -> None:
    """Record a synchronous SDK call ``name`` on an ``owner`` object that blocked the event
    loop of this thread for ``duration`` seconds; ``frame``: where it was called."""
    thread = describe_thread(threading.get_ident(), event_loop=True)
    tracker.blocking.add(
        BlockingEvent("call", name, owner, duration, time.time(), thread, _site(frame))
    )


def in_flight(tracker: Tracker) -> Dict[int, InFlight]:
    """The releases in flight now, with each releasing thread and its stack (read from the
    thread's running frames: the line that dropped the last reference, or called
    ``dispose()``)."""
    releasing = tracker.registry.releasing()
    if not releasing:
        return {}
    now = time.monotonic()
    frames = sys._current_frames()
    found: Dict[int, InFlight] = {}
    try:
        for seq, marked in releasing.items():
            value: Any = marked[RELEASING_THREAD]
            ident = value if isinstance(value, int) else (value.ident or 0)
            frame = frames.get(ident)
            found[seq] = InFlight(
                seq=seq,
                started_monotonic=marked[RELEASING_STARTED],
                elapsed=max(0.0, now - marked[RELEASING_STARTED]),
                thread=describe_thread(ident),
                site=_site(frame),
                cause=_cause(int(marked[RELEASING_CAUSE_COLUMN])),
            )
            del frame
    finally:
        frames.clear()  # frames hold every thread's locals: let go of them at once
    return found
