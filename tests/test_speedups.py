"""The C accelerator ``handletrace._instrument._speedups``: what it says it reads and writes
(the same as the Python definitions: the entry, the counters, the hook context, the
tracker's slots), and its own types (``Counters``, ``HandleIndex``) and hook objects.

What its hooks do is specified by the pure-Python hooks: tests/test_hot_path.py runs the same
cases against both.
"""

from __future__ import annotations

import gc
import threading
import weakref
from dataclasses import fields
from types import SimpleNamespace
from typing import Any, Iterator, Tuple

import pytest
from azure.cognitiveservices.speech import audio, interop

from handletrace._core.config import Config
from handletrace._core.registry import COUNTER_COLUMNS, COUNTER_NAMES, HANDLE_ENTRY
from handletrace._core.state import HOOK_SLOTS, TRACKER, Tracker
from handletrace._instrument.hooks import HookContext

from .hook_context import Context, FakeTracker, Install, hooks_on_handle, sdk_methods

speedups = pytest.importorskip(
    "handletrace._instrument._speedups",
    reason="the C accelerator handletrace._instrument._speedups is not built",
)


@pytest.fixture
def install() -> Iterator[Install]:
    """``install(ctx)`` puts ``ctx.impl``'s hooks on ``interop._Handle``; always undone."""
    with hooks_on_handle() as install_:
        yield install_


# -- the contract: what the C hooks read and write is what Python defines ----------------------


def test_the_entry_the_c_hooks_build_has_the_fields_of_handle_entry() -> None:
    """The C hooks' entry tuple is HANDLE_ENTRY, field for field."""
    assert speedups.ENTRY_FIELDS == HANDLE_ENTRY


def test_the_counters_the_c_hooks_write_by_position_are_the_first_counter_names() -> None:
    """The C hooks write created, released, live and peak at fixed positions; the cause
    columns after them only at the indexes they are given."""
    named = len(speedups.COUNTER_FIELDS)
    assert (
        speedups.COUNTER_FIELDS == COUNTER_NAMES[:named] == ("created", "released", "live", "peak")
    )
    assert named < COUNTER_COLUMNS


def test_the_c_hooks_read_every_hook_context_field_but_the_lock() -> None:
    """HookContext is the hooks' whole context: the C hooks read each field (the lock is
    the Python hooks' stand-in for the GIL) and nothing else."""
    assert tuple(f.name for f in fields(HookContext) if f.name != "lock") == speedups.CONTEXT_FIELDS


def test_make_hooks_reads_each_field_it_names() -> None:
    """A context without any one of CONTEXT_FIELDS is refused, naming it."""
    complete = vars(Context("c").hook_context())
    assert speedups.make_hooks(*sdk_methods(), SimpleNamespace(**complete))
    for name in speedups.CONTEXT_FIELDS:
        ctx = SimpleNamespace(**{k: v for k, v in complete.items() if k != name})
        with pytest.raises(AttributeError, match=name):
            speedups.make_hooks(*sdk_methods(), ctx)


def test_the_tracker_slots_the_c_hooks_read_are_hook_slots() -> None:
    """What the C hooks read from the tracker per handle is HOOK_SLOTS, slots of Tracker."""
    assert speedups.TRACKER_SLOTS == HOOK_SLOTS
    assert set(HOOK_SLOTS) <= set(Tracker.__slots__)


def test_the_c_hooks_read_the_real_trackers_slots_at_their_offsets() -> None:
    """Each of HOOK_SLOTS is read at its offset in the Tracker, not through getattr."""
    offsets = speedups.tracker_slot_offsets(TRACKER)
    assert len(offsets) == len(HOOK_SLOTS) and all(offset > 0 for offset in offsets), offsets
    assert speedups.tracker_slot_offsets(FakeTracker(Config())) == (-1,) * len(HOOK_SLOTS)


def test_the_settings_the_c_hooks_read_are_config_fields() -> None:
    """The settings the C hooks read from tracker.config are Config's fields."""
    assert set(speedups.CONFIG_FIELDS) <= {f.name for f in fields(Config)}


# -- the C hook objects ----------------------------------------------------------------------------


@pytest.fixture
def c_hooks() -> Tuple[Any, Any]:
    """A pair of C hooks, not installed anywhere."""
    return Context("c").make_hooks()


def test_repr_names_the_original(c_hooks: Tuple[Any, Any]) -> None:
    _, del_hook = c_hooks
    assert repr(del_hook) == f"<handletrace C hook for {interop._Handle.__dict__['__del__']!r}>"


def test_the_hooks_are_tracked_by_the_collector(c_hooks: Tuple[Any, Any]) -> None:
    init_hook, del_hook = c_hooks
    assert gc.is_tracked(init_hook) and gc.is_tracked(del_hook)
    referents = gc.get_referents(init_hook)
    assert interop._Handle.__dict__["__init__"] in referents
    assert any(type(r) is FakeTracker for r in referents)


def test_make_hooks_rejects_a_context_with_the_wrong_containers() -> None:
    ctx = SimpleNamespace(**{**vars(Context("c").hook_context()), "live": []})
    with pytest.raises(TypeError, match="make_hooks: ctx containers must be dicts"):
        speedups.make_hooks(*sdk_methods(), ctx)


def test_new_kind_counters_that_are_not_counters_are_an_error(install: Install, wav: str) -> None:
    ctx = Context("c")
    ctx.new_kind = lambda kind: [0] * COUNTER_COLUMNS  # type: ignore[method-assign]
    install(ctx)
    audio.AudioConfig(filename=wav)
    assert [(where, type(exc)) for where, exc in ctx.errors] == [
        ("_Handle.__init__", TypeError),
        ("_Handle.__init__", TypeError),
    ]
    assert ctx.live == {}


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


def test_releasing_table_is_a_mapping_of_releases_in_flight() -> None:
    """Releasing: seq -> (started, thread, column), set, read, popped, copied and cleared
    like the dict the Python hooks use; values are checked."""
    table = speedups.Releasing({7: (1.5, "t", 5)})
    thread = threading.current_thread()
    table[9] = (2.0, thread, 6)
    assert (len(table), 7 in table, 8 in table) == (2, True, False)
    assert table[9] == (2.0, thread, 6)
    assert table.copy() == {7: (1.5, "t", 5), 9: (2.0, thread, 6)}
    assert sorted(table.items()) == sorted({7: (1.5, "t", 5), 9: (2.0, thread, 6)}.items())
    assert table.pop(7) == (1.5, "t", 5) and table.pop(7, "gone") == "gone"
    with pytest.raises(KeyError):
        del table[7]
    with pytest.raises(TypeError):
        table[3] = "not a tuple"
    for seq in range(100, 140):  # grows past its first capacity
        table[seq] = (0.0, None, 5)
    assert len(table) == 41 and table[139] == (0.0, None, 5)
    table.clear()
    assert len(table) == 0 and table.copy() == {}
