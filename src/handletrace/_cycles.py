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
(:class:`RefPath`): a text like the seed's drawing, Graphviz DOT (:func:`to_dot`) and, when
Graphviz is installed, SVG (:func:`to_svg`).
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, deque
from dataclasses import dataclass
from types import BuiltinFunctionType, CellType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any, Deque, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ._compat import DATACLASS_SLOTS
from ._registry import thread_name
from ._signals import _public_name

__all__ = [
    "HeapGraph",
    "PathStep",
    "RefPath",
    "find_cycle",
    "to_dot",
    "to_svg",
]

SDK_PACKAGE = "azure.cognitiveservices.speech"
_OWN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
_CO_OPTIMIZED = 0x0001
_CHUNK = 20_000  # objects per gc.get_referents() call while scanning
#: Objects a single cycle search may visit before giving up.
CYCLE_SEARCH_LIMIT = 20_000
EXTERNAL_ROOT = "referenced from outside the Python heap (a running function's variable or C code)"


# -- value types ---------------------------------------------------------------------------


@dataclass(frozen=True, **DATACLASS_SLOTS)
class PathStep:
    """One object on a reference path.

    ``label`` names the object (``"EventSignal (transcribed)"``, ``"function on_transcribed"``);
    ``note`` says how the next object is reached from it when that is worth saying
    (``"closure cell 'transcriber'"``, ``"attribute 'sessions'"``, ``"key 'abc'"``);
    ``filename``/``lineno`` give a function's or method's definition site.
    """

    label: str
    type: str
    note: str = ""
    filename: str = ""
    lineno: int = 0

    def __str__(self) -> str:
        return f"{self.label} ({self.note})" if self.note else self.label

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}" if self.filename else ""

    @property
    def edge(self) -> str:
        """The same as ``note``: the label of the edge to the next step."""
        return self.note


@dataclass(frozen=True, **DATACLASS_SLOTS)
class RefPath:
    """A reference cycle (``kind == "cycle"``) or a path from a root (``kind == "root"``).

    For a cycle, the last step refers back to the first. When the object a cycle keeps alive
    is not on the cycle itself, ``held`` is the path from the cycle's step ``held_from`` (its
    first step, the same object) to it.
    For a root path, ``root`` says what holds the first step (``"module global app.cache"``).
    """

    kind: str
    steps: Tuple[PathStep, ...]
    root: str = ""
    held: Tuple[PathStep, ...] = ()
    held_from: int = 0

    @property
    def text(self) -> str:
        """The path on one line, e.g. ``A -> EventSignal (x) -> list -> function f -> A``."""
        chain = " -> ".join(str(step) for step in self.steps)
        if self.kind == "root":
            return f"{self.root}: {chain}" if self.root else chain
        text = f"{chain} -> {self.steps[0].label}" if self.steps else ""
        if self.held:
            text += "; " + " -> ".join(str(step) for step in self.held)
        return text

    def __str__(self) -> str:
        return self.text


# -- describing real objects ---------------------------------------------------------------


def _is_sdk_type(cls: type) -> bool:
    return (getattr(cls, "__module__", None) or "").startswith(SDK_PACKAGE)


def _is_event_signal(obj: Any) -> bool:
    cls = type(obj)
    return cls.__name__ == "EventSignal" and _is_sdk_type(cls)


def _signal_name(signal: Any) -> str:
    """The name of an EventSignal on the object that owns it ('' if unknown)."""
    try:
        context = vars(signal).get("_EventSignal__context")
        owner = context.get() if context is not None else None
        if owner is None:
            return ""
        for attribute, value in list(vars(owner).items()):
            if value is signal:
                return _public_name(attribute) or attribute
    except Exception:
        pass
    return ""


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}\Z")


def _key_text(key: Any) -> str:
    """A dict key as shown in a path: names only; strings that could be secrets (keys,
    tokens: long, with digits, or not identifiers) are shown as their type."""
    if (
        isinstance(key, str)
        and _PLAIN_KEY.match(key)
        and not (len(key) >= 16 and sum(c.isdigit() for c in key) >= 4)
    ):
        return f"'{key}'"
    return f"<{type(key).__name__}>"


def _type_name(cls: type) -> str:
    """A class's qualified name without the ``f.<locals>.`` of classes made in functions."""
    return cls.__qualname__.rsplit(".<locals>.", 1)[-1]


def _dict_key(mapping: Any, value: Any) -> Optional[str]:
    try:
        for key, item in list(mapping.items()):
            if item is value:
                return _key_text(key)
            if key is value:
                return "key"
    except Exception:
        pass
    return None


def _attribute_of(src: Any, dst: Any) -> Optional[str]:
    """The name of the attribute of ``src`` that holds ``dst`` (instance dict or slots)."""
    try:
        namespace = vars(src)
    except TypeError:
        namespace = None
    if isinstance(namespace, dict):
        for key, value in list(namespace.items()):
            if value is dst and isinstance(key, str):
                return key
    for klass in type(src).__mro__:
        for name, descriptor in list(vars(klass).items()):
            if type(descriptor).__name__ == "member_descriptor":
                try:
                    if descriptor.__get__(src, type(src)) is dst:
                        return str(name)
                except Exception:
                    continue
    return None


def _attribute_note(src: Any, dst: Any, attribute: str) -> str:
    if _is_event_signal(dst) and _public_name(attribute):
        return ""  # the EventSignal's label names the signal
    if _is_sdk_type(type(src)):
        return ""  # the SDK's private attribute names say nothing to the user
    return f"attribute '{attribute}'"


def _code_of(obj: Any) -> Any:
    if isinstance(obj, MethodType):
        obj = obj.__func__
    return getattr(obj, "__code__", None)


def _label(obj: Any) -> str:
    if isinstance(obj, FunctionType):
        return f"function {obj.__name__}"
    if isinstance(obj, MethodType):
        qualname = getattr(obj.__func__, "__qualname__", "?")
        return f"method {qualname.rsplit('.<locals>.', 1)[-1]}"
    if isinstance(obj, BuiltinFunctionType):
        return f"builtin {getattr(obj, '__qualname__', '?')}"
    if isinstance(obj, ModuleType):
        return f"module {obj.__name__}"
    if isinstance(obj, type):
        return f"class {_type_name(obj)}"
    if isinstance(obj, FrameType):
        return f"frame {obj.f_code.co_name}"
    if isinstance(obj, CellType):
        return "cell"
    if _is_event_signal(obj):
        name = _signal_name(obj)
        return f"EventSignal ({name})" if name else "EventSignal"
    return _type_name(type(obj))


def _step(obj: Any, note: str) -> PathStep:
    code = _code_of(obj) if isinstance(obj, (FunctionType, MethodType)) else None
    return PathStep(
        label=_label(obj),
        type=_type_name(type(obj)),
        note=note,
        filename=code.co_filename if code is not None else "",
        lineno=code.co_firstlineno if code is not None else 0,
    )


def _instance_dict(src: Any, candidate: Any) -> bool:
    if isinstance(src, (dict, list, tuple, ModuleType, type, FunctionType, CellType)):
        return False
    try:
        return vars(src) is candidate
    except TypeError:
        return False


def _class_dict(src: type, candidate: Any) -> bool:
    if not isinstance(candidate, dict):
        return False
    namespace = src.__dict__
    return len(namespace) == len(candidate) and all(
        candidate.get(k, _MISSING) is v for k, v in namespace.items()
    )


_MISSING = object()


def _hop(chain: Sequence[Any], i: int, end: int) -> Tuple[str, int]:
    """The note for the edge leaving ``chain[i]`` and the index of the next object shown.

    Containers that only implement an edge (an instance's ``__dict__``, a function's closure
    tuple and cell, its globals or defaults) are folded into the note.
    """
    src, dst = chain[i], chain[i + 1]
    if i + 2 <= end:
        after = chain[i + 2]
        if isinstance(dst, dict) and _instance_dict(src, dst):
            attribute = _attribute_of(src, after)
            return (_attribute_note(src, after, attribute) if attribute else ""), i + 2
        if isinstance(src, FunctionType):
            closure = src.__closure__
            if (
                closure is not None
                and dst is closure
                and i + 3 <= end
                and isinstance(after, CellType)
            ):
                names = src.__code__.co_freevars
                for index, cell in enumerate(closure):
                    if cell is after and index < len(names):
                        return f"closure cell '{names[index]}'", i + 3
                return "closure cell", i + 3
            if dst is src.__globals__:
                key = _dict_key(dst, after)
                return (f"global {key}" if key else "global"), i + 2
            if dst is src.__defaults__ or dst is src.__kwdefaults__:
                return "default argument", i + 2
        if isinstance(src, ModuleType) and dst is getattr(src, "__dict__", None):
            key = _dict_key(dst, after)
            return (f"global {key}" if key else "global"), i + 2
        if isinstance(src, type) and _class_dict(src, dst):
            key = _dict_key(dst, after)
            return (f"class attribute {key}" if key else "class attribute"), i + 2
    if isinstance(src, dict):
        key = _dict_key(src, dst)
        return (f"key {key}" if key and key != "key" else (key or "")), i + 1
    if isinstance(src, (list, tuple, set, frozenset, MethodType, CellType, FrameType)):
        return "", i + 1
    if isinstance(src, FunctionType):
        return "", i + 1
    attribute = _attribute_of(src, dst)
    return (_attribute_note(src, dst, attribute) if attribute else ""), i + 1


def describe_chain(chain: Sequence[Any], *, cyclic: bool) -> Tuple[PathStep, ...]:
    """Steps for a chain of objects, each referring to the next.

    For a cycle, ``chain`` lists each object once and the last refers back to the first.
    """
    return _describe(chain, cyclic)[0]


def _describe(chain: Sequence[Any], cyclic: bool) -> Tuple[Tuple[PathStep, ...], List[int]]:
    """The steps, and the index in ``chain`` of the object each step shows."""
    objects = list(chain)
    if cyclic:
        objects.append(objects[0])
    end = len(objects) - 1
    steps: List[PathStep] = []
    shown: List[int] = []
    i = 0
    while i < end:
        note, nxt = _hop(objects, i, end)
        steps.append(_step(objects[i], note))
        shown.append(i)
        i = nxt
    if not cyclic and objects:
        steps.append(_step(objects[end], ""))
        shown.append(end)
    return tuple(steps), shown


#: Objects that only implement an edge; a drawn cycle does not start at one.
_CONTAINERS = (dict, list, tuple, set, frozenset, CellType)


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
        return [
            (f"local variable {_key_text(k)} in {where}", v) for k, v in list(namespace.items())
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
            for v in gc.get_referents(frame)
            if id(v) not in skip
        ]
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
        internal.update(map(id, gc.get_referents(*objects[start : start + _CHUNK])))
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
            referents = gc.get_referents(*frontier[start : start + _CHUNK])
            found.update(remaining.intersection(map(id, referents)))
            del referents
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

    def is_garbage(self, obj: Any) -> bool:
        """Whether ``obj`` is unreachable: only a cyclic collection would free it."""
        return self.contains(obj) and id(obj) in self._garbage

    def _edges(self, node: int) -> List[int]:
        edges = self._edges_cache.get(node)
        if edges is None:
            garbage = self._garbage
            edges = [i for i in map(id, gc.get_referents(self._by_id[node])) if i in garbage]
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
        first = next((k for k, o in enumerate(objects) if not isinstance(o, _CONTAINERS)), 0)
        objects = objects[first:] + objects[:first]
        position = (len(objects) - first) % len(objects)  # where chain[0] is now
        held_objects = [self._by_id[i] for i in chain]
        before = objects[position - 1]
        if isinstance(objects[position], dict) and _instance_dict(before, objects[position]):
            held_objects.insert(0, before)
            position = (position - 1) % len(objects)
        steps, shown = _describe(objects, True)
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
                if not frame.f_code.co_filename.startswith(_OWN_DIR):
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
            for child in map(id, gc.get_referents(by_id[node])):
                if child in by_id and child not in parent:
                    parent[child] = node
                    queue.append(child)
                    if child in wanted:
                        found.add(child)
                        remaining -= 1
        return found


def find_cycle(obj: Any, *, limit: int = 100_000) -> Optional[RefPath]:
    """The shortest reference cycle through ``obj`` (read-only; ``None`` if there is none).

    Searches what ``obj`` refers to, up to ``limit`` objects, but not through classes,
    modules or module namespaces: every object reaches those, and the cycles through them
    (a function's globals holding the function) hold nothing alive by accident.
    """
    start = id(obj)
    namespaces = {
        id(vars(module)) for module in list(sys.modules.values()) if isinstance(module, ModuleType)
    }
    parent: Dict[int, int] = {start: start}
    objects: Dict[int, Any] = {start: obj}
    frontier = [obj]
    visited = 0
    try:
        while frontier and visited < limit:
            following = []
            for node in frontier:
                visited += 1
                for child in gc.get_referents(node):
                    key = id(child)
                    if key == start:
                        chain = [id(node)]
                        while chain[-1] != start:
                            chain.append(parent[chain[-1]])
                        chain.reverse()
                        return RefPath(
                            "cycle", describe_chain([objects[i] for i in chain], cyclic=True)
                        )
                    if (
                        key not in parent
                        and gc.is_tracked(child)
                        and not isinstance(child, (type, ModuleType))
                        and key not in namespaces
                    ):
                        parent[key] = id(node)
                        objects[key] = child
                        following.append(child)
            frontier = following
        return None
    finally:
        objects.clear()
        frontier = []


# -- Graphviz ------------------------------------------------------------------------------


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_node_label(step: PathStep) -> str:
    if step.filename:
        return f"{step.label}\n{os.path.basename(step.filename)}:{step.lineno}"
    return step.label


def to_dot(path: RefPath, name: str = "handletrace") -> str:
    """The path as a Graphviz DOT digraph (nodes are objects, edge labels are notes)."""
    lines = [
        f"digraph {_dot_string(name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for index, step in enumerate(path.steps):
        lines.append(f"  n{index} [label={_dot_string(_dot_node_label(step))}];")
    if path.kind == "root" and path.root:
        lines.append(f'  root [shape=plaintext, style="", label={_dot_string(path.root)}];')
        if path.steps:
            lines.append("  root -> n0;")
    for index, step in enumerate(path.steps):
        if index + 1 < len(path.steps):
            target = f"n{index + 1}"
        elif path.kind == "cycle":
            target = "n0"
        else:
            break
        attributes = f" [label={_dot_string(step.note)}]" if step.note else ""
        if path.kind == "cycle" and target == "n0":
            attributes = (
                f" [label={_dot_string(step.note)}, color=red, fontcolor=red]"
                if step.note
                else " [color=red]"
            )
        lines.append(f"  n{index} -> {target}{attributes};")
    previous = f"n{path.held_from}"
    previous_note = path.held[0].note if path.held else ""
    for index, step in enumerate(path.held[1:], 1):
        lines.append(f"  h{index} [label={_dot_string(_dot_node_label(step))}];")
        attributes = f" [label={_dot_string(previous_note)}]" if previous_note else ""
        lines.append(f"  {previous} -> h{index}{attributes};")
        previous, previous_note = f"h{index}", step.note
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(path: RefPath, name: str = "handletrace", *, timeout: float = 30.0) -> str:
    """The path drawn as SVG by Graphviz ``dot``; raises ``RuntimeError`` if it is not installed."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "Graphviz 'dot' was not found on PATH: install Graphviz (e.g. apt-get install "
            "graphviz) for SVG, or use to_dot() and render it elsewhere"
        )
    result = subprocess.run(
        [dot, "-Tsvg"],
        input=to_dot(path, name),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Graphviz dot failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout
