"""Reference paths and cycles as plain data (:class:`PathStep`, :class:`RefPath`), described
from the real objects: what each object is, and how the next one is reached from it
(``closure cell 'transcriber'``, ``attribute 'sessions'``). :func:`find_cycle` looks for the
shortest cycle through one object; ``heap.py`` finds them across the whole heap.
"""

from __future__ import annotations

import gc
import re
import sys
import threading
from dataclasses import dataclass
from types import BuiltinFunctionType, CellType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .._core.compat import DATACLASS_SLOTS, referents
from .._sdk.attributes import is_sdk_attribute
from .._sdk.modules import is_sdk_class
from .._sdk.signals import describe_callable, public_name, signal_owner

__all__ = [
    "CONTAINERS",
    "PathStep",
    "RefPath",
    "describe",
    "describe_chain",
    "find_cycle",
    "instance_dict",
    "key_text",
]

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


def _is_event_signal(obj: Any) -> bool:
    cls = type(obj)
    return cls.__name__ == "EventSignal" and is_sdk_class(cls)


def _signal_name(signal: Any) -> str:
    """The name of an EventSignal on the object that owns it ('' if unknown)."""
    try:
        return signal_owner(signal)[1]
    except Exception:
        return ""


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}\Z")


def key_text(key: Any) -> str:
    """A dict key as shown in a path: names only; strings that could be secrets (keys,
    tokens: long, with digits, or not identifiers) are shown as their type."""
    if isinstance(key, str) and _plain_name(key):
        return f"'{key}'"
    return f"<{type(key).__name__}>"


def _plain_name(name: str) -> bool:
    """Whether a dict key or attribute name can be shown: an identifier of up to 40
    characters that does not look like a key or token (16+ characters with 4+ digits)."""
    return bool(_PLAIN_KEY.match(name)) and not (
        len(name) >= 16 and sum(c.isdigit() for c in name) >= 4
    )


def _type_name(cls: type) -> str:
    """A class's qualified name without the ``f.<locals>.`` of classes made in functions."""
    return cls.__qualname__.rsplit(".<locals>.", 1)[-1]


def _dict_key(mapping: Any, value: Any) -> Optional[str]:
    try:
        for key, item in list(mapping.items()):
            if item is value:
                return key_text(key)
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
    if _is_event_signal(dst) and public_name(attribute):
        return ""  # the EventSignal's label names the signal
    if is_sdk_attribute(type(src), attribute):
        return ""  # the SDK's own attribute names say nothing to the user
    if not _plain_name(attribute):
        return "an attribute"  # setattr() takes any string: one that could be a secret
    # One the application set, on its own object or on an SDK object (recognizer.job = self).
    return f"attribute '{attribute}'"


def _code_of(obj: Any) -> Any:
    if isinstance(obj, MethodType):
        obj = obj.__func__
    return getattr(obj, "__code__", None)


def _read(obj: Any, name: str) -> Any:
    """An instance attribute read past any ``__getattribute__`` override (``None`` if unset)."""
    try:
        return object.__getattribute__(obj, name)
    except Exception:
        return None


def _thread_label(thread: threading.Thread) -> str:
    """``Thread 'worker-3' (target serve)``; a finished thread has no target any more."""
    label = _type_name(type(thread))
    name = _read(thread, "_name")
    if isinstance(name, str):  # shown as everywhere else in a report (thread names)
        label += f" '{name[:60]}'"
    target = _read(thread, "_target")
    if target is not None:
        qualname = describe_callable(target).qualname
        label += f" (target {qualname.rsplit('.<locals>.', 1)[-1]})"
    return label


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
    if issubclass(type(obj), threading.Thread):  # type(): isinstance() may run user code
        return _thread_label(obj)
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


def instance_dict(src: Any, candidate: Any) -> bool:
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
        if isinstance(dst, dict) and instance_dict(src, dst):
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
    return describe(chain, cyclic)[0]


def describe(chain: Sequence[Any], cyclic: bool) -> Tuple[Tuple[PathStep, ...], List[int]]:
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
CONTAINERS = (dict, list, tuple, set, frozenset, CellType)


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
                for child in referents(node):
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
