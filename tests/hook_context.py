"""The ``_Handle`` hooks made by hand, for the tests that run them against both
implementations: a ``HookContext`` over real registry containers, with callables that
record their calls, and the hooks put on the real SDK ``interop._Handle`` (always undone)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import fields
from types import CodeType
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.cognitiveservices.speech import interop

from handletrace._core.config import Config
from handletrace._core.registry import CAUSE_COLUMN, RELEASE_CAUSES, Registry
from handletrace._core.stacks import EMPTY_TRACEBACK, Traceback
from handletrace._instrument.hooks import HookContext, python_hooks
from handletrace._instrument.hooks import speedups as _speedups

#: The C accelerator, or ``None`` if it is not built.
speedups = _speedups()

SDK_DIR = os.path.join(os.path.dirname(os.path.abspath(speechsdk.__file__)), "")

#: What makes each implementation's hooks: ``make(original_init, original_del, ctx)``.
MAKERS: Dict[str, Callable[..., Tuple[Any, Any]]] = {"python": python_hooks}
if speedups is not None:
    MAKERS["c"] = speedups.make_hooks

IMPLEMENTATIONS = ("c", "python")


def require(impl: str) -> None:
    """Skip the test if the hooks of ``impl`` are not built."""
    if impl not in MAKERS:
        pytest.skip("the C accelerator handletrace._instrument._speedups is not built")


class FakeTracker:
    """What the hooks read per call from the tracker (``HOOK_SLOTS``), as attributes."""

    def __init__(self, config: Config) -> None:
        self.installed = True
        self.gc_thread: Any = None
        self.config = config
        self.release_listener: Any = None


class SlottedTracker:
    """A tracker with slots, as ``_core.state.Tracker``: the C hooks read the slots directly."""

    __slots__ = ("installed", "gc_thread", "config", "release_listener")

    def __init__(self, config: Config) -> None:
        self.installed = True
        self.gc_thread: Any = None
        self.config = config
        self.release_listener: Any = None


class Context:
    """A ``HookContext``'s fields over a real ``Registry``'s containers, of the kind each
    implementation uses (``use_accelerator``: lists and a dict for the Python hooks,
    ``Counters`` and a ``HandleIndex`` for the C ones), and callables that record their
    calls. ``hook_context()`` is what the hooks are given."""

    def __init__(self, impl: str = "c", config: Optional[Config] = None) -> None:
        require(impl)
        self.impl = impl
        self.registry = Registry()
        self.registry.use_accelerator(speedups if impl == "c" else None)
        self.tracker: Any = FakeTracker(config if config is not None else Config(stack_depth=0))
        self.live = self.registry.live_table
        self.counts = self.registry.counts_table
        self.seq_counter = self.registry.seq_counter
        self.unwrapped: Dict[int, Tuple[Any, str]] = {}
        self.interned: Dict[Any, Traceback] = {}
        self.active_threads = threading._active  # type: ignore[attr-defined]
        self.ignored_dirs = (SDK_DIR,)
        self.ignored_files: frozenset = frozenset()
        self.empty_traceback = EMPTY_TRACEBACK
        self.handle_index = self.registry.handle_index  # id(_Handle) -> seq
        self.monotonic = time.monotonic
        self.releasing = self.registry.releasing_table
        #: (entry, seconds, cause column, frame) of each release at least slow_release long.
        self.slow_releases: List[Tuple[Any, float, int, Any]] = []
        self.del_column = CAUSE_COLUMN["del"]
        self.gc_column = CAUSE_COLUMN["gc"]
        self.lock = self.registry.lock
        self.errors: List[Tuple[str, BaseException]] = []
        self.kind_calls: List[Any] = []
        self.new_kinds: List[str] = []
        self.traceback_calls: List[Tuple[Any, Tuple[CodeType, ...], Tuple[int, ...], int]] = []

    def hook_context(self) -> HookContext:
        return HookContext(**{f.name: getattr(self, f.name) for f in fields(HookContext)})

    def make_hooks(self) -> Tuple[Any, Any]:
        """A pair of hooks of ``self.impl`` for the SDK's ``_Handle``, not put in place."""
        original_init, original_del = sdk_methods()
        return MAKERS[self.impl](original_init, original_del, self.hook_context())

    def kind_for(self, release_fn: Any) -> str:
        self.kind_calls.append(release_fn)
        return kind_of(release_fn)

    def count_error(self, where: str, exc: BaseException) -> None:
        self.errors.append((where, exc))

    def on_slow_release(self, entry: Any, duration: float, column: int, frame: Any) -> None:
        self.slow_releases.append((entry, duration, column, frame))

    def new_kind(self, kind: str) -> Any:
        self.new_kinds.append(kind)
        return self.registry.new_kind(kind)

    def make_traceback(
        self, key: Any, codes: Tuple[CodeType, ...], lastis: Tuple[int, ...], total: int
    ) -> Traceback:
        self.traceback_calls.append((key, codes, lastis, total))
        traceback = self.interned[key] = Traceback(codes, lastis, total)
        return traceback

    def counters(self) -> Dict[str, List[int]]:
        """kind -> [created, released, live, peak]."""
        return {kind: list(row)[:4] for kind, row in self.counts.items()}

    @property
    def by_cause(self) -> Dict[str, int]:
        """Releases per cause (causes with none left out)."""
        totals = {
            c: sum(row[CAUSE_COLUMN[c]] for row in self.counts.values()) for c in RELEASE_CAUSES
        }
        return {cause: count for cause, count in totals.items() if count}


class QuietContext(Context):
    """A context that keeps no record of the calls (for loops over thousands of handles)."""

    def kind_for(self, release_fn: Any) -> str:
        return kind_of(release_fn)


def kind_of(release_fn: Any) -> str:
    name: str = release_fn.__name__
    return name[: -len("_release")] if name.endswith("_release") else name


def slotted_context(impl: str) -> Context:
    ctx = Context(impl)
    ctx.tracker = SlottedTracker(ctx.tracker.config)
    return ctx


def sdk_methods() -> Tuple[Any, Any]:
    """The SDK's own ``_Handle.__init__`` and ``__del__`` (no hooks must be in place)."""
    original_init = interop._Handle.__dict__["__init__"]
    original_del = interop._Handle.__dict__["__del__"]
    assert type(original_init) is type(original_del) is type(lambda: None), "not the SDK's own"
    return original_init, original_del


Install = Callable[..., Context]


@contextlib.contextmanager
def hooks_on_handle() -> Iterator[Install]:
    """``install(ctx)`` puts ``ctx.impl``'s hooks, made with ``ctx``, on ``interop._Handle``
    (the ``_Handle``'s own ``__init__`` / ``__del__`` are put back on exit)."""
    original_init, original_del = sdk_methods()

    def install(ctx: Context) -> Context:
        hooks = MAKERS[ctx.impl](original_init, original_del, ctx.hook_context())
        interop._Handle.__init__, interop._Handle.__del__ = hooks
        return ctx

    try:
        yield install
    finally:
        interop._Handle.__init__ = original_init
        interop._Handle.__del__ = original_del
