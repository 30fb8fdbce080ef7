"""Finding the SDK's event signals on an object, generically (never from a hard-coded list).

The SDK creates each ``EventSignal`` lazily: a class attribute ``_Cls__name_signal = None``
declares it, and the property that hands it out stores the instance under the same
(name-mangled) attribute on the object. So the class attributes say which signals a type
*has*, and the instance dictionary says which were *created*.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from .._core.compat import DATACLASS_SLOTS
from .modules import event_signal_type

__all__ = [
    "CallbackInfo",
    "callbacks_of",
    "describe_callable",
    "event_signal_type",
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


def signal_names(cls: type) -> Dict[str, str]:
    """Every event signal a class declares, inherited and private ones included.

    Returns ``{attribute name: signal name}``, e.g.
    ``{"_Recognizer__token_requested_signal": "token_requested", ...}``.
    """
    names: Dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for attribute, value in vars(klass).items():
            name = public_name(attribute)
            if name is not None and value is None:
                names[attribute] = name
    return names


def signals_of(obj: Any) -> Dict[str, Any]:
    """The event signals created on ``obj``: ``{signal name: EventSignal}``."""
    signal_type = event_signal_type()
    try:
        attributes = vars(obj)
    except TypeError:
        return {}
    found: Dict[str, Any] = {}
    for attribute, value in list(attributes.items()):
        if signal_type is not None and isinstance(value, signal_type):
            found[public_name(attribute) or attribute] = value
    return found


def signal_owner(signal: Any) -> Tuple[Any, str]:
    """The object an ``EventSignal`` belongs to, and the signal's name on it (``(None, "")``
    if the object is gone; ``""`` if the signal is not found on it)."""
    context = vars(signal).get("_EventSignal__context")
    owner = context.get() if context is not None else None
    if owner is None:
        return None, ""
    for attribute, value in list(vars(owner).items()):
        if value is signal:
            return owner, public_name(attribute) or attribute
    return owner, ""


def callbacks_of(signal: Any) -> Tuple[Callable[..., Any], ...]:
    """The callables connected to an ``EventSignal`` (a copy)."""
    callbacks = getattr(signal, "_EventSignal__callbacks", None)
    return tuple(callbacks) if callbacks else ()


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
    """Name and definition site of a callback (functions, methods, partials, callables)."""
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
