"""Finding the SDK's event signals on an object, generically (never from a hard-coded list).

The SDK creates each ``EventSignal`` lazily: a class attribute ``_Cls__name_signal = None``
declares it, and the property that hands it out stores the instance under the same
(name-mangled) attribute on the object. So the class attributes say which signals a type
*has*, and the instance dictionary says which were *created*.

What a signal delivers is read from the SDK's code too: the native callback behind each
signal (a ``ctypes.CFUNCTYPE`` function in the class, ``_Cls__name_callback``) builds the
event object and signals it, so its code names both the event class and the signal's
attribute (see :func:`delivered_types`).
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from types import CodeType
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Set, Tuple

from .._core.compat import DATACLASS_SLOTS, referents
from .._core.state import TRACKER
from .modules import SDK_MODULE, event_signal_type, handle_type, is_sdk_class

__all__ = [
    "CallbackInfo",
    "callbacks_of",
    "declared_deliveries",
    "delivered_types",
    "describe_callable",
    "event_signal_type",
    "hostile",
    "instance_namespace",
    "public_name",
    "signal_owner",
    "signal_names",
    "signals_of",
]

def public_name(attribute: str) -> Optional[str]:
    """``_Recognizer__session_started_signal`` -> ``session_started``; else ``None``."""
    if not attribute.endswith("_signal"):
        return None
    stem = attribute[: -len("_signal")]
    if stem.startswith("_") and "__" in stem[1:]:
        return stem.split("__", 1)[1]
    return None


def hostile(exc: BaseException) -> bool:
    """Whether ``exc``, raised by reading a program's object, is the object's to keep to
    itself: anything but a KeyboardInterrupt (which may arrive at any point, and is the
    user's) is; an object may raise even a BaseException of its own from a property."""
    return not isinstance(exc, KeyboardInterrupt)


def _class_attribute(cls: type, name: str) -> Any:
    """``cls.<name>`` read past a metaclass's ``__getattribute__``."""
    return type.__getattribute__(cls, name)


def instance_namespace(obj: Any) -> Dict[str, Any]:
    """A copy of ``obj``'s instance dictionary read past its ``__getattribute__`` (``{}``
    if it has none or it cannot be read)."""
    try:
        namespace = object.__getattribute__(obj, "__dict__")
        return dict(namespace) if type(namespace) is dict else {}
    except BaseException as exc:
        if not hostile(exc):
            raise
        return {}


def signal_names(cls: type) -> Dict[str, str]:
    """Every event signal a class declares, inherited and private ones included.

    Returns ``{attribute name: signal name}``, e.g.
    ``{"_Recognizer__token_requested_signal": "token_requested", ...}``. Classes are read
    past a metaclass's ``__getattribute__``.
    """
    names: Dict[str, str] = {}
    for klass in reversed(_class_attribute(cls, "__mro__")):
        for attribute, value in list(_class_attribute(klass, "__dict__").items()):
            name = public_name(attribute) if type(attribute) is str else None
            if name is not None and value is None:
                names[attribute] = name
    return names


def signals_of(obj: Any) -> Dict[str, Any]:
    """The event signals created on ``obj``: ``{signal name: EventSignal}``."""
    signal_type = event_signal_type()
    found: Dict[str, Any] = {}
    for attribute, value in instance_namespace(obj).items():
        if signal_type is not None and isinstance(value, signal_type):
            found[public_name(attribute) or attribute] = value
    return found


def signal_owner(signal: Any) -> Tuple[Any, str]:
    """The object an ``EventSignal`` belongs to, and the signal's name on it (``(None, "")``
    if the object is gone; ``""`` if the signal is not found on it)."""
    context = instance_namespace(signal).get("_EventSignal__context")
    owner = context.get() if context is not None else None
    if owner is None:
        return None, ""
    for attribute, value in instance_namespace(owner).items():
        if value is signal:
            return owner, public_name(attribute) or attribute
    return owner, ""


def callbacks_of(signal: Any) -> Tuple[Callable[..., Any], ...]:
    """The callables connected to an ``EventSignal`` (a copy; read past the signal's own
    ``__getattribute__``: the SDK keeps them in a list in its instance dictionary)."""
    callbacks = instance_namespace(signal).get("_EventSignal__callbacks")
    return tuple(callbacks) if type(callbacks) is list else ()


@dataclass(frozen=True, **DATACLASS_SLOTS)
class CallbackInfo:
    """A connected callable: its qualified name and where it is defined."""

    qualname: str
    filename: str
    lineno: int

    def __str__(self) -> str:
        where = f" ({self.filename}:{self.lineno})" if self.filename else ""
        return f"{self.qualname}{where}"


def describe_callable(callback: Any) -> CallbackInfo:
    """Name and definition site of a callback (functions, methods, partials, callables).

    Never raises: a callable whose attributes cannot be read is named by its type (and the
    failure counted in ``handletrace.stats().instrumentation_errors``).
    """
    try:
        return _describe_callable(callback)
    except BaseException as exc:
        if not hostile(exc):
            raise
        TRACKER.registry.count_error("describe callable", exc)
    try:
        name = _class_attribute(type(callback), "__qualname__")
    except BaseException as exc:
        if not hostile(exc):
            raise
        name = ""
    return CallbackInfo(name if type(name) is str else "<callable>", "", 0)


def _describe_callable(callback: Any) -> CallbackInfo:
    target = callback
    for _ in range(5):  # unwrap bound methods and functools.partial
        inner = getattr(target, "__func__", None) or getattr(target, "func", None)
        if inner is None or inner is target:
            break
        target = inner
    code = getattr(target, "__code__", None)
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    if code is None and not inspect.isroutine(target):
        code = getattr(vars(type(target)).get("__call__"), "__code__", None)
    if code is None:
        return CallbackInfo(qualname, "", 0)
    return CallbackInfo(qualname, code.co_filename, code.co_firstlineno)


# -- what each signal delivers -------------------------------------------------------------


def _callback_code(value: Any) -> Optional[CodeType]:
    """The Python code behind a class attribute: a function, or the function a
    ``ctypes.CFUNCTYPE(...)`` callback was made from (held by its thunk, found with the
    collector's referents: ctypes gives no other way to read it)."""
    if isinstance(value, staticmethod):
        value = value.__func__
    code = getattr(value, "__code__", None)
    if isinstance(code, CodeType):
        return code
    objects = getattr(value, "_objects", None) if type(value).__name__ == "CFunctionType" else None
    if not isinstance(objects, dict):
        return None
    for thunk in list(objects.values()):
        for referent in referents(thunk):
            code = getattr(referent, "__code__", None)
            if isinstance(code, CodeType):
                return code
    return None


def _init_codes(cls: type) -> Iterator[CodeType]:
    for klass in cls.__mro__:
        code = getattr(vars(klass).get("__init__"), "__code__", None)
        if isinstance(code, CodeType):
            yield code


def _sdk_classes_named(names: Any, module_name: str) -> List[type]:
    """The SDK classes (but the SDK's plumbing: EventSignal, _Handle) that ``names`` name in
    module ``module_name``."""
    module = sys.modules.get(module_name)
    namespace = vars(module) if module is not None else {}
    plumbing = (event_signal_type(), handle_type())
    found = []
    for name in names:
        value = namespace.get(name)
        if isinstance(value, type) and is_sdk_class(value) and value not in plumbing:
            found.append(value)
    return found


_delivered: Dict[type, Dict[str, FrozenSet[type]]] = {}


def _declared_deliveries(klass: type) -> Dict[str, FrozenSet[type]]:
    """{signal attribute: types delivered} for the signals ``klass`` itself declares."""
    known = _delivered.get(klass)
    if known is not None:
        return known
    # In declaration order (the order reports list them in).
    attributes = [a for a, value in vars(klass).items() if public_name(a) and value is None]
    found: Dict[str, Set[type]] = {}
    if attributes and is_sdk_class(klass):
        for value in list(vars(klass).values()):
            code = _callback_code(value)
            if code is None:
                continue
            signalled = set(attributes).intersection(code.co_names)
            if not signalled:
                continue
            events = _sdk_classes_named(code.co_names, klass.__module__)
            # The event's constructor makes the rest (a recognition event makes its result).
            made: Set[type] = set(events)
            for event in events:
                for init in _init_codes(event):
                    made.update(_sdk_classes_named(init.co_names, event.__module__))
            for attribute in signalled:
                found.setdefault(attribute, set()).update(made)
    known = _delivered[klass] = {a: frozenset(found[a]) for a in attributes if a in found}
    return known


def delivered_types(cls: type) -> Dict[str, FrozenSet[type]]:
    """The SDK classes whose objects each signal of ``cls`` delivers, made by the SDK on its
    callback thread: ``{signal attribute: {event class, the classes its constructor makes}}``
    (e.g. ``transcribed``: ``ConversationTranscriptionEventArgs`` and
    ``ConversationTranscriptionResult``). Read from the SDK's native callbacks; signals whose
    callback cannot be read are left out."""
    result: Dict[str, FrozenSet[type]] = {}
    for klass in reversed(cls.__mro__):
        if is_sdk_class(klass):
            result.update(_declared_deliveries(klass))
    return result


def declared_deliveries() -> List[Tuple[type, str, FrozenSet[type]]]:
    """``(class, signal attribute, types delivered)`` for every signal declared by a class of
    the SDK's loaded modules (each signal once, with the class that declares it)."""
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith(SDK_MODULE) or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == name:
                for attribute, types in _declared_deliveries(value).items():
                    found.append((value, attribute, types))
    return found
