"""The ``_Handle.__init__`` / ``__del__`` hooks, the per-handle hot path, and the one place
that chooses between the C hooks (``_speedups.c``) and the pure-Python ones.

The pure-Python hooks are the specification: the C hooks do the same, line for line, and the
tests run the same cases against both (as wrapt does for its C and Python wrappers).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from .._core import stacks
from .._core.config import parse_switch
from .._core.state import TRACKER, Tracker
from ..errors import HandleTraceWarning

__all__ = [
    "HookContext",
    "NO_EXTENSIONS_VARIABLE",
    "hooks_in_use",
    "make_hooks",
    "python_hooks",
    "speedups",
]


@dataclass(frozen=True)
class HookContext:
    """What the ``_Handle`` hooks read: the registry's containers and a few callables.

    The C hooks take each attribute once, when they are made; the containers are never
    replaced (the registry empties them in place)."""

    tracker: Tracker
    live: Dict[int, Tuple[Any, ...]]
    counts: Dict[str, Any]
    seq_counter: Iterator[int]
    unwrapped: Dict[int, Tuple[Any, str]]
    interned: Dict[Tuple[int, ...], Any]
    active_threads: Dict[int, threading.Thread]
    prefixes: Tuple[str, ...]
    empty_traceback: Any
    #: id(_Handle) -> seq: ``Registry.handle_index``.
    handle_index: Any
    kind_for: Callable[[Any], str]
    count_error: Callable[[str, BaseException], None]
    new_kind: Callable[[str], Any]
    make_traceback: Callable[..., Any]
    monotonic: Callable[[], float]
    #: The counters' columns of the two release causes a ``__del__`` hook counts.
    del_column: int
    gc_column: int


#: Environment variable that keeps the C hooks out even when the extension is built.
NO_EXTENSIONS_VARIABLE = "HANDLETRACE_NO_EXTENSIONS"


_warned_values: set = set()


def speedups() -> Any:
    """The C accelerator module, or ``None`` (not built, or switched off)."""
    raw = os.environ.get(NO_EXTENSIONS_VARIABLE, "")
    switch = parse_switch(raw, empty=False)
    if switch:
        return None
    if switch is None and raw not in _warned_values:
        _warned_values.add(raw)  # one warning per value, however often install() runs
        warnings.warn(
            f"handletrace: invalid value {raw!r} for {NO_EXTENSIONS_VARIABLE} (accepted: "
            "1, true, yes or on for the pure-Python hooks; 0, false, no or off for the C "
            "accelerator); the C accelerator is used if it is built",
            HandleTraceWarning,
            stacklevel=3,
        )
    try:
        from . import _speedups as module  # type: ignore[attr-defined]
    except ImportError:
        return None
    return module


def hooks_in_use() -> Optional[str]:
    """``"c"`` or ``"python"``: which ``_Handle`` hooks are in place (``None``: none are)."""
    patcher = TRACKER.patcher
    return None if patcher is None else patcher.hook_kind


def python_hooks(original_init: Any, original_del: Any, ctx: HookContext) -> Tuple[Any, Any]:
    """The pure-Python ``_Handle`` hooks: what the C hooks of ``_speedups`` do, line for line.

    Per handle they keep only what cannot be found later: the sequence number (by the
    ``_Handle``'s address), kind, the ctypes handle, the code that made it, the thread, the
    time and the stack. The ``_Handle`` and its owner are found when a record is built
    (``_sdk/records.py``).
    """
    tracker = ctx.tracker
    registry = tracker.registry
    unwrapped_get = ctx.unwrapped.get
    active_get = ctx.active_threads.get
    seq_counter = ctx.seq_counter
    kind_for = ctx.kind_for
    count_error = ctx.count_error
    empty = ctx.empty_traceback
    monotonic = ctx.monotonic
    index = ctx.handle_index
    capture = stacks.capture
    getframe = sys._getframe
    get_ident = threading.get_ident

    def handle_init(
        self: Any, handle: Any, test_fn: Any, release_fn: Any, *args: Any, **kwargs: Any
    ) -> None:
        # The _Handle keeps the real release function, not handletrace's wrapper of it:
        # its __del__ then releases without passing through the wrapper (the __del__
        # hook below has already removed the record).
        entry = unwrapped_get(id(release_fn))
        original_init(
            self, handle, test_fn, release_fn if entry is None else entry[0], *args, **kwargs
        )
        if not tracker.installed:
            return
        try:
            kind = entry[1] if entry is not None else kind_for(release_fn)
            config = tracker.config
            kinds = config.kinds
            if kinds is not None and kind not in kinds:
                return
            seq = next(seq_counter)
            frame = getframe(1)
            ident = get_ident()
            thread = active_get(ident)
            sample, depth = config.stack_sample, config.stack_depth
            if sample and depth and (sample == 1 or seq % sample == 0):
                traceback = capture(depth, frame)
            else:
                traceback = empty
            registry.add_handle(
                id(self),
                (
                    seq,
                    kind,
                    handle,
                    frame.f_code,
                    thread if thread is not None else ident,
                    monotonic(),
                    traceback,
                ),
            )
        except Exception as exc:
            try:
                count_error("_Handle.__init__", exc)
            except Exception:
                pass

    def handle_del(self: Any) -> None:
        try:
            address = id(self)
            if address in index:
                gc_thread = tracker.gc_thread
                cause = "gc" if gc_thread is not None and gc_thread == get_ident() else "del"
                registry.release_handle(address, cause)
        except Exception as exc:
            try:
                count_error("_Handle.__del__", exc)
            except Exception:
                pass
        original_del(self)

    return handle_init, handle_del


def make_hooks(original_init: Any, original_del: Any, ctx: HookContext) -> Tuple[Any, Any, str]:
    """The ``_Handle.__init__`` and ``__del__`` replacements and which they are (``"c"`` or
    ``"python"``): the C hooks when the accelerator is built and not switched off.

    The registry's containers must already be of the hooks' kind (``use_accelerator``)."""
    module = speedups()
    if module is not None:
        init_hook, del_hook = module.make_hooks(original_init, original_del, ctx)
        kind = "c"
    else:
        init_hook, del_hook = python_hooks(original_init, original_del, ctx)
        kind = "python"
    functools.update_wrapper(init_hook, original_init)  # sets __wrapped__
    functools.update_wrapper(del_hook, original_del)
    return init_hook, del_hook, kind
