"""How an object the SDK made on one of its callback threads reached the application.

Event arguments and results (``SpeechRecognitionEventArgs``, its result, the result's
property bag) are made by the SDK on its own callback thread, just before it calls the
connected callbacks: their creation stack has SDK frames only (no application line). What
the diagnosis can say instead is which signal delivers objects of that type and which of the
application's callbacks are connected to it: "delivered to on_transcribed (service.py:42) by
ConversationTranscriber.transcribed".

The signal is found from the types each signal delivers (read from the SDK's native
callbacks, ``signals.delivered_types``) and the live signals that have application callbacks
connected: an object the application kept was handed to one of them. When no live object has
such a signal any more (the recognizer is gone), the SDK classes that declare a signal
delivering that type are named, when there are few.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .._core.compat import DATACLASS_SLOTS
from .._core.registry import HandleRecord
from .._sdk.modules import is_sdk_code
from .._sdk.signals import (
    CallbackInfo,
    callbacks_of,
    declared_deliveries,
    delivered_types,
    describe_callable,
    public_name,
)

__all__ = ["Delivery", "find_deliveries", "made_on_sdk_thread"]

#: Classes named when no live object has a signal delivering the type (more say nothing).
_MAX_DECLARED = 3


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Delivery:
    """The signals that deliver an object of this type (``"ConversationTranscriber.transcribed"``)
    and the application callbacks connected to them (none if no live object has one)."""

    signals: Tuple[str, ...]
    callbacks: Tuple[CallbackInfo, ...] = ()

    @property
    def text(self) -> str:
        """E.g. ``delivered to on_transcribed (service.py:42) by Transcriber.transcribed``."""
        by = " or ".join(self.signals) if self.signals else "an SDK signal"
        if self.callbacks:
            return f"delivered to {', '.join(str(c) for c in self.callbacks)} by {by}"
        return f"delivered by {by} (no live object has it connected any more)"

    def __str__(self) -> str:
        return self.text


def made_on_sdk_thread(record: HandleRecord) -> bool:
    """Whether a handle was made by the SDK on a thread Python did not start (a native
    callback thread: the registry names it ``native-<id>``, or ``Dummy-<n>`` once Python has
    seen it), with no application frame on its stack."""
    return (
        record.source == "handle"
        and record.traceback.origin is None
        and record.thread_name.startswith(("native-", "Dummy-"))
    )


def _application_callbacks(signal: Any) -> List[CallbackInfo]:
    """The callables connected to ``signal`` that are not the SDK's own (its token lambda)."""
    found = []
    for callback in callbacks_of(signal):
        info = describe_callable(callback)
        if not is_sdk_code(info.filename):
            found.append(info)
    return found


def _instance_items(obj: Any) -> List[Tuple[str, Any]]:
    try:
        return list(object.__getattribute__(obj, "__dict__").items())
    except Exception:
        return []


def _live_signals(signals: Iterable[Any]) -> List[Tuple[str, Tuple[type, ...], List[CallbackInfo]]]:
    """``(owner class.signal, types it delivers, application callbacks)`` for the signals
    that have application callbacks connected, one entry per owner class and signal."""
    owners: Dict[int, Any] = {}
    for signal in signals:
        context = _instance_items(signal)
        ref = dict(context).get("_EventSignal__context")
        owner = ref.get() if ref is not None else None
        if owner is not None:
            owners[id(owner)] = owner
    merged: Dict[str, Tuple[Tuple[type, ...], List[CallbackInfo]]] = {}
    for owner in owners.values():
        deliveries = delivered_types(type(owner))
        for attribute, value in _instance_items(owner):
            types = deliveries.get(attribute)
            if not types:
                continue
            callbacks = _application_callbacks(value)
            if not callbacks:
                continue
            label = f"{type(owner).__qualname__}.{public_name(attribute) or attribute}"
            known = merged.setdefault(label, (tuple(types), []))[1]
            known.extend(c for c in callbacks if c not in known)
    owners.clear()
    return [(label, types, callbacks) for label, (types, callbacks) in merged.items()]


def _declared_signals(cls: type) -> Optional[Tuple[str, ...]]:
    """The SDK's signals that deliver ``cls`` objects (``()``: too many to name; ``None``:
    none, so ``cls`` objects are not delivered to callbacks)."""
    labels: Dict[str, None] = {}
    for klass, attribute, types in declared_deliveries():
        if cls in types:
            labels.setdefault(f"{klass.__qualname__}.{public_name(attribute) or attribute}")
    if not labels:
        return None
    return tuple(labels) if len(labels) <= _MAX_DECLARED else ()


def find_deliveries(objects: Mapping[int, Any], signals: Iterable[Any]) -> Dict[int, Delivery]:
    """``{key: Delivery}`` for the objects of ``objects`` (``{key: object}``, each made on an
    SDK callback thread), given the live ``EventSignal`` objects ``signals``."""
    if not objects:
        return {}
    live = _live_signals(signals)
    result: Dict[int, Delivery] = {}
    for key, obj in objects.items():
        cls = type(obj)
        labels: List[str] = []
        callbacks: List[CallbackInfo] = []
        for label, types, connected in live:
            if cls in types:
                labels.append(label)
                callbacks.extend(c for c in connected if c not in callbacks)
        if labels:
            result[key] = Delivery(tuple(labels), tuple(callbacks))
            continue
        declared = _declared_signals(cls)
        if declared is not None:
            result[key] = Delivery(declared)
    return result
