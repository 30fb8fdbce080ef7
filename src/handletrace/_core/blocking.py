"""Releases and SDK calls that block: what one was (:class:`BlockingEvent`), where they came
from (:class:`BlockingSite`), and the bounded record of them (:class:`BlockingLog`).

A native release (``_Handle.__del__``, a release function called directly, ``dispose()``)
or a synchronous SDK call made on an event-loop thread that takes at least the threshold
(``Config.slow_release``, 100 ms by default, asyncio's slow-callback default) is recorded
here: the most recent ones as they were, and every one in the counts, total and worst
duration of its site. The log stays small however long a service runs: ``RECENT`` events,
at most ``MAX_SITES`` sites (later sites are counted together in one "other sites" row).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Deque, Dict, List, Literal, Optional, Tuple

from .compat import DATACLASS_SLOTS
from .stacks import EMPTY_TRACEBACK, Frame, Traceback
from .threads import ThreadInfo

__all__ = [
    "Blocking",
    "InFlight",
    "BlockingEvent",
    "BlockingLog",
    "BlockingSite",
    "MAX_SITES",
    "RECENT",
    "What",
]

#: Events kept as they were (the most recent).
RECENT = 64
#: Sites counted one by one; events of later sites are counted in one "other sites" row.
MAX_SITES = 256

#: ``release``: a native handle's release; ``call``: a synchronous SDK call.
What = Literal["release", "call"]


@dataclass(frozen=True, **DATACLASS_SLOTS)
class InFlight:
    """A native release that has started and not returned (the handle is ``releasing``:
    still live), as seen when a snapshot was taken."""

    seq: int
    started_monotonic: float
    #: Seconds it had been releasing when the snapshot was taken.
    elapsed: float
    thread: ThreadInfo
    #: Where the release is being made (the releasing thread's stack, most recent call
    #: last): the line that dropped the last reference, or called ``dispose()``.
    site: Traceback = EMPTY_TRACEBACK
    #: ``del``, ``gc`` (the cyclic collector), ``forced`` (``dispose()``) or ``direct``.
    cause: str = "del"


@dataclass(frozen=True, **DATACLASS_SLOTS)
class BlockingEvent:
    """One release or call that took at least the threshold."""

    what: What
    #: The handle kind released (``recognizer``), or the call (``Recognizer.recognize_once``).
    name: str
    #: The class of the SDK object released or called (``ConversationTranscriber``).
    owner: str
    duration: float  #: seconds
    ended_at: float  #: wall-clock time it returned (``time.time()``)
    thread: ThreadInfo
    #: Where it was made: the line that dropped the last reference, called ``dispose()`` or
    #: made the call (most recent call last).
    site: Traceback = EMPTY_TRACEBACK
    #: A release: where the handle was created.
    created: Traceback = EMPTY_TRACEBACK
    #: A release: ``del``, ``gc``, ``forced`` (``dispose()``) or ``direct``; a call: ``call``.
    cause: str = "call"

    @property
    def key(self) -> Tuple[str, str, str, Optional[Frame], Optional[Frame]]:
        """What makes two events one site."""
        return (self.what, self.name, self.owner, self.site.origin, self.created.origin)


@dataclass(frozen=True, **DATACLASS_SLOTS)
class BlockingSite:
    """Every recorded event of one site: what, from which line, how often, how long."""

    what: What
    name: str
    owner: str
    site: Optional[Frame]
    created: Optional[Frame]
    count: int
    total: float
    worst: float
    #: How many ran on an event-loop thread, and on an SDK callback thread.
    on_event_loop: int
    on_sdk_thread: int
    #: The most recent event of the site (its stacks and thread).
    last: BlockingEvent
    #: The row that counts events of sites past ``MAX_SITES`` (their details are not kept).
    other: bool = False


@dataclass(frozen=True)
class Blocking:
    """What blocked, as :func:`handletrace.blocking` returns it: the releases in flight now,
    and the slow releases and blocking calls recorded since the last reset."""

    #: Native releases started and not returned, the longest first.
    in_flight: Tuple[InFlight, ...]
    #: Recorded releases and calls by site, the longest total first.
    sites: Tuple[BlockingSite, ...]
    #: The most recent recorded events, oldest first.
    events: Tuple[BlockingEvent, ...]
    #: The threshold they were recorded with (seconds).
    threshold: float

    @property
    def clean(self) -> bool:
        return not (self.in_flight or self.sites)

    def on_event_loop(self) -> float:
        """Seconds event loops were held by recorded releases and calls (totals of sites;
        the "other sites" row counts only its last event's share)."""
        total = 0.0
        for site in self.sites:
            if site.on_event_loop:
                total += site.total * site.on_event_loop / site.count
        return total


class BlockingLog:
    """The bounded, thread-safe record of blocking events (one lives on the state object)."""

    def __init__(self, recent: int = RECENT, max_sites: int = MAX_SITES) -> None:
        self._lock = threading.Lock()
        self._recent: Deque[BlockingEvent] = deque(maxlen=recent)
        self._sites: Dict[Tuple[object, ...], BlockingSite] = {}
        self._max_sites = max_sites
        self._other: Optional[BlockingSite] = None

    def add(self, event: BlockingEvent) -> None:
        """Record ``event`` (a few dictionary operations under a lock; never raises on a
        well-formed event)."""
        key = event.key
        loop, sdk = int(event.thread.event_loop), int(event.thread.sdk_thread)
        with self._lock:
            self._recent.append(event)
            site = self._sites.get(key)
            if site is None and len(self._sites) >= self._max_sites:
                other = self._other
                if other is None:
                    self._other = _first(event, other=True)
                else:
                    self._other = _grown(other, event, loop, sdk)
                return
            self._sites[key] = _first(event) if site is None else _grown(site, event, loop, sdk)

    def events(self) -> Tuple[BlockingEvent, ...]:
        """The most recent events, oldest first."""
        with self._lock:
            return tuple(self._recent)

    def sites(self) -> Tuple[BlockingSite, ...]:
        """Every site, the longest total first (the "other sites" row last)."""
        with self._lock:
            sites: List[BlockingSite] = list(self._sites.values())
            other = self._other
        sites.sort(key=lambda site: (-site.total, -site.worst))
        return (*sites, other) if other is not None else tuple(sites)

    def clear(self) -> None:
        with self._lock:
            self._recent.clear()
            self._sites.clear()
            self._other = None

    def reset_lock_after_fork(self) -> None:
        # A lock held by another thread at fork() time would never be released in the child.
        self._lock = threading.Lock()


def _first(event: BlockingEvent, *, other: bool = False) -> BlockingSite:
    return BlockingSite(
        what=event.what,
        name=event.name,
        owner=event.owner,
        site=None if other else event.site.origin,
        created=None if other else event.created.origin,
        count=1,
        total=event.duration,
        worst=event.duration,
        on_event_loop=int(event.thread.event_loop),
        on_sdk_thread=int(event.thread.sdk_thread),
        last=event,
        other=other,
    )


def _grown(site: BlockingSite, event: BlockingEvent, loop: int, sdk: int) -> BlockingSite:
    return replace(
        site,
        count=site.count + 1,
        total=site.total + event.duration,
        worst=max(site.worst, event.duration),
        on_event_loop=site.on_event_loop + loop,
        on_sdk_thread=site.on_sdk_thread + sdk,
        last=event,
    )
