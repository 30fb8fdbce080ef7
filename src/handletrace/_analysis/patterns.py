"""Known Azure Speech SDK leak patterns: each has a name, a detector and the fix.

Detectors look at one live SDK object (a recognizer, transcriber, synthesizer...) or one
live handle record, with what the diagnosis found (classification, cycle, signals, access
records), and return findings: what is wrong, where (file:line) and what to change. They
read the SDK's own code where that decides the question (e.g. whether a ``__del__`` calls
``super(type(self), self).__del__()``), so a fixed SDK release stops matching by itself.

Detectors see the real objects only while :func:`detect` runs; findings are plain data.
"""

from __future__ import annotations

import inspect
import os
import re
import weakref
from dataclasses import dataclass
from types import FunctionType, MethodType
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .._core.compat import DATACLASS_SLOTS
from .._core.registry import HandleRecord
from .._sdk.access import AccessRecord
from .._sdk.modules import is_sdk_class, is_sdk_code
from .._sdk.signals import callbacks_of, describe_callable, signal_names
from .paths import RefPath
from .states import CYCLIC_GARBAGE, ORPHANED

__all__ = ["Finding", "PATTERNS", "Pattern", "Subject", "declared_signals", "detect"]



@dataclass(frozen=True, **DATACLASS_SLOTS)
class Finding:
    """A known leak pattern found in the program: what, where, and the fix."""

    pattern: str
    title: str
    message: str
    filename: str
    lineno: int
    fix: str

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}" if self.filename else ""


@dataclass
class Subject:
    """What a detector looks at (transient: never stored, so nothing is kept alive).

    ``obj`` is the SDK object (``None`` if it is gone); ``record`` the handle record the
    finding is about (for an object: its first handle).
    """

    obj: Any
    record: HandleRecord
    state: str
    cycle: Optional[RefPath] = None
    access: Sequence[AccessRecord] = ()


@dataclass(frozen=True)
class Pattern:
    """A known leak pattern: ``detect(subject)`` yields findings.

    ``scope`` is ``"object"`` (run once per SDK object) or ``"handle"`` (once per record).
    """

    name: str
    title: str
    scope: str
    detect: Callable[[Subject], Iterable[Finding]]


# -- helpers -------------------------------------------------------------------------------

_declared: weakref.WeakKeyDictionary[type, Dict[str, str]] = weakref.WeakKeyDictionary()


def declared_signals(cls: type) -> Dict[str, str]:
    """``signal_names(cls)``, read once per class (a diagnosis of 100,000 objects asks for
    the same few classes' signals 100,000 times). Not to be changed by the caller."""
    names = _declared.get(cls)
    if names is None:
        names = _declared[cls] = signal_names(cls)
    return names



def _site(record: HandleRecord) -> Tuple[str, int]:
    origin = record.traceback.origin
    return (origin.filename, origin.lineno) if origin is not None else ("", 0)


def _at(filename: str, lineno: int) -> str:
    return f"{filename}:{lineno}" if filename else "an unknown line"


def _variable(cls: type) -> str:
    """A conventional variable name for an SDK object in fix texts."""
    for klass in cls.__mro__:
        name = klass.__name__
        if is_sdk_class(klass):
            if "Transcriber" in name:
                return "transcriber"
            if "Synthesizer" in name:
                return "synthesizer"
            if "Connector" in name:
                return "connector"
            if "Connection" in name:
                return "connection"
            if "Recognizer" in name:
                return "recognizer"
    return "obj"


def _dispose_hint(var: str) -> str:
    return f"; or release it at once with handletrace.dispose({var})"


def _signal_attribute(cls: type, name: str) -> Optional[str]:
    for attribute, signal in declared_signals(cls).items():
        if signal == name:
            return attribute
    return None


def _captured_name(callback: Any, obj: Any) -> Optional[str]:
    """How ``callback`` holds ``obj`` directly: a closure variable, ``self``, or a partial."""
    target = callback
    if isinstance(target, MethodType):
        if target.__self__ is obj:
            return "self"
        target = target.__func__
    if isinstance(target, FunctionType) and target.__closure__:
        for name, cell in zip(target.__code__.co_freevars, target.__closure__):
            try:
                if cell.cell_contents is obj:
                    return name
            except ValueError:  # empty cell
                continue
    args = getattr(callback, "args", None)
    if isinstance(args, tuple) and any(arg is obj for arg in args):
        return "a functools.partial argument"
    return None


def _connected_signals(obj: Any) -> List[Tuple[str, str, Any]]:
    """(signal name, attribute, EventSignal) for each connected signal of ``obj``."""
    found = []
    try:
        namespace = vars(obj)
    except TypeError:
        return []
    for attribute, name in declared_signals(type(obj)).items():
        signal = namespace.get(attribute)
        if signal is not None and callbacks_of(signal):
            found.append((name, attribute, signal))
    return found


def _connect_site(access: Sequence[AccessRecord], signal: str, qualname: str) -> Tuple[str, bool]:
    """(" at file:line" of the connect call, whether a disconnect_all followed it)."""
    where, disconnected = "", False
    for entry in access:
        if entry.target != signal:
            continue
        if (
            entry.action == "connect"
            and entry.callback is not None
            and entry.callback.qualname == qualname
        ):
            where = f" at {entry.site}" if entry.site is not None else ""
            disconnected = False
        elif entry.action == "disconnect_all":
            disconnected = True
    return where, disconnected


# -- detectors -----------------------------------------------------------------------------

_CALLBACK_TITLE = "A signal callback keeps its recognizer alive"


def _cycle_note_for(cycle: Optional[RefPath], filename: str, lineno: int) -> Optional[str]:
    """The note of the cycle step for the callable defined at filename:lineno, if any."""
    if cycle is None:
        return None
    for step in cycle.steps:
        if step.filename == filename and step.lineno == lineno:
            return step.note or None
    return None


def detect_callback_captures_owner(subject: Subject) -> Iterable[Finding]:
    obj = subject.obj
    if obj is None:
        return
    owner = type(obj).__name__
    for name, _attribute, signal in _connected_signals(obj):
        for callback in callbacks_of(signal):
            info = describe_callable(callback)
            if not info.filename or is_sdk_code(info.filename):
                continue
            captured = _captured_name(callback, obj)
            how = None
            if captured is not None:
                how = (
                    f"captures '{captured}' (the {owner} itself)"
                    if not captured.startswith("a ")
                    else f"holds the {owner} as {captured}"
                )
            else:
                note = _cycle_note_for(subject.cycle, info.filename, info.lineno)
                if (
                    subject.state == CYCLIC_GARBAGE
                    and note is not None
                    and subject.cycle is not None
                ):
                    how = f"holds it through {note}: {subject.cycle.text}"
            if how is None:
                continue
            where, disconnected = _connect_site(subject.access, name, info.qualname)
            if disconnected:
                continue
            var = captured if captured and not captured.startswith("a ") else _variable(type(obj))
            if var == "self":
                var = _variable(type(obj))
            yield Finding(
                pattern="callback-captures-owner",
                title=_CALLBACK_TITLE,
                message=(
                    f"{info.qualname} ({_at(info.filename, info.lineno)}), connected to "
                    f"{owner}.{name}{where} and never disconnected, {how}: "
                    f"{owner} -> EventSignal ({name}) -> callback -> {owner} is a reference "
                    f"cycle, so the {owner} and its native handles stay alive until a cyclic "
                    "garbage collection"
                ),
                filename=info.filename,
                lineno=info.lineno,
                fix=(
                    f"Disconnect what you connected before dropping the {owner}: "
                    f"{var}.{name}.disconnect_all(); or let the callback hold "
                    f"weakref.ref({var}) instead of {var}{_dispose_hint(var)}."
                ),
            )


def _sdk_token_lambda(obj: Any) -> Optional[Tuple[str, Any]]:
    """(attribute, callback) of the SDK's own token lambda capturing ``obj``, if connected."""
    for name, attribute, signal in _connected_signals(obj):
        if name != "token_requested":
            continue
        for callback in callbacks_of(signal):
            info = describe_callable(callback)
            if is_sdk_code(info.filename) and _captured_name(callback, obj) is not None:
                return attribute, callback
    return None


def detect_token_credential_cycle(subject: Subject) -> Iterable[Finding]:
    obj = subject.obj
    if obj is None:
        return
    found = _sdk_token_lambda(obj)
    if found is None:
        return
    attribute, callback = found
    owner = type(obj).__name__
    var = _variable(type(obj))
    info = describe_callable(callback)
    filename, lineno = _site(subject.record)
    yield Finding(
        pattern="token-credential-cycle",
        title="SpeechConfig(token_credential=...) makes the SDK hold its own object in a cycle",
        message=(
            f"{owner} created at {_at(filename, lineno)} from a SpeechConfig with a "
            f"token_credential: the SDK connects its token_requested signal to its own lambda "
            f"({os.path.basename(info.filename)}:{info.lineno}), which captures the {owner}, so "
            f"the {owner} and its native handles stay alive until a cyclic garbage collection"
        ),
        filename=filename,
        lineno=lineno,
        fix=(
            f"When you are done with it, call {var}.{attribute}.disconnect_all() (a private "
            f"SDK attribute) before dropping it, or run gc.collect() after dropping it; or "
            f"authenticate with auth_token=... and refresh {var}.authorization_token yourself "
            f"(no lambda is connected then){_dispose_hint(var)}."
        ),
    )


_ASYNC_CALL = re.compile(r"\.((?:start|stop)_\w+_async|\w+_async)\s*\(")


def detect_fire_and_forget_future(subject: Subject) -> Iterable[Finding]:
    record = subject.record
    if record.source != "future" or subject.state != ORPHANED:
        return
    filename, lineno = _site(record)
    method = ""
    for entry in subject.access:
        site = entry.site
        if entry.action in ("start", "stop") and site is not None and site.lineno == lineno:
            method = entry.target if site.filename == filename else method
    if not method and record.traceback.origin is not None:
        match = _ASYNC_CALL.search(record.traceback.origin.source_line())
        method = match.group(1) if match else ""
    owner = record.parent or "recognizer"
    var = (
        "transcriber"
        if "Transcriber" in owner
        else ("synthesizer" if "Synthesizer" in owner else "recognizer")
    )
    call = f"{method}()" if method else "an *_async() call"
    yield Finding(
        pattern="fire-and-forget-future",
        title="A ResultFuture was dropped without .get()",
        message=(
            f"{call} at {_at(filename, lineno)} returned a ResultFuture that was dropped "
            f"without .get(): its native async handle ({record.kind}) is never released and "
            f"keeps the {owner}'s operation and audio session alive"
        ),
        filename=filename,
        lineno=lineno,
        fix=(
            f"Call .get() on the future ({var}.{method or 'start_..._async'}().get()), or keep "
            "it and call .get() before dropping it; a ResultFuture has no __del__, so nothing "
            "else ever releases its handle."
        ),
    )


def _recursive_del_base(cls: type) -> Optional[type]:
    """The SDK class whose ``__del__`` calls ``super(type(self), self).__del__()``, if ``cls``
    (a user subclass) would run it."""
    if is_sdk_class(cls):
        return None
    for klass in cls.__mro__:
        method = vars(klass).get("__del__")
        if method is None:
            continue
        code = getattr(method, "__code__", None)
        if code is None:
            return None
        if not is_sdk_class(klass):
            if "super" not in code.co_names:
                return None  # the user's own __del__ does not reach the SDK's
            continue
        names = code.co_names
        return klass if ("super" in names and "type" in names) else None
    return None


def _class_site(cls: type, record: HandleRecord) -> Tuple[str, int]:
    lineno = getattr(cls, "__firstlineno__", None)  # Python 3.13+
    try:
        filename = inspect.getsourcefile(cls) or ""
        if not isinstance(lineno, int):
            lineno = inspect.getsourcelines(cls)[1]
        return filename, int(lineno)
    except (OSError, TypeError):
        return _site(record)


def detect_recognizer_subclass(subject: Subject) -> Iterable[Finding]:
    obj = subject.obj
    if obj is None:
        return
    cls = type(obj)
    base = _recursive_del_base(cls)
    if base is None:
        return
    filename, lineno = _class_site(cls, subject.record)
    prefix = f"_{base.__name__}__"
    missed = sorted(
        {
            name
            for attribute, name in declared_signals(cls).items()
            if not attribute.startswith(prefix) and not attribute.startswith(f"_{cls.__name__}__")
        }
    )
    yield Finding(
        pattern="recognizer-subclass-del",
        title="A subclass of an SDK recognizer breaks its __del__",
        message=(
            f"{cls.__qualname__} ({_at(filename, lineno)}) subclasses {base.__name__}, whose "
            f"__del__ calls super(type(self), self).__del__(): for a subclass that calls "
            f"{base.__name__}.__del__ again and again until RecursionError, so the base "
            f"signals ({', '.join(missed) or 'none'}) are never disconnected"
        ),
        filename=filename,
        lineno=lineno,
        fix=(
            f"Do not subclass {base.__name__}: keep one in an attribute of your class "
            f"(composition); or give {cls.__qualname__} a __del__ that disconnects every "
            "signal itself and does not call super().__del__()."
        ),
    )


def detect_synthesizer_token_signal(subject: Subject) -> Iterable[Finding]:
    obj = subject.obj
    if obj is None:
        return
    sdk_class = next(
        (k for k in type(obj).__mro__ if k.__name__ == "SpeechSynthesizer" and is_sdk_class(k)),
        None,
    )
    if sdk_class is None or _sdk_token_lambda(obj) is None:
        return
    attribute = _signal_attribute(sdk_class, "token_requested")
    finaliser = vars(sdk_class).get("__del__")
    code = getattr(finaliser, "__code__", None)
    if attribute is None or code is None or attribute in code.co_names:
        return
    filename, lineno = _site(subject.record)
    yield Finding(
        pattern="synthesizer-del-misses-token-signal",
        title="SpeechSynthesizer.__del__ does not disconnect its token signal",
        message=(
            f"SpeechSynthesizer created at {_at(filename, lineno)} with a token credential: "
            "SpeechSynthesizer.__del__ disconnects its other signals but not token_requested, "
            "whose SDK lambda captures the synthesizer; the synthesizer waits for a cyclic "
            "garbage collection, and in that collection the token callback may be cleared "
            "only after the native synthesizer was released"
        ),
        filename=filename,
        lineno=lineno,
        fix=(
            f"Disconnect it yourself before dropping the synthesizer: "
            f"synthesizer.{attribute}.disconnect_all(); or authenticate with auth_token=... "
            f"and refresh synthesizer.authorization_token yourself"
            f"{_dispose_hint('synthesizer')}."
        ),
    )


#: The known patterns, in the order findings are reported.
PATTERNS: Tuple[Pattern, ...] = (
    Pattern("callback-captures-owner", _CALLBACK_TITLE, "object", detect_callback_captures_owner),
    Pattern(
        "token-credential-cycle",
        "SpeechConfig(token_credential=...) makes the SDK hold its own object in a cycle",
        "object",
        detect_token_credential_cycle,
    ),
    Pattern(
        "fire-and-forget-future",
        "A ResultFuture was dropped without .get()",
        "handle",
        detect_fire_and_forget_future,
    ),
    Pattern(
        "recognizer-subclass-del",
        "A subclass of an SDK recognizer breaks its __del__",
        "object",
        detect_recognizer_subclass,
    ),
    Pattern(
        "synthesizer-del-misses-token-signal",
        "SpeechSynthesizer.__del__ does not disconnect its token signal",
        "object",
        detect_synthesizer_token_signal,
    ),
)


def detect(
    subject: Subject, scope: str, on_error: Optional[Callable[[str, BaseException], None]] = None
) -> Tuple[Finding, ...]:
    """The findings of every pattern of ``scope`` for ``subject`` (failing ones are skipped)."""
    findings: List[Finding] = []
    for pattern in PATTERNS:
        if pattern.scope != scope:
            continue
        try:
            findings.extend(pattern.detect(subject))
        except Exception as exc:
            if on_error is not None:
                on_error(f"pattern {pattern.name}", exc)
    return tuple(findings)
