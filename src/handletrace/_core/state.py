"""The one global state object: configuration, registry and whether patches are in place."""

from __future__ import annotations

import os
from typing import Any, Callable, FrozenSet, List, Optional

from .blocking import BlockingLog
from .config import Config
from .registry import Registry

__all__ = ["HOOK_SLOTS", "Tracker", "TRACKER"]

#: The tracker's attributes that the ``_Handle`` hooks read for every handle: whether to
#: record (``installed``), how (``config``: its ``kinds``, ``stack_depth``, ``stack_sample``)
#: and which thread a collection runs on (``gc_thread``: a ``__del__`` there has cause
#: ``gc``). Slots, so that the C hooks read them at a fixed offset in the object (an
#: attribute lookup costs more than what they then do); ``_speedups.TRACKER_SLOTS`` names
#: what the C hooks read, and a test checks both against this tuple and the class.
#: ``release_listener``: ``None``, or called with (kind, seconds) after every native release
#: the hooks time (OpenTelemetry's release-duration histogram, when metrics are on).
HOOK_SLOTS = ("installed", "config", "gc_thread", "release_listener")


class Tracker:
    """Everything handletrace keeps while it runs; ``TRACKER`` is the only instance."""

    __slots__ = (
        *HOOK_SLOTS,
        "registry",
        "blocking",
        "patcher",
        "at_exit",
        "exposed_futures",
        "leaked_futures",
        "on_reset",
        "on_diagnosis",
    )

    def __init__(self) -> None:
        self.registry = Registry()
        #: Releases and SDK calls that took at least ``config.slow_release`` (bounded).
        self.blocking = BlockingLog()
        self.release_listener: Optional[Callable[[str, float], Any]] = None
        self.config = Config()
        self.installed = False
        # Thread ident of a running cyclic collection: a ``__del__`` on that thread is caused
        # by the collector, any other by reference counting.
        self.gc_thread: Optional[int] = None
        self.patcher: Any = None
        self.at_exit: Any = None
        # ResultFuture records whose get() may have released the async handle unseen and
        # whose future was still alive and unresolved when install() last looked; and those
        # whose future died unresolved while the release wrappers watched (listed at the last
        # uninstall(): real leaks, never pruned). See _instrument.install.prune_unobserved.
        self.exposed_futures: FrozenSet[int] = frozenset()
        self.leaked_futures: FrozenSet[int] = frozenset()
        # Upper layers subscribe here instead of being imported from below: called by
        # reset_defaults() (uninstall, metrics off), and with each finished diagnosis.
        self.on_reset: List[Callable[[], Any]] = []
        self.on_diagnosis: List[Callable[[Any], Any]] = []

    def reset_defaults(self) -> None:
        """Uninstall, then forget all records, counters and configuration (for tests).

        What to undo first is registered by the layers that did it (``on_reset``: the
        instrumentation's ``uninstall()``, metrics' ``disable()``), newest first."""
        for callback in reversed(self.on_reset):
            callback()
        self.registry.clear()
        self.blocking.clear()
        self.config = Config()
        self.gc_thread = None
        self.exposed_futures, self.leaked_futures = frozenset(), frozenset()

    def after_fork_in_child(self) -> None:
        self.registry.reset_lock_after_fork()
        self.blocking.reset_lock_after_fork()
        self.gc_thread = None


TRACKER = Tracker()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=TRACKER.after_fork_in_child)
