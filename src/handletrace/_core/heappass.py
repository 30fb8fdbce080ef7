"""Passes over every object the garbage collector tracks that never hold one of them while
another thread can run.

``gc.get_objects()`` returns every tracked object, and that includes tuples other threads
are still building: ``tuple(<generator>)`` makes a tracked tuple, fills it while the
generator runs Python code, then resizes it, and a resize needs the only reference
(``SystemError: bad argument to internal function`` otherwise; ``PyTuple_SetItem`` in C
extensions is the same). Holding that list while another thread runs breaks that thread, and
another thread may run whenever this one executes bytecode: the interpreter can switch
threads between any two instructions.

So a pass runs inside one call of a C function (``collections.deque.extend``) that consumes
an iterator built only from C callables (``map``, ``itertools``, ``functools.partial``,
``id``, ``gc.get_referents``, bound methods of arrays and sets): from the call of
``gc.get_objects()`` until the list and everything made from it are released, no bytecode
runs in this thread (none of these calls releases the GIL or calls Python code, and
automatic collection, whose finalisers would, is paused), so no other thread runs. What
comes out is what the sinks keep: numbers (ids, reference counts), or objects chosen by a
test that no tuple passes (:func:`select`).

How one list reaches several consumers without a Python variable: the source's result is
yielded once per consumer (``repeat``), each copy goes through its own chain of functions
(``_apply``), and a step can join two streams into one (``_join``: ``compress(objects,
flags)``). A final round of empty tuples flows through every step after the copies (no
iterator of the pass may keep a copy once it is done: the list holds the iterators too, so
that would be a reference cycle keeping the whole heap alive).

The pass builds its iterators before the list exists, so they are tracked objects the pass
itself sees; their ids are returned, for a scan to leave out. Python 3.13's free-threaded
build has no GIL to make a C call atomic: there another thread can run during a pass (the
default build is assumed).
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections import deque
from functools import partial
from itertools import chain, compress, cycle, repeat, starmap
from operator import is_, is_not
from typing import Any, Callable, Iterable, Iterator, List, Sequence, Set, Tuple

__all__ = [
    "chains",
    "heap_pass",
    "ids_of_steps",
    "pause_collection",
    "refcount_offset",
    "resume_collection",
    "select",
    "select_ids",
    "select_instances",
]

Stage = Callable[[Any], Any]

# -- pausing the collector -------------------------------------------------------------------

_pause_lock = threading.RLock()
_pause_depth = 0
# Whether the outermost pause turned automatic collection off (it was on): a child forked by
# another thread meanwhile must get it back, not inherit the pause for good.
_pause_enabled = False


def pause_collection() -> None:
    """Automatic collection off until :func:`resume_collection` (calls nest; one thread at a
    time). A collection in the middle of a pass would run finalisers: Python code, so
    another thread could run while the pass holds the list. Allocates nothing tracked (a
    pass made now would see it)."""
    global _pause_depth, _pause_enabled
    _pause_lock.acquire()
    if _pause_depth == 0 and gc.isenabled():
        _pause_enabled = True
        gc.disable()
    _pause_depth += 1


def resume_collection() -> None:
    """Undo one :func:`pause_collection`; the last one leaves the collector as the first
    found it."""
    global _pause_depth, _pause_enabled
    try:
        _pause_depth -= 1
        if _pause_depth == 0 and _pause_enabled:
            _pause_enabled = False
            gc.enable()
    finally:
        _pause_lock.release()


def _after_fork_in_child() -> None:
    global _pause_lock, _pause_depth, _pause_enabled
    _pause_lock = threading.RLock()  # another thread of the parent may have held it
    if _pause_enabled:
        gc.enable()
    _pause_depth, _pause_enabled = 0, False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


#: What flows through every stage after the copies of the list (an empty iterable for each).
_PAD: tuple = ()


def _apply(stream: Iterator[Any], functions: Sequence[Stage], made: List[Any]) -> Iterator[Any]:
    """``functions[i % n](item)`` for the i-th item of ``stream`` (n = len(functions)),
    lazily and in C: ``next(map(f, repeat(item, 1)))`` is ``f(item)``. (Not ``zip``: it
    keeps its last result tuple for reuse, and with it an item.)"""
    listed = tuple(functions)
    cycled = cycle(listed)
    ones = repeat(1)
    wrapped = map(repeat, stream, ones)
    calls = map(map, cycled, wrapped)
    applied = map(next, calls)
    made.extend((listed, cycled, ones, wrapped, calls, applied))
    return applied


def _join(
    stream: Iterator[Any], function: Callable[[Any, Any], Any], made: List[Any]
) -> Iterator[Any]:
    """``function(a, b)`` for each two consecutive items ``a``, ``b`` of ``stream`` (``map``
    given the same iterator twice takes them in turn)."""
    joined = map(function, stream, stream)
    made.append(joined)
    return joined


def heap_pass(
    steps: Sequence[Tuple[str, Any]],
    sinks: Sequence[Stage],
    *,
    width: int,
    source: Callable[[], List[Any]] = gc.get_objects,
) -> Set[int]:
    """Call ``source()`` once, give the list it returns to ``width`` streams, run ``steps``
    on the streams, then give each final stream to its sink (``sinks[i]``, called with it,
    must consume it): all inside one C call. Every callable must be implemented in C and run
    no Python code.

    A step is ``("apply", functions)``: stream i becomes ``functions[i](stream i)``
    (``iter`` passes a stream on unchanged), or ``("join", function)``: streams 2i and
    2i+1 become ``function(stream 2i, stream 2i+1)`` (e.g. ``compress(objects, flags)``),
    halving their number.

    Returns the ids of the objects the pass made before ``source()`` ran, which the list
    saw (a scan leaves them out, and the callables its caller made for it).
    """
    made: List[Any] = []
    started = starmap(source, ((),))
    widths = (width,)
    copies = chain.from_iterable(map(repeat, started, widths))
    pads = repeat(_PAD, width)
    stream: Iterator[Any] = chain(copies, pads)
    made.extend((started, widths, copies, pads, stream))
    for kind, functions in steps:
        if kind == "apply":
            stream = _apply(stream, functions, made)
        else:
            stream = _join(stream, functions, made)
    drain: deque = deque(maxlen=0)
    consume = _apply(stream, sinks, made)
    made.append(drain)
    pause_collection()
    try:
        drain.extend(consume)  # the pass: one C call
    finally:
        resume_collection()
    own = {id(obj) for obj in made}
    own.add(id(made))
    made.clear()
    return own


def chains(*chains_: Sequence[Stage]) -> List[Tuple[str, Any]]:
    """The ``apply`` steps that run each chain of functions on its own stream (stream i
    through ``chains_[i]``, in order; shorter chains pass their stream on)."""
    depth = max((len(c) for c in chains_), default=0)
    return [
        ("apply", [c[level] if level < len(c) else iter for c in chains_]) for level in range(depth)
    ]


def _without(found: List[Any], own: Set[int]) -> List[Any]:
    """``found`` without the pass's own objects (an id taken before may be one of them
    now) and without ``found`` itself."""
    own.add(id(found))
    return [obj for obj in found if id(obj) not in own]


def select(
    flags: Sequence[Stage], *, source: Callable[[], List[Any]] = gc.get_objects
) -> List[Any]:
    """The objects of ``source()`` (default: every tracked object), in order, for which
    ``flags`` (a chain applied to the list, making one flag per object) gives a true flag.
    The flags must be false for any object another thread may still be building (a tuple).
    """
    found: List[Any] = []
    steps = [*chains((iter,), flags), ("join", compress)]
    sinks = [found.extend]
    own = heap_pass(steps, sinks, width=2, source=source)
    own.update(ids_of_steps(steps, sinks))
    return _without(found, own)


def select_instances(cls: type) -> List[Any]:
    """The tracked objects whose type is exactly ``cls`` (not ``tuple``), in ``gc`` order."""
    if cls is tuple:
        raise ValueError("a tuple may still be being built by another thread")
    return select((partial(map, type), partial(map, partial(is_, cls))))


def select_ids(wanted: Iterable[int]) -> List[Any]:
    """The tracked objects whose id is in ``wanted``, tuples excepted (another thread may be
    building one under an id that was something else's when it was taken), in ``gc`` order.

    An id names the object that has it *now*: if the one it was taken from is gone, another
    may have it (the caller checks what it gets where that matters)."""
    ids = frozenset(wanted)
    if not ids:
        return []
    not_tuple = (partial(map, type), partial(map, partial(is_not, tuple)))
    is_wanted = (partial(map, id), partial(map, ids.__contains__))
    found: List[Any] = []
    steps = [
        # Two streams of the objects that are not tuples: compress(list, not a tuple)...
        *chains((iter,), not_tuple, (iter,), not_tuple),
        ("join", compress),
        # ...then those of them whose id is wanted.
        *chains((iter,), is_wanted),
        ("join", compress),
    ]
    sinks = [found.extend]
    own = heap_pass(steps, sinks, width=4)
    own.update(ids_of_steps(steps, sinks, ids, *not_tuple, *is_wanted))
    return _without(found, own)


def ids_of_steps(steps: List[Tuple[str, Any]], sinks: List[Any], *more: Any) -> Set[int]:
    """The ids of what a caller made for a pass: the steps, their lists, the sinks."""
    made: List[Any] = [steps, sinks, *sinks, *more]
    for step in steps:
        made.append(step)
        if isinstance(step[1], list):
            made.append(step[1])
            made.extend(step[1])
    return {id(obj) for obj in made}


def refcount_offset() -> int:
    """What a pass adds to ``sys.getrefcount()`` of each object it counts with
    ``partial(map, sys.getrefcount)`` as the first stage of a chain: the list's reference
    and the one ``map`` holds while it calls (measured on an object whose count is known)."""
    probe = object()  # referenced here and by ``holder``
    holder = (probe,)
    counts: List[int] = []
    heap_pass(
        chains((partial(map, sys.getrefcount),)),
        [counts.extend],
        width=1,
        source=partial(list, holder),
    )
    return counts[0] - 2
