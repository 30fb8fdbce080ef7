"""The ``_Handle`` hooks, the per-handle hot path, on the real SDK ``interop._Handle``: the
same cases run against both implementations (``impl``: ``"c"``, the C accelerator's
``_speedups.make_hooks``, and ``"python"``, ``hooks.python_hooks``, which is the
specification): same entries (``HANDLE_ENTRY``), stacks, counters (``COUNTER_NAMES``),
release causes and errors.

The hooks are put on ``interop._Handle`` by the ``install`` fixture (not through
``handletrace.install()``) with a ``HookContext`` over a real registry's containers, and the
originals are always restored. (tests/test_speedups.py: the C module's own types and its
agreement with the Python definitions.)
"""

from __future__ import annotations

import _thread
import functools
import gc
import struct
import sys
import threading
import time
import tracemalloc
import weakref
from types import CodeType
from typing import Any, Callable, Dict, Iterator, List, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.cognitiveservices.speech import audio, interop

import handletrace
from handletrace._core import registry
from handletrace._core.config import Config
from handletrace._core.registry import (
    CAUSE_COLUMN,
    COUNTER_COLUMNS,
    ENTRY_CODE,
    ENTRY_HANDLE,
    ENTRY_KIND,
    ENTRY_MONOTONIC,
    ENTRY_SEQ,
    ENTRY_THREAD,
    ENTRY_TRACEBACK,
    HANDLE_ENTRY_LEN,
)
from handletrace._core.stacks import EMPTY_TRACEBACK

from .hook_context import (
    IMPLEMENTATIONS,
    Context,
    Install,
    QuietContext,
    hooks_on_handle,
    require,
    slotted_context,
    speedups,
)

# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> str:
    """Run the test with the C hooks, then with the Python hooks (the specification)."""
    require(request.param)
    return str(request.param)


@pytest.fixture
def install() -> Iterator[Install]:
    """``install(ctx)`` puts ``ctx.impl``'s hooks on ``interop._Handle``; always undone."""
    with hooks_on_handle() as install_:
        yield install_


@pytest.fixture
def gc_thread_marker() -> Iterator[Callable[[Context], None]]:
    """``mark(ctx)``: ``ctx.tracker.gc_thread`` is this thread's ident while a cyclic
    collection runs (what ``install()`` does with a ``gc.callbacks`` hook)."""
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


def packed_key(total: int, codes: Tuple[CodeType, ...], lastis: Tuple[int, ...]) -> bytes:
    """The C hooks' intern key: the Python hooks' facts (total depth, code object
    identities, offsets) packed into one bytes object (Py_ssize_t, pointers, C ints)."""
    count = len(codes)
    return struct.pack(f"n{count}P{count}i", total, *map(id, codes), *lastis)


# -- the entry ---------------------------------------------------------------------------------


def test_an_audio_config_makes_two_entries_in_creation_order(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(Context(impl))
    config = audio.AudioConfig(filename=wav)
    own, properties = audio_handles(config)
    assert (ctx.handle_index[id(own)], ctx.handle_index[id(properties)]) == (1, 2)
    assert [(entry[ENTRY_SEQ], entry[ENTRY_KIND]) for entry in ctx.live.values()] == [
        (1, "audio_config"),
        (2, "property_bag"),
    ]


def test_entry_fields(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl, Config(stack_depth=4)))
    before = time.monotonic()
    config = audio.AudioConfig(filename=wav)
    after = time.monotonic()
    own, _ = audio_handles(config)
    entry = ctx.live[1]
    assert len(entry) == HANDLE_ENTRY_LEN
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


def test_a_future_entry_has_seq_and_kind_where_a_handle_entry_has_them() -> None:
    """The release counting reads the kind of either kind of entry at ENTRY_KIND."""
    assert registry.FUTURE_ENTRY[:2] == registry.HANDLE_ENTRY[:2] == ("seq", "kind")
    assert len(registry.FUTURE_ENTRY) != HANDLE_ENTRY_LEN  # the length tells them apart


def test_entry_code_of_a_property_bag_is_the_property_collection_init(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(Context(impl))
    config = audio.AudioConfig(filename=wav)
    assert ctx.live[2][ENTRY_CODE] is speechsdk.properties.PropertyCollection.__init__.__code__
    del config


def test_c_and_python_hooks_make_the_same_entries_for_the_same_call_site(
    install: Install, wav: str
) -> None:
    require("c")
    contexts = {}
    configs = []
    for impl in ("c", "python"):  # one call site: the same frames and offsets for both
        contexts[impl] = install(Context(impl, Config(stack_depth=16)))
        configs.append(audio.AudioConfig(filename=wav))
    c, reference = contexts["c"], contexts["python"]
    assert list(c.live) == list(reference.live) == [1, 2]
    for seq in (1, 2):
        c_entry, reference_entry = c.live[seq], reference.live[seq]
        assert c_entry[:2] == reference_entry[:2]
        assert type(c_entry[ENTRY_HANDLE]) is type(reference_entry[ENTRY_HANDLE])
        assert c_entry[ENTRY_CODE] is reference_entry[ENTRY_CODE]
        assert c_entry[ENTRY_THREAD] is reference_entry[ENTRY_THREAD]
        assert c_entry[ENTRY_TRACEBACK].frames == reference_entry[ENTRY_TRACEBACK].frames
        assert c_entry[ENTRY_TRACEBACK].total_depth == reference_entry[ENTRY_TRACEBACK].total_depth
    assert (
        c.counters()
        == reference.counters()
        == {"audio_config": [1, 0, 1, 1], "property_bag": [1, 0, 1, 1]}
    )
    assert c.new_kinds == reference.new_kinds == ["audio_config", "property_bag"]


def test_c_stacks_have_the_python_hooks_codes_offsets_and_depth(install: Install, wav: str) -> None:
    require("c")
    contexts = {}
    configs = []
    for impl in ("c", "python"):
        contexts[impl] = install(Context(impl, Config(stack_depth=16)))
        configs.append(audio.AudioConfig(filename=wav))
    c_calls, reference_calls = contexts["c"].traceback_calls, contexts["python"].traceback_calls
    # One stack: the audio config's and its property bag's are the same outside the SDK.
    assert len(c_calls) == len(reference_calls) == 1
    (c_key, *c_facts), (reference_key, *reference_facts) = c_calls[0], reference_calls[0]
    codes, lastis, total = reference_facts
    assert c_facts == reference_facts  # codes (the same objects), f_lasti values, total depth
    assert 0 < len(codes) <= 16 and total in (len(codes), -1)
    assert reference_key == (total, *lastis, *map(id, codes))
    assert c_key == packed_key(total, codes, lastis)


def test_f_lasti_of_a_stack_is_python_level_f_lasti(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl, Config(stack_depth=1)))
    frame = sys._getframe()
    creating_line = frame.f_lineno + 1
    config = audio.AudioConfig(filename=wav)
    later = frame.f_lasti
    ((_, codes, lastis, _),) = ctx.traceback_calls
    assert codes == (frame.f_code,)
    assert 0 <= lastis[0] < later
    assert (
        ctx.live[1][ENTRY_TRACEBACK].origin.lineno == creating_line
    )  # the line worked out from f_lasti
    del config


def test_thread_is_the_threading_thread_that_made_the_handle(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(Context(impl))
    made: List[Any] = []
    worker = threading.Thread(target=lambda: made.append(audio.AudioConfig(filename=wav)))
    worker.start()
    worker.join()
    assert ctx.live[1][ENTRY_THREAD] is worker


def test_thread_unknown_to_threading_is_recorded_as_its_ident(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(Context(impl))
    made: List[Any] = []
    done = threading.Event()

    def run() -> None:
        made.append((_thread.get_ident(), audio.AudioConfig(filename=wav)))
        done.set()

    _thread.start_new_thread(run, ())
    assert done.wait(10)
    ident = made[0][0]
    assert ident not in threading._active  # type: ignore[attr-defined]
    assert ctx.live[1][ENTRY_THREAD] == ident and type(ctx.live[1][ENTRY_THREAD]) is int


def test_thread_changes_with_the_thread_making_handles(
    impl: str, install: Install, wav: str
) -> None:
    """The C hooks work the thread out once per thread state: never another thread's."""
    ctx = install(Context(impl))
    made: List[Any] = [audio.AudioConfig(filename=wav)]
    workers = [
        threading.Thread(target=lambda: made.append(audio.AudioConfig(filename=wav)))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
        worker.join()
    made.append(audio.AudioConfig(filename=wav))
    threads = [
        entry[ENTRY_THREAD] for entry in ctx.live.values() if entry[ENTRY_KIND] == "audio_config"
    ]
    assert threads == [threading.current_thread(), *workers, threading.current_thread()]


def test_a_tracker_with_slots_is_read_for_every_handle(
    impl: str, install: Install, wav: str, gc_thread_marker: Callable[[Context], None]
) -> None:
    ctx = install(slotted_context(impl))
    ctx.tracker.installed = False
    audio.AudioConfig(filename=wav)
    assert ctx.live == {}
    ctx.tracker.installed = True
    ctx.tracker.config = Config(stack_depth=0, kinds=frozenset({"property_bag"}))
    kept = audio.AudioConfig(filename=wav)
    assert [entry[ENTRY_KIND] for entry in ctx.live.values()] == ["property_bag"]
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
    ctx = install(slotted_context(impl))
    del ctx.tracker.config
    made = audio.AudioConfig(filename=wav)
    assert ctx.live == {}
    assert [(where, type(exc)) for where, exc in ctx.errors] == [
        ("_Handle.__init__", AttributeError),
        ("_Handle.__init__", AttributeError),
    ]
    del made


def test_same_call_site_reuses_the_interned_stack(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl, Config(stack_depth=8)))
    configs = [audio.AudioConfig(filename=wav) for _ in range(3)]
    assert len(ctx.traceback_calls) == 1
    assert len({id(entry[ENTRY_TRACEBACK]) for entry in ctx.live.values()}) == 1
    del configs


def test_many_call_sites_each_get_their_own_stack(impl: str, install: Install, wav: str) -> None:
    """More call sites than the C hooks remember (256): every stack is still its own site's,
    and a site met again is found again (in the cache or in ``interned``)."""
    ctx = install(QuietContext(impl, Config(stack_depth=4, kinds=frozenset({"audio_config"}))))
    sites = []
    for number in range(600):
        namespace: Dict[str, Any] = {"audio": audio, "wav": wav}
        exec(compile(f"def site_{number}():\n    return audio.AudioConfig(filename=wav)\n",
                     f"<site {number}>", "exec"), namespace)  # fmt: skip
        sites.append(namespace[f"site_{number}"])
    made = [site() for _ in range(2) for site in sites]
    origins = [entry[ENTRY_TRACEBACK].origin.name for entry in ctx.live.values()]
    assert origins == [f"site_{number}" for number in range(600)] * 2
    first, again = list(ctx.live.values())[:600], list(ctx.live.values())[600:]
    assert all(a[ENTRY_TRACEBACK] is b[ENTRY_TRACEBACK] for a, b in zip(first, again))
    del made


def define_maker(filename: str, wav: str) -> Callable[[], Any]:
    """A function ``make()`` that creates an AudioConfig, as if defined in ``filename``."""
    namespace: Dict[str, Any] = {"audio": audio, "wav": wav}
    source = "def make():\n    return audio.AudioConfig(filename=wav)\n"
    exec(compile(source, filename, "exec"), namespace)
    return namespace["make"]  # type: ignore[no-any-return]


def test_frames_of_ignored_files_are_trimmed_and_their_neighbours_kept(
    impl: str, install: Install, wav: str
) -> None:
    """A frame of one of ignored_files (handletrace's machinery) is not the user's; a frame
    of another file in the same directory (the demo's example service) is."""
    ctx = Context(impl, Config(stack_depth=4))
    machinery = define_maker("/site-packages/handletrace/_instrument/wrappers.py", wav)
    user = define_maker("/site-packages/handletrace/_example_service.py", wav)
    ctx.ignored_files = frozenset({machinery.__code__.co_filename})
    install(ctx)
    made = [machinery(), user()]
    origins = [entry[ENTRY_TRACEBACK].origin for entry in ctx.live.values()]
    assert [(o.filename, o.name) for o in origins] == [
        (__file__, "test_frames_of_ignored_files_are_trimmed_and_their_neighbours_kept"),
        (__file__, "test_frames_of_ignored_files_are_trimmed_and_their_neighbours_kept"),
        ("/site-packages/handletrace/_example_service.py", "make"),
        ("/site-packages/handletrace/_example_service.py", "make"),
    ]
    del made


def test_stack_deeper_than_the_stack_keeps_all_frames(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(Context(impl, Config(stack_depth=256)))
    config = audio.AudioConfig(filename=wav)
    ((_, codes, _, total),) = ctx.traceback_calls
    assert total == len(codes) > 3
    del config


def test_depth_zero_records_the_empty_traceback(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl, Config(stack_depth=0)))
    config = audio.AudioConfig(filename=wav)
    assert [entry[ENTRY_TRACEBACK] for entry in ctx.live.values()] == [
        EMPTY_TRACEBACK,
        EMPTY_TRACEBACK,
    ]
    assert all(entry[ENTRY_TRACEBACK] is ctx.empty_traceback for entry in ctx.live.values())
    assert ctx.traceback_calls == []
    del config


def test_sample_zero_records_the_empty_traceback(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl, Config(stack_depth=16, stack_sample=0)))
    config = audio.AudioConfig(filename=wav)
    assert all(entry[ENTRY_TRACEBACK] is ctx.empty_traceback for entry in ctx.live.values())
    assert ctx.traceback_calls == []
    del config


def test_sample_one_in_n_takes_stacks_of_seqs_divisible_by_n(
    impl: str, install: Install, wav: str
) -> None:
    ctx = install(Context(impl, Config(stack_depth=16, stack_sample=3)))
    configs = [audio.AudioConfig(filename=wav) for _ in range(4)]  # seqs 1..8
    with_stack = [
        seq for seq, entry in ctx.live.items() if entry[ENTRY_TRACEBACK] is not ctx.empty_traceback
    ]
    assert with_stack == [3, 6]
    del configs


# -- what is recorded and what is not ------------------------------------------------------------


def test_counters_count_creation_and_peak(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl))
    first = audio.AudioConfig(filename=wav)
    second = audio.AudioConfig(filename=wav)
    del first
    assert ctx.counters() == {"audio_config": [2, 1, 1, 2], "property_bag": [2, 1, 1, 2]}
    assert ctx.by_cause == {"del": 2}
    del second


def test_release_by_reference_counting_has_cause_del(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl))
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
    ctx = install(Context(impl))
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
    ctx = install(Context(impl))
    config = audio.AudioConfig(filename=wav)
    ctx.tracker.gc_thread = threading.get_ident() + 1  # a collection running elsewhere
    del config
    assert ctx.by_cause == {"del": 2}


def test_not_installed_records_nothing(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl))
    ctx.tracker.installed = False
    config = audio.AudioConfig(filename=wav)
    assert ctx.live == {} and ctx.counters() == {}
    assert [id(handle) in ctx.handle_index for handle in audio_handles(config)] == [False, False]
    assert next(ctx.seq_counter) == 1
    assert ctx.kind_calls == []
    del config
    assert ctx.by_cause == {}


def test_installed_is_read_for_every_handle(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl))
    ctx.tracker.installed = False
    untracked = audio.AudioConfig(filename=wav)
    ctx.tracker.installed = True
    tracked = audio.AudioConfig(filename=wav)
    assert [entry[ENTRY_HANDLE] for entry in ctx.live.values()] == [
        h.get() for h in audio_handles(tracked)
    ]
    del untracked


def test_kinds_filter_records_only_those_kinds(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl, Config(kinds=frozenset({"property_bag"}))))
    config = audio.AudioConfig(filename=wav)
    own, properties = audio_handles(config)
    assert [(seq, entry[ENTRY_KIND]) for seq, entry in ctx.live.items()] == [(1, "property_bag")]
    assert id(own) not in ctx.handle_index and ctx.handle_index[id(properties)] == 1
    assert ctx.counters() == {"property_bag": [1, 0, 1, 1]}


def test_a_new_config_object_is_read_again(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl, Config(kinds=frozenset({"property_bag"}))))
    first = audio.AudioConfig(filename=wav)
    ctx.tracker.config = Config(kinds=frozenset({"audio_config"}), stack_depth=0)
    second = audio.AudioConfig(filename=wav)
    assert [entry[ENTRY_KIND] for entry in ctx.live.values()] == ["property_bag", "audio_config"]
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
    ctx = install(Context(impl))
    wrapper, real, released = wrapped_release(ctx)
    made = interop._Handle("native", None, wrapper)
    assert made._Handle__release_fn is real
    assert ctx.live[1][ENTRY_KIND] == "recognizer" and ctx.kind_calls == []
    del made
    assert released == ["native"]
    assert ctx.counters() == {"recognizer": [1, 1, 0, 1]}


def test_kind_for_is_given_the_release_function(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl))
    config = audio.AudioConfig(filename=wav)
    lib = interop._sdk_lib
    assert ctx.kind_calls == [lib.audio_config_release, lib.property_bag_release]
    del config


def test_new_kind_is_asked_once_per_kind(impl: str, install: Install, wav: str) -> None:
    ctx = install(Context(impl))
    configs = [audio.AudioConfig(filename=wav) for _ in range(3)]
    assert ctx.new_kinds == ["audio_config", "property_bag"]
    del configs


def test_keyword_arguments_are_recorded_like_positional_ones(impl: str, install: Install) -> None:
    ctx = install(Context(impl))
    wrapper, real, released = wrapped_release(ctx)
    made = interop._Handle("native", test_fn=None, release_fn=wrapper)
    assert made._Handle__release_fn is real
    assert [(entry[ENTRY_KIND], entry[ENTRY_HANDLE]) for entry in ctx.live.values()] == [
        ("recognizer", "native")
    ]
    del made
    assert released == ["native"]


# -- errors ------------------------------------------------------------------------------------


def test_original_init_exception_propagates_unchanged(impl: str, install: Install) -> None:
    original_init = interop._Handle.__dict__["__init__"]
    probe = interop._Handle.__new__(interop._Handle)
    with pytest.raises(TypeError) as expected:
        original_init(probe, None, None, print, "extra")
    original_init(probe, None, None, lambda handle: None)  # so that its __del__ can run
    ctx = install(Context(impl))
    made = interop._Handle.__new__(interop._Handle)
    with pytest.raises(TypeError) as raised:
        interop._Handle.__init__(made, None, None, print, "extra")
    assert str(raised.value) == str(expected.value)
    assert ctx.live == {} and ctx.errors == [] and id(made) not in ctx.handle_index
    made.__init__(None, None, lambda handle: None)  # so that its __del__ can run


def test_kind_for_failure_is_counted_and_the_object_still_made(
    impl: str, install: Install, wav: str
) -> None:
    ctx = Context(impl)
    failure = RuntimeError("kind_for failed")

    def kind_for(release_fn: Any) -> str:
        raise failure

    ctx.kind_for = kind_for  # type: ignore[method-assign]
    install(ctx)
    native_before = native_audio_configs()
    config = audio.AudioConfig(filename=wav)
    assert ctx.errors == [("_Handle.__init__", failure), ("_Handle.__init__", failure)]
    assert ctx.live == {} and ctx.counters() == {}
    assert native_audio_configs() == native_before + 1
    assert id(audio_handles(config)[0]) not in ctx.handle_index


def test_make_traceback_failure_is_counted_and_nothing_recorded(
    impl: str, install: Install, wav: str
) -> None:
    ctx = Context(impl, Config(stack_depth=16))
    failure = ValueError("make_traceback failed")

    def make_traceback(*args: Any) -> Any:
        raise failure

    ctx.make_traceback = make_traceback  # type: ignore[method-assign]
    install(ctx)
    config = audio.AudioConfig(filename=wav)
    assert [where for where, _ in ctx.errors] == ["_Handle.__init__", "_Handle.__init__"]
    assert all(exc is failure for _, exc in ctx.errors)
    assert ctx.live == {} and ctx.counters() == {}
    del config
    assert ctx.by_cause == {}  # a release without an entry counts nothing


def test_error_exception_has_its_traceback(impl: str, install: Install, wav: str) -> None:
    ctx = Context(impl)

    def kind_for(release_fn: Any) -> str:
        raise RuntimeError("kind_for failed")

    ctx.kind_for = kind_for  # type: ignore[method-assign]
    install(ctx)
    config = audio.AudioConfig(filename=wav)
    assert ctx.errors[0][1].__traceback__ is not None
    del config


def test_count_error_failure_is_swallowed(impl: str, install: Install, wav: str) -> None:
    ctx = Context(impl)

    def kind_for(release_fn: Any) -> str:
        raise RuntimeError("kind_for failed")

    def count_error(where: str, exc: BaseException) -> None:
        raise RuntimeError("count_error failed")

    ctx.kind_for = kind_for  # type: ignore[method-assign]
    ctx.count_error = count_error  # type: ignore[method-assign]
    install(ctx)
    config = audio.AudioConfig(filename=wav)
    assert ctx.live == {}
    del config


def test_del_failure_is_counted_and_the_native_release_still_happens(
    impl: str, install: Install, wav: str, unraisable: List[Any]
) -> None:
    ctx = install(Context(impl))
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
    ctx = install(Context(impl))
    ctx.tracker.installed = False
    made = interop._Handle(None, None, lambda handle: None)
    del made
    assert ctx.by_cause == {} and ctx.errors == []


def test_a_release_while_an_exception_propagates_leaves_that_exception_intact(
    impl: str, install: Install, wav: str, unraisable: List[Any]
) -> None:
    ctx = install(Context(impl))

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


def test_update_wrapper_copies_the_originals_metadata(impl: str) -> None:
    original = interop._Handle.__dict__["__init__"]
    init_hook, _ = Context(impl).make_hooks()
    assert functools.update_wrapper(init_hook, original) is init_hook
    assert init_hook.__wrapped__ is original
    assert init_hook.__name__ == "__init__"
    assert init_hook.__qualname__ == "_Handle.__init__"
    assert init_hook.__doc__ == original.__doc__
    assert init_hook.__module__ == original.__module__


def test_through_the_class_the_hook_is_itself(impl: str, install: Install) -> None:
    install(Context(impl))
    hook = interop._Handle.__dict__["__init__"]
    assert interop._Handle.__init__ is hook
    assert hook.__get__(None, interop._Handle) is hook


def test_through_an_instance_the_hook_is_a_bound_method(impl: str, install: Install) -> None:
    ctx = install(Context(impl))
    made = interop._Handle(None, None, lambda handle: None)
    bound = made.__init__
    assert bound.__self__ is made and bound.__func__ is interop._Handle.__dict__["__init__"]
    bound(None, None, lambda handle: None)  # a second __init__: a second entry
    assert list(ctx.live) == [1, 2]


def test_explicit_unbound_call_records_the_handle(impl: str, install: Install) -> None:
    ctx = install(Context(impl))
    made = interop._Handle.__new__(interop._Handle)
    interop._Handle.__init__(made, "native", None, lambda handle: None)
    assert made.get() == "native"
    assert [entry[ENTRY_HANDLE] for entry in ctx.live.values()] == ["native"]


def test_a_cycle_through_the_hooks_is_collected(impl: str, no_gc: None) -> None:
    ctx = Context(impl)
    hooks = ctx.make_hooks()
    ctx.tracker.hooks = hooks  # tracker -> hooks -> (context ->) tracker
    tracker_alive = weakref.ref(ctx.tracker)
    del ctx, hooks
    assert tracker_alive() is not None
    gc.collect()
    assert tracker_alive() is None


def test_a_monotonic_other_than_time_monotonic_is_called(
    impl: str, install: Install, wav: str
) -> None:
    ctx = Context(impl)
    ctx.monotonic = lambda: 12.5  # type: ignore[method-assign]
    install(ctx)
    config = audio.AudioConfig(filename=wav)
    assert [entry[ENTRY_MONOTONIC] for entry in ctx.live.values()] == [12.5, 12.5]
    del config


# -- pop_record: a release counted where the hooks count it ---------------------------------------


FORCED, DIRECT = CAUSE_COLUMN["forced"], CAUSE_COLUMN["direct"]


@pytest.fixture
def pop_record(impl: str) -> Callable[..., Any]:
    """``registry.pop_record`` (the specification), or ``_speedups.pop_record``."""
    return speedups.pop_record if impl == "c" else registry.pop_record  # type: ignore[union-attr]


def row(impl: str, *values: int) -> Any:
    """A row of counters of ``impl``'s kind: the given leading values, zeros after."""
    values = (*values, *[0] * (COUNTER_COLUMNS - len(values)))
    return speedups.Counters(values) if impl == "c" else list(values)  # type: ignore[union-attr]


def test_pop_record_pops_the_entry_and_counts_the_release_in_its_cause_column(
    impl: str, pop_record: Callable[..., Any]
) -> None:
    entry = (5, "recognizer", None)
    live = {5: entry}
    counts = {"recognizer": row(impl, 1, 0, 1, 1)}
    counts["recognizer"][FORCED] = 2
    assert pop_record(live, counts, 5, FORCED) is entry
    assert live == {}
    expected = [1, 1, 0, 1] + [0] * (COUNTER_COLUMNS - 4)
    expected[FORCED] = 3
    assert counts["recognizer"] == expected


def test_pop_record_of_an_unknown_seq_returns_none_and_counts_nothing(
    impl: str, pop_record: Callable[..., Any]
) -> None:
    counts = {"recognizer": row(impl, 1, 1, 0, 1)}
    assert pop_record({}, counts, 5, DIRECT) is None
    assert counts == {"recognizer": row(impl, 1, 1, 0, 1)}


def test_pop_record_of_a_kind_without_counters_pops_and_counts_nothing(
    pop_record: Callable[..., Any],
) -> None:
    counts: Dict[str, Any] = {}
    live = {7: (7, "synthesizer")}
    assert pop_record(live, counts, 7, DIRECT) == (7, "synthesizer")
    assert live == {} and counts == {}


def test_pop_record_never_counts_a_release_twice(impl: str, pop_record: Callable[..., Any]) -> None:
    live = {5: (5, "recognizer")}
    counts = {"recognizer": row(impl, 1, 0, 1, 1)}
    pop_record(live, counts, 5, FORCED)
    assert pop_record(live, counts, 5, FORCED) is None
    assert list(counts["recognizer"])[:4] == [1, 1, 0, 1] and counts["recognizer"][FORCED] == 1


def test_pop_record_and_the_del_hook_share_the_counters(
    impl: str, install: Install, pop_record: Callable[..., Any], wav: str
) -> None:
    ctx = install(Context(impl))
    config = audio.AudioConfig(filename=wav)
    pop_record(ctx.live, ctx.counts, 1, FORCED)
    del config
    assert ctx.counters() == {"audio_config": [1, 1, 0, 1], "property_bag": [1, 1, 0, 1]}
    assert ctx.by_cause == {"forced": 1, "del": 1}


def test_pop_record_rejects_arguments_that_are_not_dicts(pop_record: Callable[..., Any]) -> None:
    with pytest.raises(TypeError):
        pop_record([], {}, 1, FORCED)


def test_pop_record_rejects_a_column_among_the_first_four(pop_record: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="pop_record: cause columns come after the first 4"):
        pop_record({}, {}, 1, 2)


# -- references and memory -----------------------------------------------------------------------


def test_reference_counts_of_what_the_hooks_touch_do_not_change(
    impl: str, install: Install, wav: str
) -> None:
    original_init = interop._Handle.__dict__["__init__"]
    original_del = interop._Handle.__dict__["__del__"]
    ctx = install(QuietContext(impl, Config(stack_depth=16, kinds=frozenset({"audio_config"}))))
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
        "lock": ctx.lock,
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


def test_traced_memory_stays_flat_over_many_handles(impl: str, install: Install, wav: str) -> None:
    ctx = install(QuietContext(impl, Config(stack_depth=16)))

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
    ctx = install(QuietContext(impl, Config(stack_depth=16, stack_sample=2)))
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
