"""Which instance attributes of an SDK object are the SDK's own, and which the application set.

The SDK's classes keep their state in instance attributes: name-mangled private ones
(``_Recognizer__handle``, ``_ConversationTranscriber__transcribed_signal``) and a few with a
single underscore (``_properties``, ``_audio_keep_alive``). An application may add its own
to the same object (``recognizer.job = self``): those say something to the user, the SDK's
do not.

The rule, read from the SDK's code rather than from a list: an attribute is the SDK's if

* its name is mangled for an SDK class in the object's MRO (``_<Class>__name``), or
* an SDK class in the MRO declares it (a class attribute of that name, e.g. the
  ``_Recognizer__session_started_signal = None`` that declares a lazily created signal), or
* the code of an SDK class in the MRO stores it (a ``STORE_ATTR`` of that name in one of its
  methods, properties or the functions nested in them: what ``__init__`` sets).

Everything else was set by the application, or by a user subclass's own code (whose
attributes are the application's too).
"""

from __future__ import annotations

import dis
from types import CodeType
from typing import Any, Dict, FrozenSet, Iterator, Set, Tuple

from .modules import is_sdk_class

__all__ = ["is_sdk_attribute", "sdk_instance_attributes"]

_STORE_OPS = frozenset({"STORE_ATTR", "DELETE_ATTR"})

# Per SDK class (a finite set: the SDK's own classes only): (the names its code stores, the
# names its namespace declares).
_known: Dict[type, Tuple[FrozenSet[str], FrozenSet[str]]] = {}


def _codes(value: Any) -> Iterator[CodeType]:
    """The code objects of a class attribute: a function, static/class method or property."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    functions = (value.fget, value.fset, value.fdel) if isinstance(value, property) else (value,)
    for function in functions:
        code = getattr(function, "__code__", None)
        if isinstance(code, CodeType):
            yield code


def _stores(code: CodeType, names: Set[str]) -> None:
    for instruction in dis.get_instructions(code):
        if instruction.opname in _STORE_OPS and isinstance(instruction.argval, str):
            names.add(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, CodeType):  # nested functions, lambdas, comprehensions
            _stores(const, names)


def _class_names(cls: type) -> Tuple[FrozenSet[str], FrozenSet[str]]:
    """(names the code of SDK class ``cls`` stores, names its namespace declares); empty for
    a class that is not the SDK's. Worked out once per class."""
    known = _known.get(cls)
    if known is None:
        stored: Set[str] = set()
        declared: FrozenSet[str] = frozenset()
        if is_sdk_class(cls):
            namespace = dict(vars(cls))
            declared = frozenset(name for name in namespace if not name.startswith("__"))
            for value in namespace.values():
                for code in _codes(value):
                    _stores(code, stored)
        known = _known[cls] = (frozenset(stored), declared)
    return known


def _sdk_bases(cls: type) -> Iterator[type]:
    try:
        mro = cls.__mro__
    except Exception:
        return
    for klass in mro:
        if isinstance(klass, type) and is_sdk_class(klass):
            yield klass


def _mangling_prefix(cls: type) -> str:
    stripped = cls.__name__.lstrip("_")
    return f"_{stripped}__" if stripped else "\0"


def is_sdk_attribute(cls: type, name: str) -> bool:
    """Whether instance attribute ``name`` of a ``cls`` object is the SDK's own (see the
    module docstring); ``False`` for an attribute the application set."""
    for klass in _sdk_bases(cls):
        stored, declared = _class_names(klass)
        if name.startswith(_mangling_prefix(klass)) or name in stored or name in declared:
            return True
    return False


def sdk_instance_attributes(cls: type) -> FrozenSet[str]:
    """The instance attributes the SDK's code sets on a ``cls`` object (what its
    ``__init__`` and other methods store), for reading them one by one: reading an object's
    ``__dict__`` would make Python 3.11+ create one for an object that keeps its attributes
    inline, which changes what the object refers to while the heap is being analysed."""
    names: Set[str] = set()
    for klass in _sdk_bases(cls):
        names.update(_class_names(klass)[0])
    return frozenset(names)
