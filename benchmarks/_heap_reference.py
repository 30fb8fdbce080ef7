"""Reference cycles and reference paths, drawn from the real objects.

:class:`HeapGraph` answers "what keeps this object alive?" without changing the program:

* **Which objects are cyclic garbage** is computed the way CPython's collector computes it,
  but without collecting: for every GC-tracked object, its reference count minus the
  references coming from other tracked objects says whether anything *outside* the heap of
  tracked objects (a running function's variable, C code) holds it. Those objects are the
  roots; everything reachable from them is alive; the rest is garbage that only a cyclic
  collection would free. Nothing is freed, changed or kept alive after the analysis (the
  automatic collector is paused while the heap is scanned, so the scan itself cannot set off
  a collection).
* **The cycle** holding a garbage object is the shortest one through it, found among the
  garbage only.
* **The path from a root** to a live object is the shortest one from a module global or a
  thread's frame (on Python 3.13+, and for module-level code, with the variable's name;
  Python 3.11/3.12 cannot name a running function's local variable without changing its
  frame, so there the path starts at "referenced from outside the Python heap").

Like objgraph, the analysis ignores its own frames and containers. Paths are plain data
(:class:`~handletrace._analysis.paths.RefPath`), drawn by the reports (text, HTML, Graphviz).
"""

from __future__ import annotations

import gc
import sys
from collections import Counter, deque
from types import FrameType, ModuleType
from typing import Any, Deque, Dict, Iterable, List, Optional, Set, Tuple

from handletrace._analysis.paths import (
    CONTAINERS,
    RefPath,
    describe,
    describe_chain,
    instance_dict,
    key_text,
)
from handletrace._core.compat import referents
from handletrace._core.registry import thread_name
from handletrace._core.stacks import is_machinery

__all__ = ["CYCLE_SEARCH_LIMIT", "EXTERNAL_ROOT", "HeapGraph"]

_CO_OPTIMIZED = 0x0001
_CHUNK = 20_000  # objects per referents() call while scanning
#: Objects a single cycle search may visit before giving up.
CYCLE_SEARCH_LIMIT = 20_000
EXTERNAL_ROOT = "referenced from outside the Python heap (a running function's variable or C code)"


# -- the heap ------------------------------------------------------------------------------


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
        return [(f"local variable {key_text(k)} in {where}", v) for k, v in list(namespace.items())]
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
        return [(f"a local variable of {where}", v) for v in referents(frame) if id(v) not in skip]
    return []  # 3.11/3.12: a running function's locals are not visible without side effects


def _scan_heap() -> Tuple[List[Any], Dict[int, Any], List[int], Set[int]]:
    """(objects, id -> object, ids of externally referenced objects, ids of garbage).

    No closure or comprehension here may refer to these containers: on Python < 3.12 that
    makes a cell, created before the scan, which would then hold a container holding the
    cell (a reference cycle keeping every scanned object alive until the next collection).
    """
    objects = gc.get_objects()
    # Calibration: the sentinel is held by this frame's variable and by ``objects`` only,
    # so its count minus one is what ``objects`` and the counting itself add to each.
    sentinel: List[Any] = []
    objects.append(sentinel)
    counts = list(map(sys.getrefcount, objects))
    offset = counts.pop() - 1
    objects.pop()
    del sentinel
    ids = list(map(id, objects))
    by_id = dict(zip(ids, objects))
    internal: Counter[int] = Counter()
    for start in range(0, len(objects), _CHUNK):
        internal.update(map(id, referents(*objects[start : start + _CHUNK])))
    external = []
    for key, count in zip(ids, counts):
        if count - offset - internal.get(key, 0) > 0:
            external.append(key)
    del internal, counts
    remaining = set(ids)
    del ids
    remaining.difference_update(external)
    frontier = list(map(by_id.__getitem__, external))
    while frontier:
        found: Set[int] = set()
        for start in range(0, len(frontier), _CHUNK):
            children = referents(*frontier[start : start + _CHUNK])
            found.update(remaining.intersection(map(id, children)))
            del children
        remaining -= found
        frontier = list(map(by_id.__getitem__, found))
    return objects, by_id, external, remaining


class HeapGraph:
    """One non-destructive scan of the GC heap; use as a context manager (or call close()).

    While open it holds every scanned object (so ids stay valid); :meth:`close` lets go of
    all of them.
    """

    def __init__(self) -> None:
        self._objects: List[Any] = []
        self._by_id: Dict[int, Any] = {}
        self._external: List[int] = []
        self._garbage: Set[int] = set()
        self._edges_cache: Dict[int, List[int]] = {}
        self._reverse: Optional[Dict[int, List[int]]] = None

    # -- scanning ------------------------------------------------------------------------
    @classmethod
    def scan(cls) -> HeapGraph:
        """Scan the heap now (pauses automatic collection while it runs; collects nothing)."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            objects, by_id, external, garbage = _scan_heap()
        finally:
            if enabled:
                gc.enable()
        graph = cls()
        graph._objects = objects
        graph._by_id = by_id
        graph._external = external
        graph._garbage = garbage
        return graph

    def close(self) -> None:
        """Let go of every object the scan holds."""
        self._objects = []
        self._by_id = {}
        self._external = []
        self._garbage = set()
        self._edges_cache = {}
        self._reverse = None

    def __enter__(self) -> HeapGraph:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- queries -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """How many GC-tracked objects the scan saw."""
        return len(self._by_id)

    @property
    def garbage_count(self) -> int:
        return len(self._garbage)

    def contains(self, obj: Any) -> bool:
        """Whether ``obj`` was seen by the scan (objects made later, or frozen ones, were not)."""
        return id(obj) in self._by_id and self._by_id[id(obj)] is obj

    def instances(self, cls: type) -> List[Any]:
        """The scanned objects whose type is exactly ``cls``."""
        return [obj for obj in self._objects if type(obj) is cls]

    def is_garbage(self, obj: Any) -> bool:
        """Whether ``obj`` is unreachable: only a cyclic collection would free it."""
        return self.contains(obj) and id(obj) in self._garbage

    def _edges(self, node: int) -> List[int]:
        edges = self._edges_cache.get(node)
        if edges is None:
            garbage = self._garbage
            edges = [i for i in map(id, referents(self._by_id[node])) if i in garbage]
            self._edges_cache[node] = edges
        return edges

    def _cycle_ids(self, start: int, limit: int) -> Optional[List[int]]:
        parent = {start: start}
        frontier = [start]
        visited = 0
        while frontier and visited < limit:
            following = []
            for node in frontier:
                visited += 1
                for child in self._edges(node):
                    if child == start:
                        path = [node]
                        while path[-1] != start:
                            path.append(parent[path[-1]])
                        path.reverse()
                        return path
                    if child not in parent:
                        parent[child] = node
                        following.append(child)
            frontier = following
        return None

    def _reverse_edges(self) -> Dict[int, List[int]]:
        if self._reverse is None:
            reverse: Dict[int, List[int]] = {}
            for node in self._garbage:
                for child in self._edges(node):
                    reverse.setdefault(child, []).append(node)
            for referrers in reverse.values():
                referrers.sort()
            self._reverse = reverse
        return self._reverse

    def cycle_of(self, obj: Any, *, limit: int = CYCLE_SEARCH_LIMIT) -> Optional[RefPath]:
        """The shortest garbage cycle through ``obj``, or the nearest one that holds it.

        ``None`` if ``obj`` is not garbage (or no cycle was found within ``limit`` objects).
        """
        if not self.is_garbage(obj):
            return None
        start = id(obj)
        cycle = self._cycle_ids(start, limit)
        if cycle is not None:
            return RefPath("cycle", describe_chain([self._by_id[i] for i in cycle], cyclic=True))
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
                    found = self._cycle_ids(referrer, limit)
                    if found is None:
                        continue
                    chain = [referrer]
                    while chain[-1] != start:
                        chain.append(parent[chain[-1]])
                    return self._held_by(found, chain)
            frontier = following
        return None

    def _held_by(self, cycle: List[int], chain: List[int]) -> RefPath:
        """The cycle ``cycle`` (starting at ``chain[0]``) holding ``chain[-1]`` through ``chain``.

        The drawn cycle starts at its first object that is not a plain container, and the
        held path starts at the object whose ``__dict__`` holds the chain, if it is one.
        """
        objects = [self._by_id[i] for i in cycle]
        first = next((k for k, o in enumerate(objects) if not isinstance(o, CONTAINERS)), 0)
        objects = objects[first:] + objects[:first]
        position = (len(objects) - first) % len(objects)  # where chain[0] is now
        held_objects = [self._by_id[i] for i in chain]
        before = objects[position - 1]
        if isinstance(objects[position], dict) and instance_dict(before, objects[position]):
            held_objects.insert(0, before)
            position = (position - 1) % len(objects)
        steps, shown = describe(objects, True)
        held_from = max((n for n, index in enumerate(shown) if index <= position), default=0)
        held = describe_chain(held_objects, cyclic=False)
        return RefPath("cycle", steps, held=held, held_from=held_from)

    def paths_to(self, targets: Iterable[Any]) -> Dict[int, RefPath]:
        """Shortest paths from a root to each reachable target, keyed by ``id(target)``."""
        by_id = self._by_id
        wanted = {id(t) for t in targets if self.contains(t)}
        wanted -= self._garbage
        if not wanted:
            return {}
        parent: Dict[int, int] = {}
        labels: Dict[int, str] = {}
        queue: Deque[int] = deque()

        def seed(value: Any, label: str) -> None:
            key = id(value)
            if key in by_id and key not in parent and by_id[key] is value:
                parent[key] = key
                labels[key] = label
                queue.append(key)

        for name, module in list(sys.modules.items()):
            namespace = (
                getattr(module, "__dict__", None) if isinstance(module, ModuleType) else None
            )
            if isinstance(namespace, dict):
                for key, value in list(namespace.items()):
                    seed(value, f"module global {name}.{key}")
        for ident, top in sys._current_frames().items():
            thread = thread_name(ident)
            frame: Optional[FrameType] = top
            while frame is not None:
                if not is_machinery(frame.f_code.co_filename):  # the example service is not
                    for label, value in _frame_roots(frame, thread):
                        seed(value, label)
                frame = frame.f_back
            del top, frame
        found = self._search(queue, parent, wanted)
        if wanted - found:
            for key in self._external:
                seed(by_id[key], EXTERNAL_ROOT)
            found |= self._search(queue, parent, wanted - found)
        paths = {}
        for key in found:
            chain = [key]
            while parent[chain[-1]] != chain[-1]:
                chain.append(parent[chain[-1]])
            chain.reverse()
            steps = describe_chain([by_id[i] for i in chain], cyclic=False)
            paths[key] = RefPath("root", steps, root=labels[chain[0]])
        return paths

    def _search(self, queue: Deque[int], parent: Dict[int, int], wanted: Set[int]) -> Set[int]:
        by_id = self._by_id
        found = {key for key in queue if key in wanted}
        remaining = len(wanted) - len(found)
        while queue and remaining > 0:
            node = queue.popleft()
            for child in map(id, referents(by_id[node])):
                if child in by_id and child not in parent:
                    parent[child] = node
                    queue.append(child)
                    if child in wanted:
                        found.add(child)
                        remaining -= 1
        return found
