"""Reference cycles and reference paths, drawn from the real objects.

:class:`HeapGraph` answers "what keeps this object alive?" without changing the program:

* **Which objects are cyclic garbage** is computed the way CPython's collector computes it,
  but without collecting: for every GC-tracked object, its reference count minus the
  references coming from other tracked objects says whether anything *outside* the heap of
  tracked objects (a running function's variable, C code) holds it. Those objects are the
  roots; everything reachable from them is alive; the rest is garbage that only a cyclic
  collection would free. Nothing is freed, changed or kept alive by the analysis (the
  automatic collector is paused while the heap is read, so reading it cannot set off a
  collection).
* **The cycle** holding a garbage object is the shortest one through it, found among the
  garbage only.
* **The path from a root** to a live object is the shortest one from a module global or a
  thread's frame (on Python 3.13+, and for module-level code, with the variable's name;
  Python 3.11/3.12 cannot name a running function's local variable without changing its
  frame, so there the path starts at "referenced from outside the Python heap").

The heap is read once, in one pass that holds no object once it returns
(``_core/heappass.py``: other threads may be building some of them); what is kept is
numbers: the objects' ids, which are roots, which are garbage, the garbage's references.
Objects are taken again only where it is safe, one at a time: the subjects the diagnosis
holds, what they refer to, module globals, frames, and (by id, never a tuple) the roots a
path starts from. The work is bounded by the size of the heap: every search of one heap
together visits at most a fixed multiple of the objects it scanned.

Like objgraph, the analysis ignores its own frames and containers. Paths are plain data
(:class:`~handletrace._analysis.paths.RefPath`), drawn by the reports (text, HTML, Graphviz).
"""

from __future__ import annotations

import gc
import sys
from array import array
from collections import deque
from functools import partial
from itertools import chain, compress, count, repeat, starmap
from operator import is_not, lt, not_, sub
from types import FrameType, ModuleType
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from .._core import compat
from .._core.compat import referents
from .._core.heappass import (
    chains,
    heap_pass,
    ids_of_steps,
    pause_collection,
    resume_collection,
    select_ids,
    select_instances,
)
from .._core.registry import thread_name
from .._core.stacks import is_machinery
from .._core.state import TRACKER
from .._sdk.signals import hostile
from .paths import CONTAINERS, RefPath, describe, describe_chain, instance_dict, key_text

__all__ = ["CYCLE_SEARCH_LIMIT", "CYCLE_WORK_PER_OBJECT", "EXTERNAL_ROOT", "HeapGraph"]

_CO_OPTIMIZED = 0x0001
#: Objects a single cycle search may visit before giving up.
CYCLE_SEARCH_LIMIT = 20_000
#: All the cycle searches of one scan together visit at most this many objects and
#: references per object scanned (plus one search's limit): a diagnosis of thousands of
#: leaked objects sharing one big garbage cluster stays linear in the heap (later searches
#: then find no cycle).
CYCLE_WORK_PER_OBJECT = 8
EXTERNAL_ROOT = "referenced from outside the Python heap (a running function's variable or C code)"

# What the scan found about each object (by its position in the scan).
_REACHABLE, _EXTERNAL, _GARBAGE, _OWN = 0, 1, 2, 3
#: ``reached[p]`` (0 or 1) -> the state of a position that is not a root.
_STATE_OF_REACHED = bytes([_GARBAGE, _REACHABLE]) + bytes(254)


# -- the scan --------------------------------------------------------------------------------


class _Heap:
    """What one pass over the heap found, as numbers: no object.

    Positions are the objects' order in ``gc.get_objects()``; ``ids[p]`` is the id of the
    object at position ``p`` and ``state[p]`` what it is (reachable, a root, garbage, or the
    scan's own). ``edges`` lists, for each object, -1 then the positions of the tracked
    objects it refers to (in ``gc.get_referents()`` order; -1 for one the scan did not see);
    ``starts[p]`` is where its -1 is (and ``starts[size]`` the end).
    """

    def __init__(
        self,
        ids: array[int],
        edges: array[int],
        starts: array[int],
        index: Dict[int, int],
        state: bytearray,
        external: List[int],
        size: int,
        garbage: int,
    ) -> None:
        self.ids = ids
        self.edges = edges
        self.starts = starts
        self.index = index
        self.state = state
        self.external = external
        self.size = size
        self.garbage = garbage

    def position(self, key: int) -> int:
        """The position of the object with id ``key`` (-1 if the scan did not see one)."""
        return self.index.get(key, -1)

    def children(self, position: int) -> array[int]:
        """The positions of the tracked objects the object at ``position`` refers to."""
        return self.edges[self.starts[position] + 1 : self.starts[position + 1]]


def _reach(frontier: List[int], reached: bytearray, edges: array[int], starts: array[int]) -> None:
    """Mark in ``reached`` everything reachable from ``frontier`` (marked already), one
    level at a time, each level in a few C-level passes. ``reached[-1]`` must be set (the
    -1 of a reference the scan did not see indexes it)."""
    mark = reached.__setitem__
    after = (1).__add__
    while frontier:
        slices = map(
            slice,
            map(after, map(starts.__getitem__, frontier)),
            map(starts.__getitem__, map(after, frontier)),
        )
        children = array("q", chain.from_iterable(map(edges.__getitem__, slices)))
        fresh = dict.fromkeys(compress(children, map(not_, map(reached.__getitem__, children))))
        deque(map(mark, fresh, repeat(1)), maxlen=0)
        frontier = list(fresh)


def _scan_chains() -> Tuple[List[Tuple[str, Any]], List[Any], int]:
    """The pass's steps for (ids, reference counts, references), the objects made for
    them (the pass's own) and how many copies of the list they start from."""
    separators = repeat((0,))
    tracked = partial(filter, gc.is_tracked)
    ids_of = partial(map, id)
    references = (
        partial(map, gc.get_referents),
        partial(map, tracked),
        partial(map, ids_of),
        partial(zip, separators),  # (0,), ids of object 1; (0,), ids of object 2; ...
        partial(starmap, chain),
        chain.from_iterable,
    )
    steps: List[Tuple[str, Any]] = []
    made: List[Any] = [separators, tracked, ids_of]
    width = 3
    broken = compat._ASYNCIO_REFERENTS_BROKEN  # noqa: SLF001 (the one fact, stated there)
    module = sys.modules.get("_asyncio") if broken else None
    if module is not None:
        # gc.get_referents() of this module corrupts its free list (gh-122695): the pass
        # leaves the module out (its namespace is then a root, as it is reachable anyway).
        not_module = partial(is_not, module)
        other = (partial(map, not_module),)
        made.extend((not_module, *other))
        # Six copies, joined in pairs: three streams of compress(list, not the module).
        steps += chains((iter,), other, (iter,), other, (iter,), other)
        steps.append(("join", compress))
        width = 6
    counting = (partial(map, sys.getrefcount),)
    steps += chains((ids_of,), counting, references)
    made.extend((*counting, *references))
    return steps, made, width


def _read(
    source: Any = gc.get_objects,
) -> Tuple[array[int], array[int], array[int], Set[int]]:
    """One pass: the ids, reference counts and references of every tracked object, and the
    ids of the pass's own objects."""
    ids: array[int] = array("Q")
    counts: array[int] = array("q")
    flat: array[int] = array("Q")
    steps, made, width = _scan_chains()
    sinks = [ids.extend, counts.extend, flat.extend]
    own = heap_pass(steps, sinks, width=width, source=source)
    own.update(ids_of_steps(steps, sinks, made, *made))
    return ids, counts, flat, own


def _refcount_offset() -> int:
    """What the pass adds to the reference count of each object it counts, measured with
    the same pass over a one-object list whose other references are known (this variable
    and ``holder``)."""
    probe = object()
    holder = (probe,)
    _ids, counts, _flat, _own = _read(partial(list, holder))
    return counts[0] - 2


def _scan_heap() -> _Heap:
    """Read the heap (one pass) and work out which objects are roots and which garbage."""
    offset = _refcount_offset()
    ids, counts, flat, own = _read()
    size = len(ids)
    index = dict(zip(ids, range(size)))
    starts = array("q", compress(count(), map(not_, flat)))
    starts.append(len(flat))
    edges = array("q", map(index.get, flat, repeat(-1)))  # ids -> positions
    del flat
    # Referenced from outside: a reference count above the pass's own and the heap's. Each
    # reference from a tracked object takes one off its target's count, in C and in place
    # (``map`` is lazy: each item is read after the one before was written), so no table
    # of the references per object is made (a dict of them was ~100 bytes per object).
    outside = counts
    outside.append(0)  # what a -1 (an object the scan did not see) indexes
    fewer = map(sub, map(outside.__getitem__, edges), repeat(1))
    deque(map(outside.__setitem__, edges, fewer), maxlen=0)
    external = list(compress(range(size), map(partial(lt, offset), outside)))
    del outside, counts
    mine = [p for p in map(index.get, own) if p is not None]
    reached = bytearray(size + 1)
    reached[size] = 1  # what edges[...] == -1 indexes
    frontier = list(dict.fromkeys((*external, *mine)))
    deque(map(reached.__setitem__, frontier, repeat(1)), maxlen=0)
    _reach(frontier, reached, edges, starts)
    # Unreached: garbage; then the roots and the scan's own (all reached), in C.
    state = bytearray(reached[:size].translate(_STATE_OF_REACHED))
    garbage = state.count(_GARBAGE)
    deque(map(state.__setitem__, external, repeat(_EXTERNAL)), maxlen=0)
    # Held by this analysis: a root, but none that it reports.
    deque(map(state.__setitem__, mine, repeat(_OWN)), maxlen=0)
    roots = [ids[p] for p in external if state[p] == _EXTERNAL]
    return _Heap(ids, edges, starts, index, state, roots, size - len(mine), garbage)


# -- the heap --------------------------------------------------------------------------------


def _frame_roots(frame: FrameType, thread: str) -> List[Tuple[str, Any]]:
    """(label, value) for the variables of a running frame that can be read without side effects."""
    code = frame.f_code
    optimized = bool(code.co_flags & _CO_OPTIMIZED)
    where = f"{code.co_name} ({code.co_filename}:{frame.f_lineno}, thread {thread})"
    if sys.version_info >= (3, 13) or not optimized:
        # 3.13+: a write-through proxy (PEP 667); module / class bodies: their real namespace.
        namespace = frame.f_locals
        if not optimized and namespace is frame.f_globals:
            return []  # module-level code: its variables are module globals
        return [
            (f"local variable {key_text(k)} in {where}", v) for k, v in list(namespace.items())
        ]
    if sys.version_info < (3, 11):
        # Frames are GC objects here: their referents are the fast locals (names unknown
        # without f_locals, which would copy them into a dict that outlives this call).
        skip = {
            id(frame.f_back),
            id(code),
            id(frame.f_globals),
            id(frame.f_builtins),
            id(frame.f_trace),
        }
        return [
            (f"a local variable of {where}", v)
            for v in referents(frame)
            if id(v) not in skip
        ]
    return []  # 3.11/3.12: a running function's locals are not visible without side effects


def _running_frames() -> Iterator[Tuple[FrameType, str]]:
    """Every running frame of every thread but handletrace's own, innermost first."""
    for ident, top in sys._current_frames().items():
        thread = thread_name(ident)
        frame: Optional[FrameType] = top
        while frame is not None:
            if not is_machinery(frame.f_code.co_filename):  # the example service is not
                yield frame, thread
            frame = frame.f_back
        del top, frame


def _walk(
    start: Any, chain_ids: Sequence[int], known: Optional[Dict[int, Dict[int, Any]]] = None
) -> Optional[List[Any]]:
    """The objects ``start`` -> ... whose ids are ``chain_ids`` (``chain_ids[0]`` is
    ``start``'s), each found among what the one before refers to; ``None`` if one is not
    there any more (the program changed it since the scan).

    ``known``: what objects met before refer to, by id (paths from one root share it: a
    list of 100,000 handles is read once, not once per handle).
    """
    objects = [start]
    for key in chain_ids[1:]:
        holder = objects[-1]
        if known is None:
            found = next((c for c in referents(holder) if id(c) == key), None)
            if found is None:
                found = _children(holder).get(key)
        else:
            children = known.get(id(holder))
            if children is None:
                children = known[id(holder)] = _children(holder)
            found = children.get(key)
        if found is None:
            return None
        objects.append(found)
    return objects


def _children(holder: Any) -> Dict[int, Any]:
    """What ``holder`` refers to, by id, and what the dictionaries it refers to hold (after
    its own references). On Python 3.11+ an object keeps its attributes inline until
    something asks for its ``__dict__``, and describing a path asks: an edge the scan saw
    from the object to an attribute's value then goes through the dictionary made since
    (a second cycle through the same objects was not found)."""
    direct = referents(holder)
    children = {id(c): c for c in direct}
    for child in direct:
        if type(child) is dict:
            for value in list(child.values()):
                children.setdefault(id(value), value)
    return children


class HeapGraph:
    """One non-destructive scan of the GC heap; use as a context manager (or call close()).

    It holds no object of the heap (only numbers about them); :meth:`close` forgets them.
    """

    def __init__(self) -> None:
        self._heap: Optional[_Heap] = None
        self._edges_cache: Dict[int, List[int]] = {}
        self._edge_sets: Dict[int, frozenset] = {}
        self._reverse: Optional[Dict[int, List[int]]] = None
        self._cyclic: Optional[Set[int]] = None
        self._cycle_budget = 0
        # Garbage on cycles that is not a tuple, by id (taken once, when first needed).
        self._members: Optional[Dict[int, Any]] = None

    # -- scanning ------------------------------------------------------------------------
    @classmethod
    def scan(cls) -> HeapGraph:
        """Scan the heap now (pauses automatic collection while it runs; collects nothing)."""
        # Paused for the whole scan (its two passes and the work between them), so that one
        # scan sees the collector as the program left it. No context manager: the pass
        # would see it, made just before.
        pause_collection()
        try:
            heap = _scan_heap()
        finally:
            resume_collection()
        graph = cls()
        graph._heap = heap
        graph._cycle_budget = CYCLE_WORK_PER_OBJECT * heap.size + CYCLE_SEARCH_LIMIT
        return graph

    def close(self) -> None:
        """Forget the scan."""
        self._heap = None
        self._edges_cache = {}
        self._edge_sets = {}
        self._reverse = None
        self._cyclic = None
        self._members = None

    def __enter__(self) -> HeapGraph:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def _scan(self) -> _Heap:
        if self._heap is None:
            raise ValueError("the heap graph is closed")
        return self._heap

    # -- queries -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """How many GC-tracked objects the scan saw."""
        return self._scan.size

    @property
    def garbage_count(self) -> int:
        return self._scan.garbage

    def _state(self, key: int) -> int:
        heap = self._scan
        position = heap.position(key)
        return _OWN if position < 0 else heap.state[position]

    def contains(self, obj: Any) -> bool:
        """Whether ``obj`` was seen by the scan (objects made later, or frozen ones, were not)."""
        return self._state(id(obj)) != _OWN

    def instances(self, cls: type) -> List[Any]:
        """The objects whose type is exactly ``cls`` (not ``tuple``) that the scan saw."""
        return [obj for obj in select_instances(cls) if self.contains(obj)]

    def is_garbage(self, obj: Any) -> bool:
        """Whether ``obj`` is unreachable: only a cyclic collection would free it."""
        return self._state(id(obj)) == _GARBAGE

    # -- cycles --------------------------------------------------------------------------
    # Cycles are searched among the garbage, by position (ints); ids only to take objects.
    def _edges(self, node: int) -> List[int]:
        """The positions of the garbage objects the garbage object at ``node`` refers to,
        in order (each reference once per time it is made)."""
        edges = self._edges_cache.get(node)
        if edges is None:
            state = self._scan.state
            edges = [p for p in self._scan.children(node) if p >= 0 and state[p] == _GARBAGE]
            self._edges_cache[node] = edges
        return edges

    def _refers_to(self, node: int, target: int) -> bool:
        """Whether the garbage object at ``node`` refers to the one at ``target`` (a set
        for objects with many references: a list of 100,000 leaked objects is searched
        for each of them)."""
        edges = self._edges(node)
        if len(edges) < 64:
            return target in edges
        found = self._edge_sets.get(node)
        if found is None:
            found = self._edge_sets[node] = frozenset(edges)
        return target in found

    def _cycle_ids(self, start: int, limit: int) -> Optional[List[int]]:
        """The shortest cycle through ``start`` (positions, ``start`` first), breadth
        first, within ``limit`` objects and what is left of the scan's budget."""
        parent = {start: start}
        frontier = [start]
        visited = 0
        while frontier and visited < limit:
            following = []
            for node in frontier:
                if self._cycle_budget <= 0:
                    return None  # the scan's cycle work is spent (see CYCLE_WORK_PER_OBJECT)
                visited += 1
                if self._refers_to(node, start):
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    path.reverse()
                    return path
                edges = self._edges(node)
                self._cycle_budget -= 1 + len(edges)
                for child in edges:
                    if child not in parent:
                        parent[child] = node
                        following.append(child)
            frontier = following
        return None

    def _reverse_edges(self) -> Dict[int, List[int]]:
        if self._reverse is None:
            reverse: Dict[int, List[int]] = {}
            for node in _positions_of(self._scan.state, _GARBAGE):
                for child in self._edges(node):
                    reverse.setdefault(child, []).append(node)
            ids = self._scan.ids
            for referrers in reverse.values():
                referrers.sort(key=ids.__getitem__)  # by id, as the first search found them
            self._reverse = reverse
        return self._reverse

    def _on_cycles(self) -> Set[int]:
        """The garbage objects (positions) that lie on a reference cycle: a search from any
        other finds none, so none is made."""
        if self._cyclic is None:
            nodes = list(_positions_of(self._scan.state, _GARBAGE))
            self._cyclic = _cyclic_nodes(nodes, self._edges)
        return self._cyclic

    def cycle_of(self, obj: Any, *, limit: int = CYCLE_SEARCH_LIMIT) -> Optional[RefPath]:
        """The shortest garbage cycle through ``obj``, or the nearest one that holds it.

        ``None`` if ``obj`` is not garbage (or no cycle was found within ``limit`` objects).
        """
        if not self.is_garbage(obj):
            return None
        heap = self._scan
        start = heap.position(id(obj))
        cyclic = self._on_cycles()
        cycle = self._cycle_ids(start, limit) if start in cyclic else None
        if cycle is not None:
            objects = _walk(obj, [heap.ids[p] for p in cycle])
            return RefPath("cycle", describe_chain(objects, cyclic=True)) if objects else None
        # Not on a cycle: find the nearest garbage object that is, and the path from it.
        reverse = self._reverse_edges()
        parent = {start: start}
        frontier = [start]
        checked = 0
        while frontier and checked < limit:
            following = []
            for node in frontier:
                for referrer in reverse.get(node, ()):
                    if referrer in parent:
                        continue
                    parent[referrer] = node
                    following.append(referrer)
                    checked += 1
                    found = self._cycle_ids(referrer, limit) if referrer in cyclic else None
                    if found is None:
                        continue
                    chain_positions = [referrer]
                    while chain_positions[-1] != start:
                        chain_positions.append(parent[chain_positions[-1]])
                    ids = heap.ids
                    return self._held_by(
                        [ids[p] for p in found], [ids[p] for p in chain_positions], obj
                    )
            frontier = following
        return None

    def _held_by(self, cycle: List[int], chain_ids: List[int], obj: Any) -> Optional[RefPath]:
        """The cycle ``cycle`` (ids, starting at ``chain_ids[0]``) holding ``obj``
        (``chain_ids[-1]``) through ``chain_ids``.

        The drawn cycle starts at its first object that is not a plain container, and the
        held path starts at the object whose ``__dict__`` holds the chain, if it is one.
        The objects are taken from a member of the cycle that is not a tuple (by id: an
        unreachable object cannot be in the middle of being built), then along the cycle.
        """
        entry = self._cycle_member(cycle)
        if entry is None:
            return None
        at = cycle.index(id(entry))
        around = _walk(entry, cycle[at:] + cycle[:at])
        if around is None:
            return None
        objects = around[-at:] + around[:-at] if at else around
        held_objects = _walk(objects[0], chain_ids)
        if held_objects is None or held_objects[-1] is not obj:
            return None
        first = next((k for k, o in enumerate(objects) if not isinstance(o, CONTAINERS)), 0)
        objects = objects[first:] + objects[:first]
        position = (len(objects) - first) % len(objects)  # where chain_ids[0] is now
        before = objects[position - 1]
        if isinstance(objects[position], dict) and instance_dict(before, objects[position]):
            held_objects.insert(0, before)
            position = (position - 1) % len(objects)
        steps, shown = describe(objects, True)
        held_from = max((n for n, index in enumerate(shown) if index <= position), default=0)
        held = describe_chain(held_objects, cyclic=False)
        return RefPath("cycle", steps, held=held, held_from=held_from)

    def _cycle_member(self, cycle: List[int]) -> Any:
        """An object of ``cycle`` (ids of garbage) that is not a tuple, taken by id: from
        the members of cycles met so far, else with one pass for all the garbage on cycles
        (a diagnosis asks for many)."""
        members = self._members
        if members is None:
            ids = self._scan.ids
            wanted = [ids[p] for p in self._on_cycles()]
            members = self._members = {id(o): o for o in select_ids(wanted)}
        return next((members[key] for key in cycle if key in members), None)

    # -- paths from roots ----------------------------------------------------------------
    def paths_to(self, targets: Iterable[Any]) -> Dict[int, RefPath]:
        """Shortest paths from a root to each reachable target, keyed by ``id(target)``."""
        heap = self._scan
        state = heap.state
        wanted = {id(t) for t in targets if self._state(id(t)) not in (_OWN, _GARBAGE)}
        if not wanted:
            return {}
        parent = array("q", repeat(-1, len(state)))  # position -> position it was reached from
        labels: Dict[int, str] = {}  # position of a root -> what holds it
        roots: Dict[int, Any] = {}  # position of a root -> the root
        queue: Deque[Any] = deque()

        def seed(value: Any, label: str) -> None:
            position = heap.position(id(value))
            if position >= 0 and state[position] != _OWN and parent[position] < 0:
                parent[position] = position
                labels[position] = label
                roots[position] = value
                queue.append(value)

        for name, module in list(sys.modules.items()):
            namespace = (
                getattr(module, "__dict__", None) if isinstance(module, ModuleType) else None
            )
            if isinstance(namespace, dict):
                for key, value in list(namespace.items()):
                    seed(value, f"module global {name}.{key}")
        for frame, thread in _running_frames():
            for label, value in _frame_roots(frame, thread):
                seed(value, label)
            del frame
        found = self._search(queue, parent, wanted)
        if wanted - found:
            for value in self._external_roots():
                seed(value, EXTERNAL_ROOT)
            found |= self._search(queue, parent, wanted - found)
        queue.clear()
        paths = {}
        known: Dict[int, Dict[int, Any]] = {}
        for key in found:
            position = heap.position(key)
            chain_positions = [position]
            while parent[chain_positions[-1]] != chain_positions[-1]:
                chain_positions.append(parent[chain_positions[-1]])
            chain_positions.reverse()
            root = chain_positions[0]
            objects = _walk(roots[root], [heap.ids[p] for p in chain_positions], known)
            if objects is None:
                continue
            try:
                steps = describe_chain(objects, cyclic=False)
            except BaseException as exc:  # a hostile holder: only paths through it are lost
                if not hostile(exc):
                    raise
                TRACKER.registry.count_error("reference path search", exc)
                continue
            paths[key] = RefPath("root", steps, root=labels[root])
        known.clear()
        roots.clear()
        return paths

    def _external_roots(self) -> List[Any]:
        """The objects referenced from outside the heap, in the scan's order: taken by id
        (never a tuple: one may be in the middle of being built), a tuple only from a running
        frame that holds it (a function's ``*args``)."""
        heap = self._scan
        wanted = heap.external
        by_id = {id(obj): obj for obj in select_ids(wanted)}
        missing = set(wanted).difference(by_id)
        if missing:
            for frame, _thread in _running_frames():
                for value in referents(frame):
                    if id(value) in missing and type(value) is tuple:
                        by_id[id(value)] = value
                del frame
        roots = [by_id[key] for key in wanted if key in by_id]
        by_id.clear()
        return roots

    def _search(self, queue: Deque[Any], parent: array[int], wanted: Set[int]) -> Set[int]:
        heap = self._scan
        state = heap.state
        found = {id(obj) for obj in queue if id(obj) in wanted}
        remaining = len(wanted) - len(found)
        while queue and remaining > 0:
            node = queue.popleft()
            at = heap.position(id(node))
            for child in referents(node):
                position = heap.position(id(child))
                if position >= 0 and state[position] != _OWN and parent[position] < 0:
                    parent[position] = at
                    queue.append(child)
                    if id(child) in wanted:
                        found.add(id(child))
                        remaining -= 1
            del node
        return found


def _positions_of(state: bytearray, value: int) -> Iterator[int]:
    """The positions whose state is ``value``, in order."""
    return compress(count(), map(value.__eq__, state))


def _cyclic_nodes(nodes: Sequence[int], edges: Any) -> Set[int]:
    """The nodes that lie on a cycle of the graph ``edges(node) -> [node, ...]`` restricted
    to ``nodes``: those of a strongly connected component of two or more, or with an edge
    to themselves (Tarjan's algorithm, iterative: linear in nodes and edges)."""
    index: Dict[int, int] = {}
    low: Dict[int, int] = {}
    on_stack: Set[int] = set()
    stack: List[int] = []
    cyclic: Set[int] = set()
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child == node:
                    cyclic.add(node)
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges(child))))
                    advanced = True
                    break
                if child in on_stack and index[child] < low[node]:
                    low[node] = index[child]
            if advanced:
                continue
            work.pop()
            if work:
                up = work[-1][0]
                if low[node] < low[up]:
                    low[up] = low[node]
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cyclic.update(component)
    return cyclic
