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
from typing import Any, Callable, Dict, FrozenSet, Iterator, Optional, Tuple

from .._core import stacks
from .._core.config import parse_switch
from .._core.registry import CREATED_COLUMN, ENTRY_KIND, LIVE_COLUMN, PEAK_COLUMN, pop_record
from .._core.state import TRACKER
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
    """What the ``_Handle`` hooks read: the registry's containers, a few callables and what
    decides which frames are trimmed from a stack. The hooks' whole contract with the rest
    of handletrace (with ``HANDLE_ENTRY``, ``COUNTER_NAMES`` and ``HOOK_SLOTS``).

    Both hooks take each attribute once, when they are made; the containers are never
    replaced (the registry empties them in place). The C hooks read every field but
    ``lock`` (``_speedups.CONTEXT_FIELDS``; a test checks the two agree)."""

    #: Read per handle: ``HOOK_SLOTS`` (``installed``, ``config``, ``gc_thread``).
    tracker: Any
    #: seq -> entry (``HANDLE_ENTRY``): ``Registry.live_table``.
    live: Dict[int, Tuple[Any, ...]]
    #: kind -> its counters (``COUNTER_NAMES``): ``Registry.counts_table``.
    counts: Dict[str, Any]
    seq_counter: Iterator[int]
    #: id(release wrapper) -> (the real release function, its kind): ``Patcher.unwrapped``.
    unwrapped: Dict[int, Tuple[Any, str]]
    #: Stacks met before, by key (``stacks.INTERNED``; see ``stacks.capture_stack``).
    interned: Dict[Tuple[int, ...], Any]
    #: Running threads by ident (``threading._active``).
    active_threads: Dict[int, threading.Thread]
    #: Frames of files under these directories (the SDK's, wrapt's) or of these files
    #: (handletrace's machinery: ``stacks.machinery_files()``) are not the user's: trimmed
    #: from the top of a stack.
    ignored_dirs: Tuple[str, ...]
    ignored_files: FrozenSet[str]
    empty_traceback: Any
    #: id(_Handle) -> seq: ``Registry.handle_index``.
    handle_index: Any
    kind_for: Callable[[Any], str]
    count_error: Callable[[str, BaseException], None]
    #: The counters of a kind met for the first time (``Registry.new_kind``).
    new_kind: Callable[[str], Any]
    make_traceback: Callable[..., Any]
    monotonic: Callable[[], float]
    #: seq -> ``RELEASING_ENTRY``: ``Registry.releasing_table`` (releases in flight).
    releasing: Any
    #: Called with (entry, seconds, cause column, frame) after a release that took at least
    #: ``tracker.config.slow_release`` (``_sdk.blocking.record_release``).
    on_slow_release: Callable[..., Any]
    #: The counters' columns of the two release causes a ``__del__`` hook counts.
    del_column: int
    gc_column: int
    #: Held by the Python hooks while they change the containers (``Registry.lock``): a
    #: Python hook can be interrupted by another thread between two bytecodes. The C hooks
    #: need none (the GIL makes each of them atomic) and do not read it.
    lock: Any


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
    """The pure-Python ``_Handle`` hooks: the specification of the C hooks of ``_speedups``,
    which do the same, step for step (the tests run the same cases against both).

    Per handle they keep only what cannot be found later (``HANDLE_ENTRY``): the sequence
    number (by the ``_Handle``'s address), kind, the ctypes handle, the code that made it,
    the thread, the time and the stack. The ``_Handle`` and its owner are found when a
    record is built (``_sdk/records.py``).

    Everything that may allocate a tracked object (and so start a collection, whose
    finalisers may run a ``__del__`` hook here) comes before the containers change, and they
    change under ``ctx.lock``: entries and counters always agree.
    """
    tracker = ctx.tracker
    live, counts, index, lock = ctx.live, ctx.counts, ctx.handle_index, ctx.lock
    unwrapped_get = ctx.unwrapped.get
    active_get = ctx.active_threads.get
    counts_get = counts.get
    seq_counter = ctx.seq_counter
    kind_for, new_kind, count_error = ctx.kind_for, ctx.new_kind, ctx.count_error
    empty = ctx.empty_traceback
    monotonic = ctx.monotonic
    ignored_dirs, ignored_files = ctx.ignored_dirs, ctx.ignored_files
    interned, make_traceback = ctx.interned, ctx.make_traceback
    del_column, gc_column = ctx.del_column, ctx.gc_column
    releasing, on_slow_release = ctx.releasing, ctx.on_slow_release
    # Closure variables, not module globals: finalisers (the __del__ hook) run during
    # interpreter shutdown, after module globals are cleared.
    created_column, live_column, peak_column = CREATED_COLUMN, LIVE_COLUMN, PEAK_COLUMN
    entry_kind = ENTRY_KIND
    pop = pop_record
    capture = stacks.capture_stack
    getframe = sys._getframe
    get_ident = threading.get_ident

    def handle_init(
        self: Any, handle: Any, test_fn: Any, release_fn: Any, *args: Any, **kwargs: Any
    ) -> None:
        # The _Handle keeps the real release function, not handletrace's wrapper of it:
        # its __del__ then releases without passing through the wrapper (the __del__
        # hook below has already removed the record).
        known = unwrapped_get(id(release_fn))
        real_release = release_fn if known is None else known[0]
        original_init(self, handle, test_fn, real_release, *args, **kwargs)
        if not tracker.installed:
            return
        try:
            kind = known[1] if known is not None else kind_for(release_fn)
            config = tracker.config
            kinds = config.kinds
            if kinds is not None and kind not in kinds:
                return
            seq = next(seq_counter)
            frame = getframe(1)  # the SDK code calling _Handle()
            ident = get_ident()
            thread = active_get(ident)
            sample, depth = config.stack_sample, config.stack_depth
            if sample and depth and (sample == 1 or seq % sample == 0):
                traceback = capture(
                    frame, depth, ignored_dirs, ignored_files, interned, make_traceback
                )
            else:
                traceback = empty
            entry = (
                seq,
                kind,
                handle,
                frame.f_code,
                thread if thread is not None else ident,
                monotonic(),
                traceback,
            )
            row = counts_get(kind)
            if row is None:
                row = new_kind(kind)
            with lock:
                live[seq] = entry
                index[id(self)] = seq
                row[created_column] += 1
                alive = row[live_column] = row[live_column] + 1
                if alive > row[peak_column]:
                    row[peak_column] = alive
        except Exception as exc:
            try:
                count_error("_Handle.__init__", exc)
            except Exception:
                pass

    def handle_del(self: Any) -> None:
        # The release is timed, and in flight (``releasing``: still live, still counted)
        # while the SDK's __del__ runs: a native release can block for seconds.
        seq = None
        try:
            address = id(self)
            seq = index.get(address)
            if seq is not None:
                # Read before anything changes: an unreadable collecting thread leaves the
                # entry and its counters as they were (an error counted), never half-popped.
                gc_thread = tracker.gc_thread
                ident = get_ident()
                column = gc_column if gc_thread is not None and gc_thread == ident else del_column
                thread = active_get(ident)
                started = monotonic()
                with lock:
                    releasing[seq] = (started, thread if thread is not None else ident, column)
        except Exception as exc:
            seq = None
            try:
                count_error("_Handle.__del__", exc)
            except Exception:
                pass
        try:
            original_del(self)
        finally:
            if seq is not None:
                try:
                    duration = monotonic() - started
                    with lock:
                        releasing.pop(seq, None)
                        if index.get(address) == seq:
                            del index[address]
                        entry = pop(live, counts, seq, column)
                    if entry is not None:
                        listener = tracker.release_listener
                        if listener is not None:
                            listener(entry[entry_kind], duration)
                        if duration >= tracker.config.slow_release:
                            # f_back: None on a thread with no Python frame below the
                            # release (an SDK callback thread, as its callback returns);
                            # getframe(1) would raise there and lose the record.
                            on_slow_release(entry, duration, column, getframe(0).f_back)
                except Exception as exc:
                    try:
                        count_error("_Handle.__del__", exc)
                    except Exception:
                        pass

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
