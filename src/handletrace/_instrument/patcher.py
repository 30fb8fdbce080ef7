"""The patches: what replaces each SDK method and release function, and how they are put in
place and taken out. Declarative (the tables of ``_sdk/kinds.py``) and exactly reversible:
``remove()`` puts back each original only where the attribute is still ours. Every wrapper
calls the real SDK function, catches its own failures and counts them.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Tuple

import wrapt

from .._core import stacks
from .._core.config import Config
from .._core.registry import (
    CAUSE_COLUMN,
    ENTRY_SEQ,
    SEQ_ATTR,
    RecordFields,
    address_of,
    make_weakref,
    thread_name,
)
from .._core.state import Tracker
from .._sdk.blocking import record_release, timed_release
from .._sdk.kinds import (
    ACCESS_METHODS,
    BLOCKING_CALLS,
    CALL_ATTR,
    PATCHED_METHODS,
    RELEASE_FUNCTIONS,
    async_kind,
    kind_of,
)
from .._sdk.modules import INTEROP_MODULE
from .._sdk.records import find_async_record
from .access import access_wrapper
from .blocking import blocking_call_wrapper
from .hooks import HookContext, make_hooks, speedups

__all__ = ["Patcher"]


def _frame_self(frame: FrameType) -> Any:
    code = frame.f_code
    if code.co_argcount and code.co_varnames[0] == "self":
        return frame.f_locals.get("self")
    return None


_get_ident = threading.get_ident
# Running threads by ident (read without creating a _DummyThread for native SDK threads).
_active_threads: Dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]


class Patcher:
    """The wrappers in place, with the originals they replaced."""

    def __init__(self, tracker: Tracker, sdk_dir: str, internal_dirs: List[str]) -> None:
        self.tracker = tracker
        self.sdk_dir = sdk_dir
        self.internal_dirs = tuple(internal_dirs)
        self.methods: List[Tuple[type, str, Any, Any]] = []  # (class, name, original, wrapper)
        self.functions: List[Tuple[Any, str, Any, Any]] = []  # (lib, name, original, wrapper)
        self.kinds_by_name: Dict[str, str] = {}
        # id(release wrapper) -> (the real release function, its kind); see handle_init.
        self.unwrapped: Dict[int, Tuple[Any, str]] = {}
        self.hook_kind: Optional[str] = None

    # -- record creation (the hot path) ---------------------------------------------------
    def make_record(
        self, kind: str, address: int, owner: Any, start: FrameType, source: str, handle: Any
    ) -> RecordFields:
        """The record fields for a new handle; ``start`` is the SDK frame that made it.

        Returns the fields in ``HandleRecord`` order without ``created_at`` (which is worked
        out from ``created_monotonic``); the registry builds the record itself
        only when one is asked for (building it costs more than the rest of this function).
        """
        tracker = self.tracker
        config: Config = tracker.config
        sdk_dir = self.sdk_dir
        frame: Optional[FrameType] = start
        parent = None
        # Owner: the SDK object whose method made the handle; parent: the next SDK object out
        # (e.g. the ConversationTranscriber whose __init__ made a PropertyCollection).
        # (_frame_self inlined: this loop runs for every handle.)
        while frame is not None:
            code = frame.f_code
            if not code.co_filename.startswith(sdk_dir):
                break
            if code.co_argcount and code.co_varnames[0] == "self":
                candidate = frame.f_locals.get("self")
                if candidate is not None and candidate is not owner:
                    if owner is None:
                        owner = candidate
                    else:
                        parent = candidate
                        break
            frame = frame.f_back
        seq = tracker.registry.next_seq()
        traceback = stacks.EMPTY_TRACEBACK
        sample = config.stack_sample
        if sample and config.stack_depth and (sample == 1 or seq % sample == 0):
            traceback = stacks.capture(config.stack_depth, frame)
        ident = _get_ident()
        thread = _active_threads.get(ident)
        if thread is not None:
            ident = thread.ident or ident  # one int object for all records of this thread
            name = thread.name
        else:
            name = thread_name(ident)
        return (
            seq,
            kind,
            address,
            type(owner).__qualname__ if owner is not None else "",
            type(parent).__qualname__ if parent is not None else None,
            ident,
            name,
            time.monotonic(),  # created_at is worked out from it (see _registry._as_record)
            traceback,
            source,
            make_weakref(owner),
            make_weakref(parent),
            make_weakref(handle),
        )

    def kind_for(self, release_fn: Any) -> str:
        name = getattr(release_fn, "__name__", None) or "unknown"
        kind = self.kinds_by_name.get(name)
        if kind is None:
            kind = self.kinds_by_name[name] = kind_of(name)
        return kind

    def hook_context(self) -> HookContext:
        """What the ``_Handle`` hooks share with the registry (the C hooks keep these)."""
        registry = self.tracker.registry
        return HookContext(
            tracker=self.tracker,
            live=registry.live_table,
            counts=registry.counts_table,
            seq_counter=registry.seq_counter,
            unwrapped=self.unwrapped,
            interned=stacks.INTERNED,
            active_threads=_active_threads,
            ignored_dirs=stacks.ignored_prefixes(),
            ignored_files=stacks.machinery_files(),
            empty_traceback=stacks.EMPTY_TRACEBACK,
            handle_index=registry.handle_index,
            kind_for=self.kind_for,
            count_error=registry.count_error,
            new_kind=registry.new_kind,
            make_traceback=stacks.make_traceback,
            monotonic=time.monotonic,
            releasing=registry.releasing_table,
            on_slow_release=functools.partial(record_release, self.tracker),
            del_column=CAUSE_COLUMN["del"],
            gc_column=CAUSE_COLUMN["gc"],
            lock=registry.lock,
        )

    def handle_hooks(self, original_init: Any, original_del: Any) -> Tuple[Any, Any]:
        """The ``_Handle.__init__`` and ``__del__`` replacements (C if available)."""
        # First: the registry's containers are converted for the hooks' kind, then handed over.
        self.tracker.registry.use_accelerator(speedups())
        init_hook, del_hook, self.hook_kind = make_hooks(
            original_init, original_del, self.hook_context()
        )
        return init_hook, del_hook

    # -- wrappers --------------------------------------------------------------------------
    def build_wrappers(self, originals: Dict[str, Any]) -> Dict[str, Callable[..., Any]]:
        """The objects replacing the SDK methods in ``originals`` (path -> original).

        ``_Handle.__init__/__del__`` run for every native handle: they are the C hooks of
        ``handletrace._speedups`` when that extension is built (and not switched off), else
        the plain Python functions below, which do exactly the same. Neither is a
        ``wrapt.FunctionWrapper``: binding one per call costs more than all the bookkeeping
        (see benchmarks/README.md). Each calls the original first or last, whatever happens
        in handletrace's own code.
        """
        # Everything a wrapper touches is bound here as a closure variable, not a module
        # global: finalisers run during interpreter shutdown, after module globals are cleared.
        tracker = self.tracker
        registry = tracker.registry
        getframe = sys._getframe
        patcher = self
        original_future_init = originals["ResultFuture.__init__"]
        handle_init, handle_del = self.handle_hooks(
            originals["_Handle.__init__"], originals["_Handle.__del__"]
        )

        def future_init(self: Any, async_handle: Any, *args: Any, **kwargs: Any) -> None:
            original_future_init(self, async_handle, *args, **kwargs)
            if not tracker.installed:
                return
            try:
                address = address_of(async_handle)
                start = getframe(1)
                creator = (
                    _frame_self(start)
                    if start.f_code.co_filename.startswith(patcher.sdk_dir)
                    else None
                )
                kind = async_kind(creator)
                kinds = tracker.config.kinds
                if not address or (kinds is not None and kind not in kinds):
                    return
                record = patcher.make_record(kind, address, self, start, "future", None)
                setattr(self, SEQ_ATTR, record[ENTRY_SEQ])  # not via __dict__: builds a dict
                if creator is not None:  # names a blocking get() of this future
                    setattr(self, CALL_ATTR, f"{type(creator).__qualname__}.{start.f_code.co_name}")
                registry.add(record)
            except Exception as exc:
                registry.count_error("ResultFuture.__init__", exc)

        functools.update_wrapper(future_init, original_future_init)  # sets __wrapped__
        return {
            "_Handle.__init__": handle_init,
            "_Handle.__del__": handle_del,
            "ResultFuture.__init__": future_init,
        }

    def release_wrapper(self, kind: str) -> Callable[..., Any]:
        """Wrapper for a release function: notices direct calls on a tracked address."""
        tracker = self.tracker
        registry = tracker.registry

        def release(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            # Not only while installed: during uninstall() (installed is already False, the
            # wrappers still in place) a release seen is a release that need not be guessed
            # at later (a resolved future may be dropped before uninstall() can list it).
            seq = None
            if args:
                try:
                    # Only async handles are found by address: a _Handle's release comes
                    # from its __del__ (the hook has counted it) or from dispose().
                    record = find_async_record(registry, address_of(args[0]))
                    if record is not None and record.kind == kind:
                        seq = record.seq
                        owner = record.owner_ref()  # the ResultFuture
                        if owner is not None:
                            owner.__dict__.pop(SEQ_ATTR, None)
                except Exception as exc:
                    registry.count_error(f"{kind} release", exc)
            # In flight while it runs, then counted "direct"; timed.
            return timed_release(tracker, seq, "direct", lambda: wrapped(*args, **kwargs))

        return release

    # -- applying and removing -------------------------------------------------------------
    def apply(self, sdk: Any) -> None:
        interop = sys.modules[INTEROP_MODULE]
        lib = interop._sdk_lib
        targets = []
        for module_name, path in PATCHED_METHODS:
            cls_name, attr = path.split(".")
            cls = getattr(sys.modules[module_name], cls_name)
            targets.append((path, cls, attr, cls.__dict__[attr]))
        wrappers = self.build_wrappers({path: original for path, _, _, original in targets})
        for path, cls, attr, original in targets:
            wrapper = wrappers[path]
            setattr(cls, attr, wrapper)
            self.methods.append((cls, attr, original, wrapper))
        for name in RELEASE_FUNCTIONS:
            try:
                original = getattr(lib, name)
            except AttributeError:
                continue  # not exported by this SDK version
            kind = kind_of(name)
            # wrapt here (not a plain function): the SDK sets ``restype`` on these objects,
            # and a FunctionWrapper forwards that to the ctypes function.
            wrapper = wrapt.FunctionWrapper(original, self.release_wrapper(kind))
            setattr(lib, name, wrapper)
            self.functions.append((lib, name, original, wrapper))
            self.unwrapped[id(wrapper)] = (original, kind)
        # Access records (not on the per-handle path, so wrapt is fine here).
        for module_name, path in ACCESS_METHODS:
            cls_name, attr = path.split(".")
            cls = getattr(sys.modules.get(module_name), cls_name, None)
            if not isinstance(cls, type) or attr not in cls.__dict__:
                continue  # not defined by this SDK version
            original = cls.__dict__[attr]
            wrapper = wrapt.FunctionWrapper(original, access_wrapper(self, path))
            setattr(cls, attr, wrapper)
            self.methods.append((cls, attr, original, wrapper))
        # Blocking calls on an event loop (timed there only).
        for module_name, path in BLOCKING_CALLS:
            cls_name, attr = path.split(".")
            cls = getattr(sys.modules.get(module_name), cls_name, None)
            if not isinstance(cls, type) or attr not in cls.__dict__:
                continue  # not defined by this SDK version
            original = cls.__dict__[attr]
            wrapper = wrapt.FunctionWrapper(original, blocking_call_wrapper(self.tracker, path))
            setattr(cls, attr, wrapper)
            self.methods.append((cls, attr, original, wrapper))

    def remove(self) -> None:
        for cls, attr, original, wrapper in reversed(self.methods):
            if cls.__dict__.get(attr) is wrapper:
                setattr(cls, attr, original)
        for lib, name, original, wrapper in reversed(self.functions):
            if lib.__dict__.get(name) is wrapper:
                setattr(lib, name, original)
        self.methods.clear()
        self.functions.clear()
        self.unwrapped.clear()
