"""Who holds a native handle: its owner and parent SDK objects, found when a record is built.

The hot path records only the sequence number (by the ``_Handle``'s address) and the code
that made it; the ``_Handle`` itself, which SDK object keeps it (the owner, e.g. a
``PropertyCollection``) and which SDK object keeps that one (the parent, e.g. the
``ConversationTranscriber``) are worked out here, for many records at once, from the
collector's lists: one heap pass per level, at report time only, linear in the heap
(``_core/heappass.py``: a pass holds no object another thread may still be building; what
it keeps are ``_Handle`` objects, SDK objects and dictionaries).
"""

from __future__ import annotations

import gc
import sys
import weakref
from functools import partial
from itertools import compress
from operator import not_
from types import CodeType, MemberDescriptorType
from typing import Any, Callable, Collection, Dict, FrozenSet, List, Optional, Sequence, Tuple

from .._core.compat import referents
from .._core.heappass import chains, heap_pass, ids_of_steps, select_instances
from .attributes import sdk_instance_attributes
from .modules import SDK_MODULE, handle_type, is_sdk_class, is_sdk_object

__all__ = ["class_of_code", "handles_by_seq", "owners_of", "scan_sees_all"]

#: (owner, owner's class name, parent) per handle; the owner is ``None`` when no SDK object
#: holds the handle any more, and its class name then comes from the code that made it.
Owners = Tuple[Any, str, Any]

_code_classes: Dict[CodeType, str] = {}


def class_of_code(code: Optional[CodeType]) -> str:
    """The qualified name of the class whose method ``code`` is ("" for a plain function)."""
    if code is None:
        return ""
    qualname = getattr(code, "co_qualname", None)  # Python 3.11+
    if qualname is not None:
        head = qualname.split(".<locals>", 1)[0]
        return head.rpartition(".")[0]
    if not _code_classes:
        _index_sdk_methods()
    return _code_classes.get(code, "")


def _index_sdk_methods() -> None:
    # Python 3.9/3.10 code objects have no qualified name: map the SDK's methods once.
    for name, module in list(sys.modules.items()):
        if not name.startswith(SDK_MODULE) or module is None:
            continue
        for cls in list(vars(module).values()):
            if not isinstance(cls, type) or cls.__module__ != name:
                continue
            for attr in vars(cls).values():
                func = getattr(attr, "__func__", attr)
                func = getattr(func, "fget", func)
                code = getattr(func, "__code__", None)
                if isinstance(code, CodeType):
                    _code_classes.setdefault(code, cls.__qualname__)


# The size of the collector's permanent generation when this module was imported (the
# lowest seen since; see scan_sees_all). Not 0 without a gc.freeze() call on CPython 3.12,
# which freezes objects of its own start-up (375 of them on 3.12.1).
_frozen_before_import = gc.get_freeze_count()


def scan_sees_all() -> bool:
    """Whether the collector's lists hold every ``_Handle`` on record: not if ``gc.freeze()``
    ran since handletrace was imported (frozen objects are in none of the lists; a
    ``_Handle`` not found may then be alive).

    The rule: a ``_Handle`` on record was made while handletrace was installed, so after this
    module was imported, and ``gc.freeze()`` freezes every object the collector tracks at
    once: that ``_Handle`` together with every other object made since the import
    (handletrace's own among them). Objects frozen before the import (by the interpreter,
    or by the program) cannot be one; only a permanent generation grown past its size at the
    import can hold one. Frozen objects can still be freed, so that size only goes down:
    the lowest seen is kept (a program that froze objects before the import, then freed
    more of them than a later freeze adds, would still be taken for one that froze none).
    """
    global _frozen_before_import
    frozen = gc.get_freeze_count()
    if frozen > _frozen_before_import:
        return False
    _frozen_before_import = frozen
    return True


def handles_by_seq(seqs: Collection[int], seq_of: Callable[[Any], Optional[int]]) -> Dict[int, Any]:
    """seq -> the live ``_Handle`` whose record it is (``seq_of(handle)``), for those of
    ``seqs`` found alive.

    One pass over the objects the collector tracks (every ``_Handle`` is one), frozen ones
    excepted (see ``scan_sees_all``): a weak reference per handle instead cost 2-3 % of
    creating the cheapest SDK object.
    """
    handle_class = handle_type()
    if handle_class is None or not seqs:
        return {}
    wanted = set(seqs)
    found: Dict[int, Any] = {}
    for obj in select_instances(handle_class):
        seq = seq_of(obj)
        if seq in wanted:
            found[seq] = obj
    return found


def owners_of(handles: Sequence[Any], codes: Sequence[Optional[CodeType]]) -> List[Owners]:
    """For each ``_Handle`` (or ``None`` if it is gone), its owner, owner name and parent.

    ``codes[i]`` is the code that made ``handles[i]``; among several SDK objects holding a
    handle, the one of that code's class is the owner.
    """
    results: List[Owners] = [(None, class_of_code(code), None) for code in codes]
    alive = [(index, handle) for index, handle in enumerate(handles) if handle is not None]
    if not alive:
        return results
    holders = _holders([handle for _, handle in alive])
    owners: Dict[int, Any] = {}
    for index, handle in alive:
        owner = _choose(holders.get(id(handle)), results[index][1])
        if owner is not None:
            owners[index] = owner
    unique = list({id(owner): owner for owner in owners.values()}.values())
    parents = _holders(unique) if unique else {}
    for index, owner in owners.items():
        held_by_sdk = [p for p in parents.get(id(owner), ()) if _holds_in_sdk_attribute(p, owner)]
        parent = _choose(held_by_sdk, "")
        results[index] = (owner, type(owner).__qualname__, parent)
    return results


def _choose(candidates: Optional[List[Any]], class_name: str) -> Any:
    if not candidates:
        return None
    for candidate in candidates:
        if any(cls.__qualname__ == class_name for cls in type(candidate).__mro__):
            return candidate
    return candidates[0]


def _holds_in_sdk_attribute(holder: Any, value: Any) -> bool:
    """Whether ``holder`` keeps ``value`` in one of the SDK's own attributes (the rule of
    ``attributes.py``): a user's subclass of an SDK class (a ``PullAudioInputStreamCallback``
    that keeps the recognizer in ``self.recognizer``) holds it in the application's
    attribute, so it is not the SDK parent of what it holds."""
    cls = type(holder)
    names = _sdk_attributes.get(cls)
    if names is None:
        names = _sdk_attributes[cls] = sdk_instance_attributes(cls)
    for name in names:
        if _plain_attribute(cls, name) and _read_attribute(holder, name) is value:
            return True
    return False


def _plain_attribute(cls: type, name: str) -> bool:
    """Whether reading ``name`` on a ``cls`` object runs no code: no class in its MRO
    defines it as a descriptor that computes it (a property); a slot is plain."""
    for klass in cls.__mro__:
        found = vars(klass).get(name)
        if found is not None or name in vars(klass):
            getter = getattr(type(found), "__get__", None)
            return getter is None or isinstance(found, MemberDescriptorType)
    return True


def _read_attribute(holder: Any, name: str) -> Any:
    # object.__getattribute__ reads an instance attribute where it is (inline values on
    # 3.11+) without making the object a __dict__; the class's __getattr__ is not called.
    try:
        return object.__getattribute__(holder, name)
    except Exception:
        return None


#: Per class: the instance attributes the SDK's code sets (see ``attributes.py``).
_sdk_attributes: weakref.WeakKeyDictionary[type, FrozenSet[str]] = weakref.WeakKeyDictionary()


def _sdk_types() -> FrozenSet[int]:
    """The ids of the SDK's classes and of every class derived from one (the application's
    subclasses too): what an SDK object can be an instance of."""
    found: Dict[int, type] = {}
    pending: List[type] = []
    for name, module in list(sys.modules.items()):
        if name.startswith(SDK_MODULE) and module is not None:
            pending.extend(v for v in list(vars(module).values()) if isinstance(v, type))
    while pending:
        cls = pending.pop()
        if id(cls) in found or not (is_sdk_class(cls) or any(map(is_sdk_class, cls.__mro__))):
            continue
        found[id(cls)] = cls
        try:
            pending.extend(type.__subclasses__(cls))
        except TypeError:
            continue
    return frozenset(found)


def _referrers(types: FrozenSet[int], wanted: FrozenSet[int]) -> List[Any]:
    """The objects whose class is one of ``types`` (ids) and that refer to an object of
    ``wanted`` (ids), in ``gc`` order: one pass (the classes are tested first, so only
    their objects' references are read)."""
    of_type = (partial(map, id), partial(map, types.__contains__))
    refers = (
        partial(map, gc.get_referents),
        partial(map, partial(map, id)),
        partial(map, wanted.isdisjoint),
        partial(map, not_),
    )
    found: List[Any] = []
    steps = [
        *chains((iter,), (partial(map, type), *of_type), (iter,), (partial(map, type), *of_type)),
        ("join", compress),
        *chains((iter,), refers),
        ("join", compress),
    ]
    sinks = [found.extend]
    own = heap_pass(steps, sinks, width=4)
    own.update(ids_of_steps(steps, sinks, *of_type, *refers))
    own.add(id(found))
    return [obj for obj in found if id(obj) not in own]


def _holders(objects: Sequence[Any]) -> Dict[int, List[Any]]:
    """id(object) -> the SDK objects holding it in an attribute (each heap pass finds all)."""
    wanted = frozenset(id(obj) for obj in objects)
    holders: Dict[int, List[Any]] = {}
    instance_dicts = []
    sdk_types = _sdk_types()
    for referrer in _referrers(sdk_types | {id(dict)}, wanted):
        if type(referrer) is dict:
            # An instance __dict__ (Python 3.9/3.10, or one that was materialised): the
            # object owning it is one more pass away.
            if any(id(value) in wanted for value in referrer.values()):
                instance_dicts.append(referrer)
        elif is_sdk_object(referrer):
            _note(referrer, referents(referrer), wanted, holders)
    if instance_dicts:
        dict_ids = frozenset(id(d) for d in instance_dicts)
        for referrer in _referrers(sdk_types, dict_ids):
            if is_sdk_object(referrer):
                own = getattr(referrer, "__dict__", None)
                if own is not None and id(own) in dict_ids:
                    _note(referrer, own.values(), wanted, holders)
    return holders


def _note(holder: Any, values: Any, wanted: FrozenSet[int], holders: Dict[int, List[Any]]) -> None:
    for value in values:
        if id(value) in wanted:
            found = holders.setdefault(id(value), [])
            if not any(existing is holder for existing in found):
                found.append(holder)
