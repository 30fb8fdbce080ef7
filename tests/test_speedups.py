"""The C accelerator ``handletrace._speedups``, on the real SDK ``interop._Handle``.

Its hooks must do exactly what the pure-Python reference below does (the hot path of
``_patching``, written out here as the oracle): same entries, counters, release causes and
errors. Most tests run on both (``impl`` fixture: ``"c"`` and ``"reference"``), so each
behaviour is pinned for the C hooks and checked against the reference; the comparison tests
make both record the same call site and compare the results field by field.

The hooks are installed on ``interop._Handle`` by the ``install`` fixture (not through
``handletrace.install()``) with a context of real containers, and the originals are always
restored.
"""

from __future__ import annotations

import _thread
import functools
import gc
import itertools
import os
import struct
import sys
import threading
import time
import tracemalloc
import weakref
from types import CodeType
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.cognitiveservices.speech import audio, interop

import handletrace
from handletrace._core.config import Config
from handletrace._core.registry import CAUSE_COLUMN, COUNTER_COLUMNS, RELEASE_CAUSES
from handletrace._core.stacks import EMPTY_TRACEBACK, Traceback

speedups = pytest.importorskip(
    "handletrace._instrument._speedups",
    reason="the C accelerator handletrace._instrument._speedups is not built",
)

SDK_DIR = os.path.join(os.path.dirname(os.path.abspath(speechsdk.__file__)), "")


class FakeTracker:
    """What the hooks read per call from the tracker (the real one is ``_tracker.Tracker``)."""

    def __init__(self, config: Config) -> None:
        self.installed = True
        self.gc_thread: Any = None
        self.config = config


class Context:
    """The ``ctx`` of ``make_hooks``: real containers and callables that record their calls."""

    def __init__(self, config: Optional[Config] = None) -> None:
        self.tracker = FakeTracker(config if config is not None else Config(stack_depth=0))
        self.live: Dict[int, Tuple[Any, ...]] = {}
        self.counts: Dict[str, Any] = {}  # kind -> speedups.Counters (COUNTER_COLUMNS)
        self.del_column = CAUSE_COLUMN["del"]
        self.gc_column = CAUSE_COLUMN["gc"]
        self.seq_counter = itertools.count(1)
        self.unwrapped: Dict[int, Tuple[Any, str]] = {}
        self.interned: Dict[Any, Traceback] = {}
        self.active_threads = threading._active  # type: ignore[attr-defined]
        self.prefixes = (SDK_DIR,)
        self.empty_traceback = EMPTY_TRACEBACK
        self.handle_index = speedups.HandleIndex()  # id(_Handle) -> seq
        self.monotonic = time.monotonic
        self.errors: List[Tuple[str, BaseException]] = []
        self.kind_calls: List[Any] = []
        self.new_kinds: List[str] = []
        self.traceback_calls: List[Tuple[Any, Tuple[CodeType, ...], Tuple[int, ...], int]] = []

    def kind_for(self, release_fn: Any) -> str:
        self.kind_calls.append(release_fn)
        name: str = release_fn.__name__
        return name[: -len("_release")] if name.endswith("_release") else name

    def count_error(self, where: str, exc: BaseException) -> None:
        self.errors.append((where, exc))

    def new_kind(self, kind: str) -> Any:
        self.new_kinds.append(kind)
        counts = self.counts[kind] = speedups.Counters([0] * COUNTER_COLUMNS)
        return counts

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

    def make_traceback(
        self, key: Any, codes: Tuple[CodeType, ...], lastis: Tuple[int, ...], total: int
    ) -> Traceback:
        self.traceback_calls.append((key, codes, lastis, total))
        traceback = self.interned[key] = Traceback(codes, lastis, total)
        return traceback


class QuietContext(Context):
    """A context that keeps no record of the calls (for loops over thousands of handles)."""

    def kind_for(self, release_fn: Any) -> str:
        name: str = release_fn.__name__
        return name[: -len("_release")] if name.endswith("_release") else name


# -- the oracle: the pure-Python hooks, as specified ------------------------------------------


def reference_hooks(original_init: Any, original_del: Any, ctx: Any) -> Tuple[Any, Any]:
    """The hooks in Python, as specified for the C ones.

    One deliberate order: ``__del__`` reads ``tracker.gc_thread`` before it pops the entry
    (as ``_patching``'s Python hooks do), so an unreadable collecting thread leaves the
    entry and its counters consistent instead of popping it uncounted.
    """
    tracker = ctx.tracker
    live, counts_by_kind = ctx.live, ctx.counts
    unwrapped, interned, active_threads = ctx.unwrapped, ctx.interned, ctx.active_threads
    seq_counter, index, prefixes = ctx.seq_counter, ctx.handle_index, ctx.prefixes
    empty_traceback = ctx.empty_traceback

    def capture(depth: int, frame: Any) -> Any:
        while frame is not None and frame.f_code.co_filename.startswith(prefixes):
            frame = frame.f_back
        codes, lastis, taken = [], [], 0
        while frame is not None and taken < depth:
            codes.append(frame.f_code)
            lastis.append(frame.f_lasti)
            taken += 1
            frame = frame.f_back
        total = taken if frame is None else -1  # -1: the stack went deeper
        key = (total, *lastis, *map(id, codes))
        traceback = interned.get(key)
        if traceback is None:
            traceback = ctx.make_traceback(key, tuple(codes), tuple(lastis), total)
        return traceback

    def init_hook(
        self: Any, handle: Any, test_fn: Any, release_fn: Any, *args: Any, **kwargs: Any
    ) -> None:
        entry = unwrapped.get(id(release_fn))
        original_init(
            self, handle, test_fn, release_fn if entry is None else entry[0], *args, **kwargs
        )
        if not tracker.installed:
            return None
        try:
            kind = entry[1] if entry is not None else ctx.kind_for(release_fn)
            config = tracker.config
            kinds = config.kinds
            if kinds is not None and kind not in kinds:
                return None
            seq = next(seq_counter)
            frame = sys._getframe(1)
            ident = threading.get_ident()
            thread = active_threads.get(ident)
            sample, depth = config.stack_sample, config.stack_depth
            if sample and depth and (sample == 1 or seq % sample == 0):
                traceback = capture(depth, frame)
            else:
                traceback = empty_traceback
            record = (
                seq,
                kind,
                handle,
                frame.f_code,
                thread if thread is not None else ident,
                ctx.monotonic(),
                traceback,
            )
            live[seq] = record
            index[id(self)] = seq
            counts = counts_by_kind.get(kind)
            if counts is None:
                counts = ctx.new_kind(kind)
            counts[0] += 1
            counts[2] += 1
            if counts[2] > counts[3]:
                counts[3] = counts[2]
        except Exception as exc:
            try:
                ctx.count_error("_Handle.__init__", exc)
            except Exception:
                pass
        return None

    def del_hook(self: Any) -> None:
        try:
            if id(self) in index:
                gc_thread = tracker.gc_thread
                column = (
                    ctx.gc_column
                    if gc_thread is not None and gc_thread == threading.get_ident()
                    else ctx.del_column
                )
                seq = index.pop(id(self), None)
                entry = None if seq is None else live.pop(seq, None)
                if entry is not None:
                    counts = counts_by_kind.get(entry[1])
                    if counts is not None:
                        counts[1] += 1
                        counts[2] -= 1
                        counts[column] += 1
        except Exception as exc:
            try:
                ctx.count_error("_Handle.__del__", exc)
            except Exception:
                pass
        original_del(self)

    return init_hook, del_hook


def packed_key(total: int, codes: Tuple[CodeType, ...], lastis: Tuple[int, ...]) -> bytes:
    """The C hooks' intern key: the reference's facts (total depth, code object identities,
    offsets) packed into one bytes object (Py_ssize_t, pointers, C ints)."""
    count = len(codes)
    return struct.pack(f"n{count}P{count}i", total, *map(id, codes), *lastis)


MAKERS = {"c": speedups.make_hooks, "reference": reference_hooks}


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=sorted(MAKERS))
def impl(request: pytest.FixtureRequest) -> str:
    """Run the test with the C hooks, then with the Python reference."""
    return str(request.param)


Install = Callable[..., Context]


@pytest.fixture
def install() -> Iterator[Install]:
    """``install(ctx=None, impl="c")`` puts hooks on ``interop._Handle``; always undone."""
    original_init = interop._Handle.__dict__["__init__"]
    original_del = interop._Handle.__dict__["__del__"]
    assert type(original_init) is type(original_del) is type(lambda: None), "not the SDK's own"

    def install_(ctx: Optional[Context] = None, impl: str = "c") -> Context:
        ctx = ctx if ctx is not None else Context()
        init_hook, del_hook = MAKERS[impl](original_init, original_del, ctx)
        interop._Handle.__init__ = init_hook
        interop._Handle.__del__ = del_hook
        return ctx

    try:
        yield install_
    finally:
        interop._Handle.__init__ = original_init
        interop._Handle.__del__ = original_del


@pytest.fixture
def gc_thread_marker() -> Iterator[Callable[[Context], None]]:
    """``mark(ctx)``: ``ctx.tracker.gc_thread`` is this thread's ident while a cyclic
    collection runs (what ``_patching`` does with a ``gc.callbacks`` hook)."""
    contexts: List[Context] = []

    def callback(phase: str, info: Dict[str, int]) -> None:
        for ctx in contexts:
            ctx.tracker.gc_thread = threading.get_ident() if phase == "start" else None

    gc.callbacks.append(callback)
    try:
        yield contexts.append
    finally:
        gc.callbacks.remove(callback)


def audio_handles(config: audio.AudioConfig) -> Tuple[Any, Any]:
    """(the AudioConfig's own _Handle, its PropertyCollection's _Handle)."""
    return (
        vars(config)["_AudioConfig__handle"],
        vars(config)["_properties"]._PropertyCollection__handle,
    )


def native_audio_configs() -> int:
    counts = handletrace.analysis.read_native_counts()
    assert counts is not None, "the SDK's native handle table is not readable"
    return counts.types.get("ISpxAudioConfig", 0)


# -- the entry ---------------------------------------------------------------------------------


def test_an_audio_config_makes_two_entries_in_creation_order(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(impl=impl)
    config = audio.AudioConfig(filename=wav)
    own, properties = audio_handles(config)
    assert (ctx.handle_index[id(own)], ctx.handle_index[id(properties)]) == (1, 2)
    assert [(entry[0], entry[1]) for entry in ctx.live.values()] == [
        (1, "audio_config"),
        (2, "property_bag"),
    ]


def test_entry_fields(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(Config(stack_depth=4)), impl=impl)
    before = time.monotonic()
    config = audio.AudioConfig(filename=wav)
    after = time.monotonic()
    own, _ = audio_handles(config)
    entry = ctx.live[1]
    assert len(entry) == 7
    seq, kind, handle, code, thread, created, traceback = entry
    assert (seq, kind) == (1, "audio_config")
    assert handle is own.get()  # the ctypes handle itself
    # The code object of the SDK method that called _Handle(...)
    assert code is audio.AudioConfig.__init__.__code__
    assert thread is threading.current_thread()
    assert type(created) is float and before <= created <= after
    assert traceback is ctx.interned[ctx.traceback_calls[0][0]]
    assert traceback.origin.name == "test_entry_fields"
    assert len(traceback) == 4
    assert ctx.handle_index[id(own)] == seq  # the _Handle is found by this at report time


def test_entry_code_of_a_property_bag_is_the_property_collection_init(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(impl=impl)
    config = audio.AudioConfig(filename=wav)
    assert ctx.live[2][3] is speechsdk.properties.PropertyCollection.__init__.__code__
    del config


def test_c_and_reference_make_the_same_entries_for_the_same_call_site(
    install: Install, wav: str
) -> None:
    contexts = {}
    configs = []
    for impl in ("c", "reference"):  # one call site: the same frames and offsets for both
        contexts[impl] = install(Context(Config(stack_depth=16)), impl=impl)
        configs.append(audio.AudioConfig(filename=wav))
    c, reference = contexts["c"], contexts["reference"]
    assert list(c.live) == list(reference.live) == [1, 2]
    for seq in (1, 2):
        c_entry, reference_entry = c.live[seq], reference.live[seq]
        assert c_entry[:2] == reference_entry[:2]
        assert type(c_entry[2]) is type(reference_entry[2])
        assert c_entry[3] is reference_entry[3]
        assert c_entry[4] is reference_entry[4]
        assert c_entry[6].frames == reference_entry[6].frames
        assert c_entry[6].total_depth == reference_entry[6].total_depth
    assert (
        c.counters()
        == reference.counters()
        == {"audio_config": [1, 0, 1, 1], "property_bag": [1, 0, 1, 1]}
    )
    assert c.new_kinds == reference.new_kinds == ["audio_config", "property_bag"]


def test_c_stacks_have_the_references_codes_offsets_and_depth(install: Install, wav: str) -> None:
    contexts = {}
    configs = []
    for impl in ("c", "reference"):
        contexts[impl] = install(Context(Config(stack_depth=16)), impl=impl)
        configs.append(audio.AudioConfig(filename=wav))
    c_calls, reference_calls = contexts["c"].traceback_calls, contexts["reference"].traceback_calls
    # One stack: the audio config's and its property bag's are the same outside the SDK.
    assert len(c_calls) == len(reference_calls) == 1
    (c_key, *c_facts), (reference_key, *reference_facts) = c_calls[0], reference_calls[0]
    codes, lastis, total = reference_facts
    assert c_facts == reference_facts  # codes (the same objects), f_lasti values, total depth
    assert 0 < len(codes) <= 16 and total in (len(codes), -1)
    assert reference_key == (total, *lastis, *map(id, codes))
    assert c_key == packed_key(total, codes, lastis)


def test_f_lasti_of_the_c_stack_is_python_level_f_lasti(install: Install, wav: str) -> None:
    ctx = install(Context(Config(stack_depth=1)))
    frame = sys._getframe()
    creating_line = frame.f_lineno + 1
    config = audio.AudioConfig(filename=wav)
    later = frame.f_lasti
    ((_, codes, lastis, _),) = ctx.traceback_calls
    assert codes == (frame.f_code,)
    assert 0 <= lastis[0] < later
    assert ctx.live[1][6].origin.lineno == creating_line  # the line worked out from f_lasti
    del config


def test_thread_is_the_threading_thread_that_made_the_handle(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(impl=impl)
    made: List[Any] = []
    worker = threading.Thread(target=lambda: made.append(audio.AudioConfig(filename=wav)))
    worker.start()
    worker.join()
    assert ctx.live[1][4] is worker


def test_thread_unknown_to_threading_is_recorded_as_its_ident(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(impl=impl)
    made: List[Any] = []
    done = threading.Event()

    def run() -> None:
        made.append((_thread.get_ident(), audio.AudioConfig(filename=wav)))
        done.set()

    _thread.start_new_thread(run, ())
    assert done.wait(10)
    ident = made[0][0]
    assert ident not in threading._active  # type: ignore[attr-defined]
    assert ctx.live[1][4] == ident and type(ctx.live[1][4]) is int


def test_thread_changes_with_the_thread_making_handles(
    impl: str, install: Install, wav: str
) -> None:
    """The C hooks work the thread out once per thread state: never another thread's."""
    ctx = install(impl=impl)
    made: List[Any] = [audio.AudioConfig(filename=wav)]
    workers = [
        threading.Thread(target=lambda: made.append(audio.AudioConfig(filename=wav)))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
        worker.join()
    made.append(audio.AudioConfig(filename=wav))
    threads = [entry[4] for entry in ctx.live.values() if entry[1] == "audio_config"]
    assert threads == [threading.current_thread(), *workers, threading.current_thread()]


class SlottedTracker:
    """A tracker with slots, as ``_tracker.Tracker``: the C hooks read the slots directly."""

    __slots__ = ("installed", "gc_thread", "config")

    def __init__(self, config: Config) -> None:
        self.installed = True
        self.gc_thread: Any = None
        self.config = config


def slotted_context() -> Context:
    ctx = Context()
    ctx.tracker = SlottedTracker(ctx.tracker.config)  # type: ignore[assignment]
    return ctx


def test_a_tracker_with_slots_is_read_for_every_handle(
    impl: str, install: Install, wav: str, gc_thread_marker: Callable[[Context], None]
) -> None:
    ctx = install(slotted_context(), impl=impl)
    ctx.tracker.installed = False
    audio.AudioConfig(filename=wav)
    assert ctx.live == {}
    ctx.tracker.installed = True
    ctx.tracker.config = Config(stack_depth=0, kinds=frozenset({"property_bag"}))
    kept = audio.AudioConfig(filename=wav)
    assert [entry[1] for entry in ctx.live.values()] == ["property_bag"]
    del kept
    gc_thread_marker(ctx)
    cycle: List[Any] = [audio.AudioConfig(filename=wav)]
    cycle.append(cycle)
    del cycle
    gc.collect()
    assert ctx.by_cause == {"del": 1, "gc": 1} and ctx.errors == []


def test_an_empty_slot_of_the_tracker_is_an_error_counted(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(slotted_context(), impl=impl)
    del ctx.tracker.config
    made = audio.AudioConfig(filename=wav)
    assert ctx.live == {}
    assert [(where, type(exc)) for where, exc in ctx.errors] == [
        ("_Handle.__init__", AttributeError),
        ("_Handle.__init__", AttributeError),
    ]
    del made


def test_same_call_site_reuses_the_interned_stack(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(Config(stack_depth=8)), impl=impl)
    configs = [audio.AudioConfig(filename=wav) for _ in range(3)]
    assert len(ctx.traceback_calls) == 1
    assert len({id(entry[6]) for entry in ctx.live.values()}) == 1
    del configs


def test_many_call_sites_each_get_their_own_stack(impl: str, install: Install, wav: str) -> None:
    """More call sites than the C hooks remember (256): every stack is still its own site's,
    and a site met again is found again (in the cache or in ``interned``)."""
    ctx = install(QuietContext(Config(stack_depth=4, kinds=frozenset({"audio_config"}))), impl=impl)
    sites = []
    for number in range(600):
        namespace: Dict[str, Any] = {"audio": audio, "wav": wav}
        exec(compile(f"def site_{number}():\n    return audio.AudioConfig(filename=wav)\n",
                     f"<site {number}>", "exec"), namespace)  # fmt: skip
        sites.append(namespace[f"site_{number}"])
    made = [site() for _ in range(2) for site in sites]
    origins = [entry[6].origin.name for entry in ctx.live.values()]
    assert origins == [f"site_{number}" for number in range(600)] * 2
    first, again = list(ctx.live.values())[:600], list(ctx.live.values())[600:]
    assert all(a[6] is b[6] for a, b in zip(first, again))
    del made


def test_stack_deeper_than_the_stack_keeps_all_frames(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(Context(Config(stack_depth=256)), impl=impl)
    config = audio.AudioConfig(filename=wav)
    ((_, codes, _, total),) = ctx.traceback_calls
    assert total == len(codes) > 3
    del config


def test_depth_zero_records_the_empty_traceback(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(Config(stack_depth=0)), impl=impl)
    config = audio.AudioConfig(filename=wav)
    assert [entry[6] for entry in ctx.live.values()] == [EMPTY_TRACEBACK, EMPTY_TRACEBACK]
    assert all(entry[6] is ctx.empty_traceback for entry in ctx.live.values())
    assert ctx.traceback_calls == []
    del config


def test_sample_zero_records_the_empty_traceback(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(Config(stack_depth=16, stack_sample=0)), impl=impl)
    config = audio.AudioConfig(filename=wav)
    assert all(entry[6] is ctx.empty_traceback for entry in ctx.live.values())
    assert ctx.traceback_calls == []
    del config


def test_sample_one_in_n_takes_stacks_of_seqs_divisible_by_n(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(Context(Config(stack_depth=16, stack_sample=3)), impl=impl)
    configs = [audio.AudioConfig(filename=wav) for _ in range(4)]  # seqs 1..8
    with_stack = [seq for seq, entry in ctx.live.items() if entry[6] is not ctx.empty_traceback]
    assert with_stack == [3, 6]
    del configs


# -- what is recorded and what is not ------------------------------------------------------------


def test_counters_count_creation_and_peak(impl: str, install: Install, wav: str) -> None:
    ctx = install(impl=impl)
    first = audio.AudioConfig(filename=wav)
    second = audio.AudioConfig(filename=wav)
    del first
    assert ctx.counters() == {"audio_config": [2, 1, 1, 2], "property_bag": [2, 1, 1, 2]}
    assert ctx.by_cause == {"del": 2}
    del second


def test_release_by_reference_counting_has_cause_del(impl: str, install: Install, wav: str) -> None:
    ctx = install(impl=impl)
    native_before = native_audio_configs()
    config = audio.AudioConfig(filename=wav)
    del config
    assert ctx.live == {}
    assert ctx.counters() == {"audio_config": [1, 1, 0, 1], "property_bag": [1, 1, 0, 1]}
    assert ctx.by_cause == {"del": 2}
    assert native_audio_configs() == native_before  # the SDK's release ran


def test_release_inside_a_cyclic_collection_has_cause_gc(
    impl: str,
    install: Install,
    wav: str,
    no_gc: None,
    gc_thread_marker: Callable[[Context], None],
) -> None:
    ctx = install(impl=impl)
    gc_thread_marker(ctx)
    cycle: List[Any] = [audio.AudioConfig(filename=wav)]
    cycle.append(cycle)
    del cycle
    assert len(ctx.live) == 2
    gc.collect()
    assert ctx.live == {}
    assert ctx.by_cause == {"gc": 2}
    assert ctx.counters() == {"audio_config": [1, 1, 0, 1], "property_bag": [1, 1, 0, 1]}


def test_release_on_another_thread_during_a_collection_has_cause_del(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(impl=impl)
    config = audio.AudioConfig(filename=wav)
    ctx.tracker.gc_thread = threading.get_ident() + 1  # a collection running elsewhere
    del config
    assert ctx.by_cause == {"del": 2}


def test_not_installed_records_nothing(impl: str, install: Install, wav: str) -> None:
    ctx = install(impl=impl)
    ctx.tracker.installed = False
    config = audio.AudioConfig(filename=wav)
    assert ctx.live == {} and ctx.counters() == {}
    assert [id(handle) in ctx.handle_index for handle in audio_handles(config)] == [False, False]
    assert next(ctx.seq_counter) == 1
    assert ctx.kind_calls == []
    del config
    assert ctx.by_cause == {}


def test_installed_is_read_for_every_handle(impl: str, install: Install, wav: str) -> None:
    ctx = install(impl=impl)
    ctx.tracker.installed = False
    untracked = audio.AudioConfig(filename=wav)
    ctx.tracker.installed = True
    tracked = audio.AudioConfig(filename=wav)
    assert [entry[2] for entry in ctx.live.values()] == [h.get() for h in audio_handles(tracked)]
    del untracked


def test_kinds_filter_records_only_those_kinds(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(Config(kinds=frozenset({"property_bag"}))), impl=impl)
    config = audio.AudioConfig(filename=wav)
    own, properties = audio_handles(config)
    assert [(seq, entry[1]) for seq, entry in ctx.live.items()] == [(1, "property_bag")]
    assert id(own) not in ctx.handle_index and ctx.handle_index[id(properties)] == 1
    assert ctx.counters() == {"property_bag": [1, 0, 1, 1]}


def test_a_new_config_object_is_read_again(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(Config(kinds=frozenset({"property_bag"}))), impl=impl)
    first = audio.AudioConfig(filename=wav)
    ctx.tracker.config = Config(kinds=frozenset({"audio_config"}), stack_depth=0)
    second = audio.AudioConfig(filename=wav)
    assert [entry[1] for entry in ctx.live.values()] == ["property_bag", "audio_config"]
    del first, second


def wrapped_release(ctx: Any) -> Tuple[Any, Any, List[Any]]:
    """A release function known to the hooks as handletrace's wrapper of ``real`` (kind
    ``recognizer``); ``released`` collects what ``real`` releases."""
    released: List[Any] = []

    def real(handle: Any) -> None:
        released.append(handle)

    def wrapper(handle: Any) -> None:
        raise AssertionError("the _Handle must keep the real release function")

    ctx.unwrapped[id(wrapper)] = (real, "recognizer")
    return wrapper, real, released


def test_release_function_known_as_a_wrapper_is_replaced_by_the_real_one(
    impl: str, install: Install
) -> None:
    ctx = install(impl=impl)
    wrapper, real, released = wrapped_release(ctx)
    made = interop._Handle("native", None, wrapper)
    assert made._Handle__release_fn is real
    assert ctx.live[1][1] == "recognizer" and ctx.kind_calls == []
    del made
    assert released == ["native"]
    assert ctx.counters() == {"recognizer": [1, 1, 0, 1]}


def test_kind_for_is_given_the_release_function(impl: str, install: Install, wav: str) -> None:
    ctx = install(impl=impl)
    config = audio.AudioConfig(filename=wav)
    lib = interop._sdk_lib
    assert ctx.kind_calls == [lib.audio_config_release, lib.property_bag_release]
    del config


def test_new_kind_is_asked_once_per_kind(impl: str, install: Install, wav: str) -> None:
    ctx = install(impl=impl)
    configs = [audio.AudioConfig(filename=wav) for _ in range(3)]
    assert ctx.new_kinds == ["audio_config", "property_bag"]
    del configs


def test_keyword_arguments_are_recorded_like_positional_ones(impl: str, install: Install) -> None:
    ctx = install(impl=impl)
    wrapper, real, released = wrapped_release(ctx)
    made = interop._Handle("native", test_fn=None, release_fn=wrapper)
    assert made._Handle__release_fn is real
    assert [(entry[1], entry[2]) for entry in ctx.live.values()] == [("recognizer", "native")]
    del made
    assert released == ["native"]


# -- errors ------------------------------------------------------------------------------------


def test_original_init_exception_propagates_unchanged(impl: str, install: Install) -> None:
    original_init = interop._Handle.__dict__["__init__"]
    probe = interop._Handle.__new__(interop._Handle)
    with pytest.raises(TypeError) as expected:
        original_init(probe, None, None, print, "extra")
    original_init(probe, None, None, lambda handle: None)  # so that its __del__ can run
    ctx = install(impl=impl)
    made = interop._Handle.__new__(interop._Handle)
    with pytest.raises(TypeError) as raised:
        interop._Handle.__init__(made, None, None, print, "extra")
    assert str(raised.value) == str(expected.value)
    assert ctx.live == {} and ctx.errors == [] and id(made) not in ctx.handle_index
    made.__init__(None, None, lambda handle: None)  # so that its __del__ can run


def test_kind_for_failure_is_counted_and_the_object_still_made(
    impl: str, install: Install, wav: str
) -> None:
    ctx = Context()
    failure = RuntimeError("kind_for failed")

    def kind_for(release_fn: Any) -> str:
        raise failure

    ctx.kind_for = kind_for  # type: ignore[method-assign]
    install(ctx, impl=impl)
    native_before = native_audio_configs()
    config = audio.AudioConfig(filename=wav)
    assert ctx.errors == [("_Handle.__init__", failure), ("_Handle.__init__", failure)]
    assert ctx.live == {} and ctx.counters() == {}
    assert native_audio_configs() == native_before + 1
    assert id(audio_handles(config)[0]) not in ctx.handle_index


def test_make_traceback_failure_is_counted_and_nothing_recorded(
    impl: str, install: Install, wav: str
) -> None:
    ctx = Context(Config(stack_depth=16))
    failure = ValueError("make_traceback failed")

    def make_traceback(*args: Any) -> Any:
        raise failure

    ctx.make_traceback = make_traceback  # type: ignore[method-assign]
    install(ctx, impl=impl)
    config = audio.AudioConfig(filename=wav)
    assert [where for where, _ in ctx.errors] == ["_Handle.__init__", "_Handle.__init__"]
    assert all(exc is failure for _, exc in ctx.errors)
    assert ctx.live == {} and ctx.counters() == {}
    del config
    assert ctx.by_cause == {}  # a release without an entry counts nothing


def test_error_exception_has_its_traceback(impl: str, install: Install, wav: str) -> None:
    ctx = Context()

    def kind_for(release_fn: Any) -> str:
        raise RuntimeError("kind_for failed")

    ctx.kind_for = kind_for  # type: ignore[method-assign]
    install(ctx, impl=impl)
    config = audio.AudioConfig(filename=wav)
    assert ctx.errors[0][1].__traceback__ is not None
    del config


def test_count_error_failure_is_swallowed(impl: str, install: Install, wav: str) -> None:
    ctx = Context()

    def kind_for(release_fn: Any) -> str:
        raise RuntimeError("kind_for failed")

    def count_error(where: str, exc: BaseException) -> None:
        raise RuntimeError("count_error failed")

    ctx.kind_for = kind_for  # type: ignore[method-assign]
    ctx.count_error = count_error  # type: ignore[method-assign]
    install(ctx, impl=impl)
    config = audio.AudioConfig(filename=wav)
    assert ctx.live == {}
    del config


def test_del_failure_is_counted_and_the_native_release_still_happens(
    impl: str, install: Install, wav: str, unraisable: List[Any]
) -> None:
    ctx = install(impl=impl)
    config = audio.AudioConfig(filename=wav)
    native_before = native_audio_configs()

    class UnreadableThreadId:
        """The collecting thread cannot be read (as an int) or compared."""

        def __eq__(self, other: object) -> bool:
            raise RuntimeError("unreadable")

        __hash__ = None  # type: ignore[assignment]

    ctx.tracker.gc_thread = UnreadableThreadId()
    del config
    assert native_audio_configs() == native_before - 1
    assert unraisable == []
    assert [where for where, _ in ctx.errors] == ["_Handle.__del__", "_Handle.__del__"]
    assert len(ctx.live) == 2  # nothing popped uncounted: entries and counters still agree
    assert ctx.counters() == {"audio_config": [1, 0, 1, 1], "property_bag": [1, 0, 1, 1]}


def test_del_without_a_seq_counts_nothing(impl: str, install: Install) -> None:
    ctx = install(impl=impl)
    ctx.tracker.installed = False
    made = interop._Handle(None, None, lambda handle: None)
    del made
    assert ctx.by_cause == {} and ctx.errors == []


def test_a_release_while_an_exception_propagates_leaves_that_exception_intact(
    impl: str, install: Install, wav: str, unraisable: List[Any]
) -> None:
    ctx = install(impl=impl)

    def key(number: int) -> Any:
        if number == 1:
            return audio.AudioConfig(filename=wav)
        raise LookupError("the exception in flight")

    # sorted() drops the keys made so far with the key function's exception set: the
    # AudioConfig's handles are released (their __del__ hooks run) while it propagates.
    with pytest.raises(LookupError, match="the exception in flight"):
        sorted([1, 2], key=key)
    assert ctx.live == {}
    assert ctx.by_cause == {"del": 2}
    assert ctx.errors == [] and unraisable == []


# -- the hook objects ----------------------------------------------------------------------------


@pytest.fixture
def c_hooks() -> Tuple[Any, Any]:
    """A pair of C hooks, not installed anywhere."""
    return speedups.make_hooks(  # type: ignore[no-any-return]
        interop._Handle.__dict__["__init__"], interop._Handle.__dict__["__del__"], Context()
    )


def test_update_wrapper_copies_the_originals_metadata(c_hooks: Tuple[Any, Any]) -> None:
    init_hook, _ = c_hooks
    original = interop._Handle.__dict__["__init__"]
    assert functools.update_wrapper(init_hook, original) is init_hook
    assert init_hook.__wrapped__ is original
    assert init_hook.__name__ == "__init__"
    assert init_hook.__qualname__ == "_Handle.__init__"
    assert init_hook.__doc__ == original.__doc__
    assert init_hook.__module__ == original.__module__


def test_repr_names_the_original(c_hooks: Tuple[Any, Any]) -> None:
    _, del_hook = c_hooks
    assert repr(del_hook) == f"<handletrace C hook for {interop._Handle.__dict__['__del__']!r}>"


def test_through_the_class_the_hook_is_itself(install: Install) -> None:
    install()
    hook = interop._Handle.__dict__["__init__"]
    assert interop._Handle.__init__ is hook
    assert hook.__get__(None, interop._Handle) is hook


def test_through_an_instance_the_hook_is_a_bound_method(install: Install) -> None:
    ctx = install()
    made = interop._Handle(None, None, lambda handle: None)
    bound = made.__init__
    assert bound.__self__ is made and bound.__func__ is interop._Handle.__dict__["__init__"]
    bound(None, None, lambda handle: None)  # a second __init__: a second entry
    assert list(ctx.live) == [1, 2]


def test_explicit_unbound_call_records_the_handle(install: Install) -> None:
    ctx = install()
    made = interop._Handle.__new__(interop._Handle)
    interop._Handle.__init__(made, "native", None, lambda handle: None)
    assert made.get() == "native"
    assert [entry[2] for entry in ctx.live.values()] == ["native"]


def test_the_hooks_are_tracked_by_the_collector(c_hooks: Tuple[Any, Any]) -> None:
    init_hook, del_hook = c_hooks
    assert gc.is_tracked(init_hook) and gc.is_tracked(del_hook)
    referents = gc.get_referents(init_hook)
    assert interop._Handle.__dict__["__init__"] in referents
    assert any(type(r) is FakeTracker for r in referents)


def test_a_cycle_through_the_hooks_is_collected(no_gc: None) -> None:
    ctx = Context()
    hooks = speedups.make_hooks(
        interop._Handle.__dict__["__init__"], interop._Handle.__dict__["__del__"], ctx
    )
    ctx.tracker.hooks = hooks  # type: ignore[attr-defined]  # tracker -> hooks -> tracker
    tracker_alive = weakref.ref(ctx.tracker)
    del ctx, hooks
    assert tracker_alive() is not None
    gc.collect()
    assert tracker_alive() is None


def test_make_hooks_rejects_a_context_with_the_wrong_containers() -> None:
    ctx = Context()
    ctx.live = []  # type: ignore[assignment]
    with pytest.raises(TypeError, match="make_hooks: ctx containers must be dicts"):
        speedups.make_hooks(
            interop._Handle.__dict__["__init__"], interop._Handle.__dict__["__del__"], ctx
        )


def test_make_hooks_reports_a_missing_context_attribute() -> None:
    ctx = Context()
    del ctx.monotonic
    with pytest.raises(AttributeError, match="monotonic"):
        speedups.make_hooks(
            interop._Handle.__dict__["__init__"], interop._Handle.__dict__["__del__"], ctx
        )


def test_a_monotonic_other_than_time_monotonic_is_called(install: Install, wav: str) -> None:
    ctx = Context()
    ctx.monotonic = lambda: 12.5  # type: ignore[method-assign]
    install(ctx)
    config = audio.AudioConfig(filename=wav)
    assert [entry[5] for entry in ctx.live.values()] == [12.5, 12.5]
    del config


# -- pop_record ------------------------------------------------------------------------------------


FORCED, DIRECT = CAUSE_COLUMN["forced"], CAUSE_COLUMN["direct"]


def row(*values: int) -> Any:
    """Counters: the given leading values, zeros after."""
    return speedups.Counters([*values] + [0] * (COUNTER_COLUMNS - len(values)))


def test_pop_record_pops_the_entry_and_counts_the_release_in_its_cause_column() -> None:
    entry = (5, "recognizer", None)
    live = {5: entry}
    counts = {"recognizer": row(1, 0, 1, 1)}
    counts["recognizer"][FORCED] = 2
    assert speedups.pop_record(live, counts, 5, FORCED) is entry
    assert live == {}
    expected = [1, 1, 0, 1] + [0] * (COUNTER_COLUMNS - 4)
    expected[FORCED] = 3
    assert counts["recognizer"] == expected


def test_pop_record_of_an_unknown_seq_returns_none_and_counts_nothing() -> None:
    counts = {"recognizer": row(1, 1, 0, 1)}
    assert speedups.pop_record({}, counts, 5, DIRECT) is None
    assert counts == {"recognizer": row(1, 1, 0, 1)}


def test_pop_record_of_a_kind_without_counters_pops_and_counts_nothing() -> None:
    counts: Dict[str, Any] = {}
    live = {7: (7, "synthesizer")}
    assert speedups.pop_record(live, counts, 7, DIRECT) == (7, "synthesizer")
    assert live == {} and counts == {}


def test_pop_record_never_counts_a_release_twice() -> None:
    live = {5: (5, "recognizer")}
    counts = {"recognizer": row(1, 0, 1, 1)}
    speedups.pop_record(live, counts, 5, FORCED)
    assert speedups.pop_record(live, counts, 5, FORCED) is None
    assert list(counts["recognizer"])[:4] == [1, 1, 0, 1] and counts["recognizer"][FORCED] == 1


def test_pop_record_and_the_del_hook_share_the_counters(install: Install, wav: str) -> None:
    ctx = install()
    config = audio.AudioConfig(filename=wav)
    speedups.pop_record(ctx.live, ctx.counts, 1, FORCED)
    del config
    assert ctx.counters() == {"audio_config": [1, 1, 0, 1], "property_bag": [1, 1, 0, 1]}
    assert ctx.by_cause == {"forced": 1, "del": 1}


def test_pop_record_rejects_arguments_that_are_not_dicts() -> None:
    with pytest.raises(TypeError):
        speedups.pop_record([], {}, 1, FORCED)


def test_pop_record_rejects_a_column_among_the_first_four() -> None:
    with pytest.raises(ValueError, match="cause columns come after the first 4"):
        speedups.pop_record({}, {}, 1, 2)


# -- Counters ----------------------------------------------------------------------------------


def test_counters_index_like_a_list_of_ints() -> None:
    counters = speedups.Counters([3, 0, 7])
    counters[1] += 2
    counters[-1] = 2**40
    assert (len(counters), list(counters), counters[0], counters[-1]) == (
        3,
        [3, 2, 2**40],
        3,
        2**40,
    )


def test_counters_equal_lists_tuples_and_counters_with_the_same_values() -> None:
    counters = speedups.Counters([1, 2])
    assert counters == [1, 2] and counters == (1, 2) and counters == speedups.Counters([1, 2])
    assert counters != [1, 2, 0] and counters != [2, 1] and counters != "12"


def test_counters_say_what_is_wrong() -> None:
    counters = speedups.Counters([0])
    with pytest.raises(IndexError):
        counters[1]
    with pytest.raises(IndexError):
        counters[1] = 0
    with pytest.raises(TypeError):
        counters[0] = "1"
    with pytest.raises(TypeError):
        del counters[0]
    with pytest.raises(TypeError):
        speedups.Counters(["1"])
    with pytest.raises(TypeError):
        hash(counters)
    assert repr(counters) == "Counters([0])"


def test_new_kind_counters_that_are_not_counters_are_an_error(install: Install, wav: str) -> None:
    ctx = Context()
    ctx.new_kind = lambda kind: [0] * COUNTER_COLUMNS  # type: ignore[method-assign]
    install(ctx)
    audio.AudioConfig(filename=wav)
    assert [(where, type(exc)) for where, exc in ctx.errors] == [
        ("_Handle.__init__", TypeError),
        ("_Handle.__init__", TypeError),
    ]
    assert ctx.live == {}


# -- references and memory -----------------------------------------------------------------------


def test_reference_counts_of_what_the_hooks_touch_do_not_change(install: Install, wav: str) -> None:
    original_init = interop._Handle.__dict__["__init__"]
    original_del = interop._Handle.__dict__["__del__"]
    ctx = install(QuietContext(Config(stack_depth=16, kinds=frozenset({"audio_config"}))))
    config = ctx.tracker.config
    ctx.tracker.gc_thread = threading.get_ident() + 1  # read by every __del__ hook
    watched = {
        "original init": original_init,
        "original del": original_del,
        "release function": interop._sdk_lib.audio_config_release,
        "config": config,
        "kinds": config.kinds,
        "tracker": ctx.tracker,
        "collecting thread": ctx.tracker.gc_thread,
        "empty traceback": ctx.empty_traceback,
        "handle index": ctx.handle_index,
        "init hook": interop._Handle.__dict__["__init__"],
        "del hook": interop._Handle.__dict__["__del__"],
        "live": ctx.live,
        "counts": ctx.counts,
    }
    for _ in range(100):  # warm up: interned stack, kinds, counters
        audio.AudioConfig(filename=wav)
    before = {name: sys.getrefcount(obj) for name, obj in watched.items()}
    for _ in range(2000):
        audio.AudioConfig(filename=wav)
    after = {name: sys.getrefcount(obj) for name, obj in watched.items()}
    assert after == before
    assert ctx.live == {}
    assert ctx.counters()["audio_config"] == [2100, 2100, 0, 1]


def test_traced_memory_stays_flat_over_many_handles(install: Install, wav: str) -> None:
    ctx = install(QuietContext(Config(stack_depth=16)))

    def churn(times: int) -> None:
        for _ in range(times):
            audio.AudioConfig(filename=wav)

    churn(200)
    gc.collect()
    tracemalloc.start()
    try:
        churn(200)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        churn(5000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert ctx.live == {}
    assert grown < 16 * 1024  # 10,000 handles: any per-handle leak would be far above this


def test_collections_inside_the_hooks_keep_entries_and_counters_consistent(
    impl: str,
    install: Install,
    wav: str,
    gc_thread_marker: Callable[[Context], None],
) -> None:
    """With a collection at nearly every allocation, __del__ hooks run inside the __init__
    hooks (the hooks allocate first and then mutate, so nothing is lost or counted twice)."""
    ctx = install(QuietContext(Config(stack_depth=16, stack_sample=2)), impl=impl)
    gc_thread_marker(ctx)
    threshold = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    try:
        for _ in range(300):
            cycle: List[Any] = [audio.AudioConfig(filename=wav)]
            cycle.append(cycle)
            del cycle
    finally:
        gc.set_threshold(*threshold)
    gc.collect()
    assert ctx.live == {} and ctx.errors == []
    assert {kind: counts[:3] for kind, counts in ctx.counters().items()} == {
        "audio_config": [300, 300, 0],
        "property_bag": [300, 300, 0],
    }
    assert sum(ctx.by_cause.values()) == 600 and ctx.by_cause["gc"] > 0


# -- HandleIndex -------------------------------------------------------------------------------


def test_handle_index_is_a_mapping_of_addresses() -> None:
    index = speedups.HandleIndex({16: 1, 32: 2})
    index[48] = 3
    assert (len(index), index[16], index.get(32), index.get(64), index.get(64, -1)) == (
        3,
        1,
        2,
        None,
        -1,
    )
    assert 48 in index and 64 not in index
    assert sorted(index.items()) == [(16, 1), (32, 2), (48, 3)]
    assert index.pop(16) == 1 and index.pop(16) is None and index.pop(16, -1) == -1
    del index[32]
    with pytest.raises(KeyError):
        del index[32]
    with pytest.raises(KeyError):
        index[32]
    assert index.discard_values([3, 7]) == 1 and len(index) == 0
    index[8] = 9
    index.clear()
    assert index.items() == [] and len(index) == 0


def test_handle_index_rejects_what_is_no_address() -> None:
    index = speedups.HandleIndex()
    with pytest.raises(ValueError, match="no object's address"):
        index[0] = 1
    with pytest.raises(TypeError):
        index["16"] = 1
    with pytest.raises(TypeError):
        speedups.HandleIndex([(16, 1, 2)])
    with pytest.raises(TypeError):
        hash(index)


def test_handle_index_agrees_with_a_dict_over_many_changes() -> None:
    """Inserts, replacements and removals (which shift probe runs back) at random addresses,
    clustered so that probe runs are long and wrap around the table."""
    import random

    rng = random.Random(20261129)
    index, oracle = speedups.HandleIndex(), {}  # type: Any, Dict[int, int]
    addresses = [16 * rng.randrange(1, 600) for _ in range(300)] + [16 * n for n in range(1, 200)]
    for step in range(20000):
        address = rng.choice(addresses)
        action = rng.random()
        if action < 0.5:
            index[address] = oracle[address] = step
        elif action < 0.9:
            assert index.pop(address) == oracle.pop(address, None)
        else:
            gone = {rng.randrange(step + 1) for _ in range(20)}
            removed = [a for a, v in oracle.items() if v in gone]
            assert index.discard_values(gone) == len(removed)
            for a in removed:
                del oracle[a]
        if step % 997 == 0:
            assert sorted(index.items()) == sorted(oracle.items())
    assert sorted(index.items()) == sorted(oracle.items()) and len(index) == len(oracle)


def test_handle_index_values_are_seen_by_the_collector() -> None:
    class Marker:
        pass

    index = speedups.HandleIndex()
    marker = Marker()
    index[16] = [index, marker]  # a cycle through the index
    alive = weakref.ref(marker)
    del index, marker
    gc.collect()
    assert alive() is None
