"""The one global state object: configuration, registry and whether patches are in place."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, FrozenSet, Optional

from ._registry import Registry

__all__ = ["Config", "Tracker", "TRACKER", "DEFAULT_STACK_DEPTH", "MAX_STACK_DEPTH"]

DEFAULT_STACK_DEPTH = 16
MAX_STACK_DEPTH = 256


@dataclass(frozen=True)
class Config:
    """How handles are tracked.

    ``stack_depth``: frames kept per creation stack (0 keeps none).
    ``stack_sample``: capture a stack for every handle (1), one in N (N), or none (0).
    ``kinds``: only track these handle kinds (``None``: all).
    """

    stack_depth: int = DEFAULT_STACK_DEPTH
    stack_sample: int = 1
    kinds: Optional[FrozenSet[str]] = None

    def __post_init__(self) -> None:
        if not isinstance(self.stack_depth, int) or not 0 <= self.stack_depth <= MAX_STACK_DEPTH:
            raise ValueError(
                f"stack_depth must be an integer from 0 to {MAX_STACK_DEPTH}, "
                f"got {self.stack_depth!r}"
            )
        if not isinstance(self.stack_sample, int) or self.stack_sample < 0:
            raise ValueError(
                "stack_sample must be 1 (every handle), N > 1 (one handle in N) or 0 (none), "
                f"got {self.stack_sample!r}"
            )
        if self.kinds is not None:
            kinds = frozenset(self.kinds)
            if not kinds or not all(isinstance(k, str) and k for k in kinds):
                raise ValueError(f"kinds must be a non-empty set of kind names, got {self.kinds!r}")
            object.__setattr__(self, "kinds", kinds)

    def with_changes(self, **changes: Any) -> Config:
        return replace(self, **changes)


class Tracker:
    """Everything handletrace keeps while it runs; ``TRACKER`` is the only instance."""

    # Slots: the C hooks read ``installed``, ``config`` and ``gc_thread`` for every handle,
    # straight from the object (an attribute lookup costs more than what they then do).
    __slots__ = (
        "registry",
        "config",
        "installed",
        "gc_thread",
        "patcher",
        "at_exit",
        "exposed_futures",
        "exposed_after",
    )

    def __init__(self) -> None:
        self.registry = Registry()
        self.config = Config()
        self.installed = False
        # Thread ident of a running cyclic collection: a ``__del__`` on that thread is caused
        # by the collector, any other by reference counting.
        self.gc_thread: Optional[int] = None
        self.patcher: Any = None
        self.at_exit: Any = None
        # ResultFuture records whose get() may release the async handle unseen, since the
        # last uninstall(): those alive then, and any made after ``exposed_after`` (while it
        # ran). See _patching._prune_unobserved.
        self.exposed_futures: FrozenSet[int] = frozenset()
        self.exposed_after: Optional[int] = None

    def reset_defaults(self) -> None:
        """Uninstall, then forget all records, counters and configuration (for tests)."""
        import sys

        from ._patching import uninstall

        metrics = sys.modules.get("handletrace.metrics")
        if metrics is not None:
            metrics.disable()
        uninstall()
        self.registry.clear()
        self.config = Config()
        self.gc_thread = None
        self.exposed_futures, self.exposed_after = frozenset(), None

    def after_fork_in_child(self) -> None:
        self.registry.reset_lock_after_fork()
        self.gc_thread = None


TRACKER = Tracker()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=TRACKER.after_fork_in_child)
