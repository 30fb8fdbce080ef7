"""Who holds a native handle: its owner and parent SDK objects, found when a record is built.

The hot path records only the sequence number (by the ``_Handle``'s address) and the code
that made it; the ``_Handle`` itself, which SDK object keeps it (the owner, e.g. a
``PropertyCollection``) and which SDK object keeps that one (the parent, e.g. the
``ConversationTranscriber``) are worked out here, for many records at once, from the
collector's lists: one heap pass for the ``_Handle`` objects, one for the SDK objects (both
levels are read from their attributes), at report time only, linear in the heap
(``_core/heappass.py``: a pass holds no object another thread may still be building; what
it keeps are ``_Handle`` objects and SDK objects).
"""

from __future__ import annotations

import gc
import sys
import weakref
from functools import partial
from itertools import chain, compress
from operator import is_, not_
from types import CodeType, MemberDescriptorType
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
)

from .._core.compat import referents
from .._core.heappass import select, select_instances
from .attributes import sdk_instance_attributes
from .modules import SDK_MODULE, handle_type, is_sdk_class

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
    # One heap pass for both levels: the SDK objects (owners and parents are among them).
    sdk_objects = _sdk_objects()
    refs = list(map(referents, sdk_objects))
    holders = _holders([handle for _, handle in alive], sdk_objects, refs)
    owners: Dict[int, Any] = {}
    for index, handle in alive:
        owner = _choose(holders.get(id(handle)), results[index][1])
        if owner is not None:
            owners[index] = owner
    unique = list({id(owner): owner for owner in owners.values()}.values())
    parents = _holders(unique, sdk_objects, refs) if unique else {}
    del sdk_objects, refs
    for index, owner in owners.items():
        held_by_sdk = [p for p in parents.get(id(owner), ()) if _holds_in_sdk_attribute(p, owner)]
        parent = _choose(held_by_sdk, "")
        results[index] = (owner, type(owner).__qualname__, parent)
    return results


def _choose(candidates: Optional[List[Any]], class_name: str) -> Any:
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    for candidate in candidates:
        if _is_named(type(candidate), class_name):
            return candidate
    return candidates[0]


_named: Dict[Tuple[type, str], bool] = {}


def _is_named(cls: type, class_name: str) -> bool:
    """Whether ``cls`` or a base of it has the qualified name ``class_name`` (once per
    class and name: a snapshot asks it for every record)."""
    key = (cls, class_name)
    known = _named.get(key)
    if known is None:
        known = _named[key] = any(klass.__qualname__ == class_name for klass in cls.__mro__)
    return known


def _holds_in_sdk_attribute(holder: Any, value: Any) -> bool:
    """Whether ``holder`` keeps ``value`` in one of the SDK's own attributes (the rule of
    ``attributes.py``): a user's subclass of an SDK class (a ``PullAudioInputStreamCallback``
    that keeps the recognizer in ``self.recognizer``) holds it in the application's
    attribute, so it is not the SDK parent of what it holds."""
    cls = type(holder)
    names = _sdk_attributes.get(cls)
    if names is None:
        plain = [n for n in sdk_instance_attributes(cls) if _plain_attribute(cls, n)]
        names = _sdk_attributes[cls] = tuple(sorted(plain))
    return any(_read_attribute(holder, name) is value for name in names)


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


#: Per class: the instance attributes the SDK's code sets (see ``attributes.py``) that are
#: read without running code.
_sdk_attributes: weakref.WeakKeyDictionary[type, Tuple[str, ...]] = weakref.WeakKeyDictionary()


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
        if id(cls) in found:
            continue
        # Past a metaclass's __getattribute__: a user's class may make it raise.
        if not (is_sdk_class(cls) or any(map(is_sdk_class, type.__getattribute__(cls, "__mro__")))):
            continue
        found[id(cls)] = cls
        try:
            pending.extend(type.__subclasses__(cls))
        except TypeError:
            continue
    return frozenset(found)


def _sdk_objects() -> List[Any]:
    """Every tracked object whose class is the SDK's or derives from one, in ``gc`` order:
    one heap pass (an SDK object is never a tuple another thread is building)."""
    types = _sdk_types()
    return select((partial(map, type), partial(map, id), partial(map, types.__contains__)))


def _holders(
    objects: Sequence[Any], sdk_objects: Sequence[Any], refs: Sequence[List[Any]]
) -> Dict[int, List[Any]]:
    """id(object) -> the SDK objects of ``sdk_objects`` holding it in an attribute
    (``refs[i]``: what ``sdk_objects[i]`` refers to).

    An SDK object's attributes are what it refers to: its inline values (Python 3.11+) or
    its instance ``__dict__`` (3.9/3.10, or one that was materialised), read here. Which
    objects hold one is worked out in C (``isdisjoint`` over their references' ids); only
    those are looked at one by one.
    """
    wanted = frozenset(map(id, objects))
    holders: Dict[int, List[Any]] = {}
    ids_of = partial(map, id)
    direct = compress(range(len(refs)), map(not_, map(wanted.isdisjoint, map(ids_of, refs))))
    # Dictionaries an SDK object refers to that hold a wanted object (its __dict__ perhaps).
    referenced = chain.from_iterable(refs)
    dicts = [
        d
        for d in compress(referenced, map(partial(is_, dict), map(type, chain.from_iterable(refs))))
        if not wanted.isdisjoint(map(id, d.values()))
    ]
    via_dict: Iterable[int] = ()
    dict_ids = frozenset(map(id, dicts))
    if dicts:
        via_dict = compress(
            range(len(refs)), map(not_, map(dict_ids.isdisjoint, map(ids_of, refs)))
        )
    for position in direct:
        _note(sdk_objects[position], refs[position], wanted, holders)
    for position in via_dict:
        holder = sdk_objects[position]
        own = getattr(holder, "__dict__", None)  # one it has: no new dict made
        if own is not None and id(own) in dict_ids:
            _note(holder, list(own.values()), wanted, holders)
    return holders


def _note(holder: Any, values: Any, wanted: FrozenSet[int], holders: Dict[int, List[Any]]) -> None:
    for value in compress(values, map(wanted.__contains__, map(id, values))):
        found = holders.setdefault(id(value), [])
        if not any(existing is holder for existing in found):
            found.append(holder)
