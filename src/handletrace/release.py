"""Safe forced release: ``dispose()``, ``disposing()``, ``release_all()``, ``adispose()``.

The SDK has no ``close()``: a recognizer's native handles are released by ``_Handle.__del__``
when the Python object is finalised, which a callback closure that captures the recognizer
postpones until a cyclic collection. ``dispose(obj)`` releases them now, in this order:

1. **disconnect** every ``EventSignal`` created on ``obj`` (found generically in its instance
   dictionary, private name-mangled ones such as the recognizer's token-requested signal
   included), which also breaks the callback cycle. First, so that no user callback runs
   into an object being torn down (the stop below fires session_stopped/canceled);
2. **stop** a running operation: every ``stop_*_async()`` method the object has is called and
   its future waited for in a worker thread, for ``stop_timeout`` seconds in total; a stop
   that does not finish in time goes on in the background and the release goes ahead.
   Before it, ``SPEECH-StopRecognitionTimeoutInSeconds`` is set to ``0`` in the object's
   property bag: no callback is connected any more to receive final results, and without it
   stopping a session whose audio has ended waits 10 s for them (measured, SDK 1.53);
3. run the **SDK's own finaliser body** (``type(obj).__del__``, only when it is the SDK's),
   which clears native callbacks the SDK knows about (e.g. a pull stream's read callback)
   while the handle is still valid;
4. **release** every native handle ``obj`` owns, once, and **neutralise** each ``_Handle`` so
   its later ``__del__`` does nothing: its release function becomes a no-op and its handle
   value is set to NULL *in place* (so every alias of that ``c_void_p``, such as the one each
   ``EventSignal`` keeps, turns NULL too; the SDK answers a NULL handle with
   ``SPXERR_INVALID_ARG`` instead of touching whatever object now lives at the old address);
5. **record** each release in the registry with cause ``"forced"``, just before the native
   call (when handletrace tracked the handle; ``dispose()`` works the same without
   ``install()``);
6. **guard** the disposed object: every later SDK call on it raises one clear
   :class:`~handletrace.errors.DisposedError` ("ConversationTranscriber was disposed by
   handletrace.dispose() at service.py:42") instead of the SDK's native stack dump or an
   ``AttributeError`` from a NULL result. Every SDK method reaches the native handle through
   its ``_Handle``'s ``get()``; each ``_Handle`` the object owns gets an instance attribute
   ``get`` that raises (the class is untouched: objects never disposed pay nothing), and
   each of its ``EventSignal`` objects an instance attribute ``connect`` that raises (a signal
   keeps its own copy of the handle). The SDK's own finalisers still read the (NULL) handle
   silently when the object is collected. The site is the first caller outside handletrace,
   the SDK and ``contextlib``/``asyncio`` (file and line only, never argument values).

Threads: each ``_Handle`` is disarmed under a lock before its native release, so two
concurrent ``dispose()`` calls (or ``dispose()`` and ``release_all()``) release it once; a
second call on the same object returns at once with ``already_disposed=True``. On an SDK
callback thread (``dispose()`` from inside an event handler) the native release would wait
for that very handler to return, a deadlock: there ``dispose()`` disconnects at once and
hands the rest to a background thread (``deferred=True``).

Ownership (what "the handles ``obj`` owns" means, precisely): the ``interop._Handle`` objects
stored directly in ``obj``'s instance dictionary, and those of each ``PropertyCollection``
stored there (the SDK creates an object's property collections itself, from its own
handle; a recognizer's property bag keeps the native recognizer alive until it is released).
Everything else ``obj`` merely references is left alone: the ``SpeechConfig`` /
``AudioConfig`` / stream passed in by the user, a synthesizer's audio-config keep-alive, a
transcriber's ``_audio_keep_alive``, token credentials. ``EventSignal`` objects are owned too,
but hold no native handle of their own.

Why the neutralising matters: native handle values are addresses and the SDK reuses them at
once; a released-but-armed ``_Handle`` would, on its later ``__del__``, release whatever new
object now lives at that address (handles made with ``test_fn=None``, such as ``VoiceInfo``
or synthesis event args, do not even check validity first).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time
import warnings
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import (
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

from ._core.compat import DATACLASS_SLOTS
from ._core.registry import HandleRecord
from ._core.state import TRACKER
from ._sdk.blocking import timed_release
from ._sdk.kinds import kind_of
from ._sdk.modules import INTEROP_MODULE, handle_type, is_sdk_class, is_sdk_code
from ._sdk.records import live_records
from ._sdk.signals import event_signal_type, public_name
from .errors import DisposedError, HandleTraceWarning

__all__ = [
    "DEFAULT_STOP_TIMEOUT",
    "DisposeResult",
    "ReleaseAllResult",
    "adispose",
    "dispose",
    "disposing",
    "release_all",
]

#: Seconds ``dispose()`` waits, in total, for running operations to stop.
DEFAULT_STOP_TIMEOUT = 5.0


#: SDK property: seconds a stopping recognizer waits for the service's final results.
STOP_TIMEOUT_PROPERTY = "SPEECH-StopRecognitionTimeoutInSeconds"

_OWNED_SUBOBJECT_TYPES = ("PropertyCollection",)

# Guards the check-and-add of _DISPOSED and the swap of a _Handle's attributes: a few
# dictionary operations, never an SDK call.
_LOCK = threading.Lock()

# The objects whose disposal has started. Weak: it never keeps an SDK object alive, and
# nothing is added to the SDK objects themselves.
_DISPOSED: weakref.WeakSet[Any] = weakref.WeakSet()

T = TypeVar("T")


@dataclass(frozen=True, **DATACLASS_SLOTS)
class DisposeResult:
    """What ``dispose()`` did to one object.

    ``target``: the class of the disposed object (``""`` for ``None`` or a dead weak reference).
    ``disconnected``: names of the signals that had callbacks, e.g. ``("transcribed",)``.
    ``stopped``: the ``stop_*_async`` methods that were called and finished in time.
    ``stop_timed_out``: a stop did not finish within ``stop_timeout`` (it goes on in the
    background; the handles were released anyway).
    ``released``: kinds of the native handles released, in release order, e.g.
    ``("recognizer", "property_bag")``.
    ``already_disposed``: nothing was left to do (a second call, ``None``, or a weak reference
    whose object is gone). ``deferred``: ``dispose()`` was called on an SDK callback thread;
    the signals were disconnected at once and the stop and release handed to a background
    thread (on that thread the native release would wait for the running callback itself to
    return: a deadlock), so ``stopped`` and ``released`` are empty. ``errors``:
    ``"step: ExceptionType"`` for each step that failed (messages are left out: they may
    quote values).
    """

    target: str
    disconnected: Tuple[str, ...] = ()
    stopped: Tuple[str, ...] = ()
    stop_timed_out: bool = False
    released: Tuple[str, ...] = ()
    already_disposed: bool = False
    deferred: bool = False
    errors: Tuple[str, ...] = ()


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReleaseAllResult:
    """What ``release_all()`` did.

    ``results``: one ``DisposeResult`` per object disposed (or lone ``_Handle`` released).
    ``skipped``: matching records left alone: the async handles of never-resolved
    ``ResultFuture`` objects (see ``release_all``).
    """

    results: Tuple[DisposeResult, ...] = ()
    skipped: Tuple[HandleRecord, ...] = ()

    @property
    def released_by_kind(self) -> Dict[str, int]:
        """Handles released, per kind."""
        counts: Dict[str, int] = {}
        for result in self.results:
            for kind in result.released:
                counts[kind] = counts.get(kind, 0) + 1
        return counts

    @property
    def released_count(self) -> int:
        return sum(len(result.released) for result in self.results)

    @property
    def errors(self) -> Tuple[str, ...]:
        return tuple(error for result in self.results for error in result.errors)


# -- finding what an object owns ---------------------------------------------------------


def _instance_items(obj: Any) -> List[Tuple[str, Any]]:
    """A copy of ``obj``'s instance dictionary, read past any ``__getattribute__`` override
    (a broken proxy or descriptor cannot stop a release); empty if it has none."""
    try:
        state = object.__getattribute__(obj, "__dict__")
        return list(state.items())
    except Exception:
        return []


def _owned_subobjects(obj: Any) -> List[Any]:
    """The SDK objects ``obj`` created itself and owns (its ``PropertyCollection``\\ s)."""
    return [
        value
        for _, value in _instance_items(obj)
        if type(value).__name__ in _OWNED_SUBOBJECT_TYPES and is_sdk_class(type(value))
    ]


def _owned_handles(obj: Any) -> List[Any]:
    """The ``_Handle`` objects ``obj`` owns: its own, then its sub-objects', in dict order."""
    return [handle for _, handle in _handles_with_holders(obj)]


def _handles_with_holders(obj: Any) -> List[Tuple[Any, Any]]:
    """``(holder, _Handle)`` for each handle ``obj`` owns: ``obj`` or one of its sub-objects."""
    handle_cls = handle_type()
    if handle_cls is None:
        return []
    found: List[Tuple[Any, Any]] = []
    for holder in [obj, *_owned_subobjects(obj)]:
        found.extend(
            (holder, value)
            for _, value in _instance_items(holder)
            if issubclass(type(value), handle_cls)
        )
    return found


def _signals(obj: Any) -> List[Tuple[str, Any]]:
    """``(signal name, EventSignal)`` for every signal created on ``obj``.

    Keyed by attribute, so two classes' signals of the same name are both found.
    """
    signal_type = event_signal_type()
    if signal_type is None:
        return []
    return [
        (public_name(attribute) or attribute, value)
        for attribute, value in _instance_items(obj)
        if issubclass(type(value), signal_type)
    ]


_STOP_METHODS: Dict[type, Tuple[str, ...]] = {}


def _stop_methods(obj: Any) -> Tuple[str, ...]:
    """Names of the ``stop_*_async`` methods of ``obj``'s class (sorted; cached per class)."""
    cls = type(obj)
    names = _STOP_METHODS.get(cls)
    if names is None:
        names = tuple(
            name
            for name in sorted(dir(cls))
            if name.startswith("stop_")
            and name.endswith("_async")
            and callable(getattr(cls, name, None))
        )
        _STOP_METHODS[cls] = names
    return names


def _describe(step: str, exc: BaseException) -> str:
    return f"{step}: {type(exc).__name__}"


# -- where dispose() was called, and the guard it leaves on the disposed object ------------

_OWN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
_STDLIB_DIR = os.path.dirname(os.path.abspath(threading.__file__))
# Frames between the application and dispose(): handletrace's, the ``with`` machinery of
# disposing(), the event loop running adispose().
_PASSED_THROUGH = (
    _OWN_DIR,
    os.path.abspath(contextlib.__file__),
    os.path.join(_STDLIB_DIR, "asyncio", ""),
)


def _caller_site(depth: int = 1) -> str:
    """``file:line`` of the first caller outside handletrace, the SDK and the standard
    library's ``contextlib``/``asyncio`` (``""`` if there is none). No argument value is read."""
    try:
        frame: Any = sys._getframe(depth + 1)
        while frame is not None:
            filename = frame.f_code.co_filename
            if not (filename.startswith(_PASSED_THROUGH) or is_sdk_code(filename)):
                return f"{filename}:{frame.f_lineno}"
            frame = frame.f_back
    except Exception:
        pass
    return ""


class _Disposed:
    """What a disposed object's ``_Handle.get`` (and ``EventSignal.connect``) become: raises
    ``DisposedError``, except where the SDK reads the handle without using it:

    * in its own finalisers, which get the NULL handle as before (a disposed object is still
      collected silently);
    * in ``EventSignal.__init__``, when a signal is first asked for after ``dispose()``
      (``recognizer.recognized``): the signal is made with the NULL handle and guarded like
      the others, so cleanup code may still call ``disconnect_all()`` on any signal, and
      ``connect()`` raises.
    """

    __slots__ = ("message", "handle")

    def __init__(self, message: str, handle: Any = None) -> None:
        self.message = message
        self.handle = handle  # the (NULL) c_void_p, never the _Handle: no reference cycle

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        frame: Any = sys._getframe(1)
        try:
            for _ in range(8):  # __del__ -> detach_input() -> _handle -> get(), at most
                if frame is None or not is_sdk_code(frame.f_code.co_filename):
                    break
                name = frame.f_code.co_name
                if name == "__del__":
                    return self.handle
                if name == "__init__" and self._guard_new_signal(frame):
                    return self.handle
                frame = frame.f_back
        finally:
            del frame
        raise DisposedError(self.message)

    def _guard_new_signal(self, frame: Any) -> bool:
        signal = frame.f_locals.get("self")
        signal_type = event_signal_type()
        if signal_type is None or type(signal) is not signal_type:
            return False
        signal.__dict__["connect"] = _Disposed(self.message)
        return True


def _disposed_message(what: str, how: str, site: str) -> str:
    where = f" at {site}" if site else ""
    return f"{what} was disposed by handletrace.{how}(){where}; it cannot be used any more"


# -- the steps ---------------------------------------------------------------------------


def _disconnect(obj: Any, errors: List[str]) -> Tuple[str, ...]:
    disconnected = []
    for name, signal in _signals(obj):
        callbacks = getattr(signal, "_EventSignal__callbacks", None)
        had_callbacks = bool(callbacks)
        try:
            signal.disconnect_all()
        except Exception as exc:  # e.g. an SDK bug in a connection callback
            errors.append(_describe(f"disconnect {name}", exc))
            if callbacks:  # disconnect_all clears the list before the native call
                callbacks.clear()
        if had_callbacks:
            disconnected.append(name)
    return tuple(disconnected)


def _hurry_stop(obj: Any, errors: List[str]) -> None:
    """Tell the SDK not to wait for final results when it stops: nobody is connected to
    receive them. (Without this, stopping a session whose audio has ended waits 10 s.)"""
    for sub in _owned_subobjects(obj):
        try:
            sub.set_property_by_name(STOP_TIMEOUT_PROPERTY, "0")
        except Exception as exc:
            errors.append(_describe("set stop timeout", exc))


class _Stopper:
    """Calls an object's stop methods in a worker thread and waits for their futures.

    ``gate`` is held while a stop method is *called* (which reads the object's handle), never
    while its future is waited for. Once the wait times out, ``abandon()`` takes the gate and
    sets ``abandoned``: from then on the worker calls no more stop methods, so it can never
    read a handle value while that handle is being released.
    """

    def __init__(self, obj: Any, names: Tuple[str, ...]) -> None:
        self.obj = obj
        self.names = names
        self.gate = threading.Lock()
        self.abandoned = False
        self.done: List[str] = []
        self.errors: List[str] = []

    def run(self) -> None:
        try:
            for name in self.names:
                with self.gate:
                    if self.abandoned:
                        return
                    try:
                        future = getattr(self.obj, name)()
                    except NotImplementedError:
                        continue  # declared by a base class, not implemented by this one
                    except Exception as exc:
                        self.errors.append(_describe(name, exc))
                        continue
                get = getattr(future, "get", None)
                if not callable(get):
                    continue  # e.g. the base Recognizer's stop_keyword_recognition_async stub
                try:
                    get()
                except Exception as exc:
                    self.errors.append(_describe(name, exc))
                    continue
                self.done.append(name)
        finally:
            self.obj = None  # an abandoned stop must not keep the object alive

    def abandon(self, wait: float) -> None:
        acquired = self.gate.acquire(timeout=wait)
        self.abandoned = True
        if acquired:
            self.gate.release()


def _stop(obj: Any, timeout: float, errors: List[str]) -> Tuple[Tuple[str, ...], bool]:
    """Stop running operations; wait at most ``timeout`` seconds. (stopped, timed out)."""
    names = _stop_methods(obj)
    if not names or timeout <= 0:
        return (), False
    stopper = _Stopper(obj, names)
    worker = threading.Thread(target=stopper.run, name="handletrace-stop", daemon=True)
    try:
        worker.start()
    except RuntimeError as exc:  # no new threads (interpreter shutdown): release stops it
        errors.append(_describe("stop", exc))
        return (), False
    worker.join(timeout)
    if worker.is_alive():
        # The pending stop goes on in the background (its future releases its own async
        # handle); no further stop method is called.
        stopper.abandon(timeout)
        return tuple(stopper.done), True
    errors.extend(stopper.errors)
    return tuple(stopper.done), False


def _run_sdk_finaliser(obj: Any, errors: List[str]) -> None:
    """Run the SDK's own ``__del__`` body (never a user subclass's) while handles are valid."""
    cls = type(obj)
    finaliser = getattr(cls, "__del__", None)
    module = getattr(finaliser, "__module__", None) or ""
    # Only for the SDK's own classes: several SDK finalisers call super(type(self), self),
    # which recurses without end on a user subclass.
    if (
        finaliser is None
        or not is_sdk_class(cls)
        or not is_sdk_class(finaliser)
        or module == INTEROP_MODULE
    ):
        return
    try:
        finaliser(obj)
    except Exception as exc:
        errors.append(_describe("finaliser", exc))


def _noop_release(handle: Any) -> int:
    return 0


def _is_true(value: Any) -> bool:
    """A native ``bool`` result. With ctypes' default ``int`` return type only the low byte
    is defined (the SDK calls ``*_is_valid`` that way from ``_Handle.__del__``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return (value & 0xFF) != 0
    return bool(value)


def _disarm(
    handle_obj: Any, guard: Optional[str] = None
) -> Optional[Tuple[Any, Any, Any, int, Optional[int]]]:
    """Take the native handle out of a ``_Handle`` so nothing else releases it; with a
    ``guard`` message, every later ``get()`` raises ``DisposedError(guard)``.

    Returns ``(handle value object, test_fn, release_fn, address, seq)``, or ``None`` if the
    ``_Handle`` was already disarmed (by another ``dispose()``) or holds no handle.
    """
    with _LOCK:
        state = handle_obj.__dict__
        release_fn = state.get("_Handle__release_fn")
        if release_fn is None or release_fn is _noop_release:
            return None
        handle = state.get("_Handle__handle")
        test_fn = state.get("_Handle__test_fn")
        value = getattr(handle, "value", handle)
        address = value if isinstance(value, int) else 0
        state["_Handle__release_fn"] = _noop_release
        state["_Handle__test_fn"] = None
        if guard is not None:
            # Before the handle goes NULL: no SDK call can read the NULL value from now on.
            state["get"] = _Disposed(guard, handle)
        # The registry never counts a release twice: the later __del__ finds the record gone.
        seq = TRACKER.registry.seq_of_handle(handle_obj)
    if not address:
        return None
    return handle, test_fn, release_fn, address, seq


def _null_in_place(handle: Any, owner: Any) -> None:
    """Set a ``c_void_p`` to NULL in place (every alias sees it); else replace it."""
    try:
        handle.value = None
    except (AttributeError, TypeError):
        null = ctypes.c_void_p(0)
        owner.__dict__["_Handle__handle"] = null
        guard = owner.__dict__.get("get")
        if isinstance(guard, _Disposed):
            guard.handle = null


def _release_handle(
    handle_obj: Any, errors: List[str], guard: Optional[str] = None, owner: str = ""
) -> Optional[str]:
    """Release one ``_Handle`` now, once; return its kind, or ``None`` if nothing was done.
    ``guard``: the ``DisposedError`` message its later ``get()`` calls raise; ``owner``: the
    class of the object disposed (for the record of a slow release)."""
    taken = _disarm(handle_obj, guard)
    if taken is None:
        return None
    handle, test_fn, release_fn, address, seq = taken
    name = getattr(release_fn, "__name__", None) or "unknown"
    kind = kind_of(name)
    # The native call gets its own copy of the address; the Python object goes NULL first,
    # so no other thread can pass the old address again after this point.
    raw = ctypes.c_void_p(address)
    _null_in_place(handle, handle_obj)

    def release() -> None:
        try:
            if test_fn is None or _is_true(test_fn(raw)):
                release_fn(raw)
        except Exception as exc:
            errors.append(_describe(f"release {kind}", exc))

    # In flight (still live) while the native release runs, then counted "forced"; timed.
    timed_release(TRACKER, seq, "forced", release, owner)
    return kind


def _null_signal_handles(obj: Any, guard: str) -> None:
    """NULL each signal's copy of the handle; connecting to it raises ``DisposedError``
    (``disconnect_all()`` stays harmless: cleanup code may call it after ``dispose()``)."""
    for _, signal in _signals(obj):
        try:
            state = signal.__dict__
            state["_EventSignal__handle"] = ctypes.c_void_p(0)
            state["connect"] = _Disposed(guard)
        except Exception:
            pass


def _on_foreign_thread() -> bool:
    """Whether this thread was not started by Python: an SDK callback thread.

    Read without creating a ``_DummyThread`` (``threading.current_thread()`` would).
    """
    thread = threading._active.get(threading.get_ident())  # type: ignore[attr-defined]
    return thread is None or isinstance(thread, threading._DummyThread)  # type: ignore[attr-defined]


def _claim(obj: Any) -> bool:
    """Mark ``obj`` as disposed; ``False`` if it already was."""
    with _LOCK:
        try:
            if obj in _DISPOSED:
                return False
            _DISPOSED.add(obj)
        except Exception:
            pass  # no weak references (or no hash): the handle-level guard still holds
    return True


# -- public API ----------------------------------------------------------------------------


def dispose(obj: Any, *, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> DisposeResult:
    """Disconnect, stop and release an SDK object's native handles now.

    Works on any SDK object that owns native handles (recognizers, transcribers,
    synthesizers, connections, dialog connectors, audio streams, configs...). Never raises
    for SDK failures: each failed step is listed in ``errors``. Calling it twice, on
    ``None``, or on a ``weakref.ref`` whose object is gone is harmless. A concurrent second
    call returns at once with ``already_disposed=True`` while the first does the work.

    ``stop_timeout``: seconds to wait, in total, for running operations to stop (``0``
    skips stopping; the native release then stops them itself, synchronously). After
    ``dispose()`` every method of ``obj`` that reaches the SDK fails cleanly (the handles are
    NULL); ``obj`` must not be in use on another thread while it is being disposed.

    Called on an SDK callback thread (from inside an event handler), it disconnects the
    signals at once and hands the rest to a background thread (``deferred=True``).

    Afterwards, an SDK call on ``obj`` (``recognize_once()``, ``properties.get_property()``,
    connecting a signal...) raises :class:`~handletrace.errors.DisposedError` saying where
    ``dispose()`` was called.
    """
    return _dispose(obj, stop_timeout, "dispose", _caller_site())


def _dispose(obj: Any, stop_timeout: float, how: str, site: str) -> DisposeResult:
    """``dispose()``; ``how`` (the public function called) and ``site`` (where it was called)
    go into the ``DisposedError`` message of later calls."""
    if issubclass(type(obj), weakref.ref):  # type(): isinstance() may call obj.__class__
        obj = obj()
    if obj is None:
        return DisposeResult(target="", already_disposed=True)
    target = type(obj).__qualname__
    handle_cls = handle_type()
    if handle_cls is not None and issubclass(type(obj), handle_cls):
        errors: List[str] = []
        kind = _release_handle(obj, errors)
        return DisposeResult(
            target=target,
            released=(kind,) if kind else (),
            already_disposed=kind is None,
            errors=tuple(errors),
        )
    if not _claim(obj):
        return DisposeResult(target=target, already_disposed=True)
    errors = []
    disconnected = _disconnect(obj, errors)
    guard = (how, site)
    if _on_foreign_thread():
        try:
            threading.Thread(
                target=_teardown,
                args=(obj, stop_timeout, [], guard),
                name="handletrace-dispose",
                daemon=True,
            ).start()
        except RuntimeError as exc:
            # No new threads (interpreter shutdown). Releasing here could wait for this very
            # callback: leave the (still armed) handles to the SDK's own finalisers.
            errors.append(_describe("deferred teardown", exc))
        return DisposeResult(
            target=target, disconnected=disconnected, deferred=True, errors=tuple(errors)
        )
    stopped, timed_out, released = _teardown(obj, stop_timeout, errors, guard)
    return DisposeResult(
        target=target,
        disconnected=disconnected,
        stopped=stopped,
        stop_timed_out=timed_out,
        released=released,
        already_disposed=False,
        errors=tuple(errors),
    )


def _teardown(
    obj: Any, stop_timeout: float, errors: List[str], guard: Tuple[str, str]
) -> Tuple[Tuple[str, ...], bool, Tuple[str, ...]]:
    """Steps 2-6 of ``dispose()``: stop, SDK finaliser, release and guard, NULL the signals'
    handles. ``guard``: (the public function called, where) for ``DisposedError`` messages."""
    if _stop_methods(obj):
        _hurry_stop(obj, errors)
    stopped, timed_out = _stop(obj, stop_timeout, errors)
    _run_sdk_finaliser(obj, errors)
    released = []
    target = type(obj).__qualname__
    message = _disposed_message(target, *guard)
    for holder, handle_obj in _handles_with_holders(obj):
        # A sub-object (the property bag) says whose it is: "PropertyCollection of X ...".
        kind = _release_handle(
            handle_obj,
            errors,
            message
            if holder is obj
            else _disposed_message(f"{type(holder).__qualname__} of {target}", *guard),
            target if holder is obj else f"{type(holder).__qualname__} of {target}",
        )
        if kind is not None:
            released.append(kind)
    _null_signal_handles(obj, message)
    return stopped, timed_out, tuple(released)


@contextmanager
def disposing(obj: T, *, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> Iterator[T]:
    """``with disposing(SpeechRecognizer(...)) as recognizer:`` disposes it on exit.

    The object is disposed however the block ends (normally or by an exception, which then
    propagates unchanged).
    """
    site = _caller_site()  # the with statement (at exit, Python 3.9 gives the block's last line)
    try:
        yield obj
    finally:
        _dispose(obj, stop_timeout, "disposing", site)


async def adispose(
    obj: Any,
    *,
    timeout: Optional[float] = None,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
) -> DisposeResult:
    """``dispose(obj)`` in a worker thread, so the event loop keeps running meanwhile.

    Native teardown is blocking (releasing a recognizer stops its session synchronously).
    The work runs in a dedicated daemon thread (not the loop's default executor, which it
    could starve, and which ``asyncio.run()`` waits for at exit). If it takes longer than
    ``timeout`` seconds, ``asyncio.TimeoutError`` is raised (the built-in ``TimeoutError``
    from Python 3.11) and the teardown goes on in the background; it still releases each
    handle once, and a later ``dispose(obj)`` returns ``already_disposed=True`` at once.
    Cancelling the awaiting task does not stop the teardown either.
    """
    import asyncio  # here, not at import: HANDLETRACE=1 start-up should not pay for it

    loop = asyncio.get_running_loop()
    future: asyncio.Future[DisposeResult] = loop.create_future()

    def deliver(result: Optional[DisposeResult], exc: Optional[BaseException]) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    site = _caller_site(0)  # the coroutine awaiting this one (the worker has no caller)

    def work(target: Any) -> None:
        result: Optional[DisposeResult] = None
        error: Optional[BaseException] = None
        try:
            result = _dispose(target, stop_timeout, "adispose", site)
        except BaseException as exc:  # pragma: no cover - dispose() catches SDK failures
            error = exc
        try:
            loop.call_soon_threadsafe(deliver, result, error)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    worker = threading.Thread(target=work, args=(obj,), name="handletrace-adispose", daemon=True)
    del obj  # the worker holds the reference; an abandoned await must not keep obj alive
    worker.start()
    if timeout is None:
        return await asyncio.shield(future)
    return await asyncio.wait_for(asyncio.shield(future), timeout)


def _target_of(record: HandleRecord) -> Any:
    """The object to dispose for a live handle record: the top-level owner of its handle."""
    owner = record.owner_ref()
    handle_obj = record.handle_ref()
    if owner is not None:
        parent = record.parent_ref()
        if parent is not None and any(sub is owner for sub in _owned_subobjects(parent)):
            owner = parent
        if handle_obj is None or any(h is handle_obj for h in _owned_handles(owner)):
            return owner
    return handle_obj  # no known owner: release the lone _Handle


def _kinds_filter(kind: Union[None, str, Iterable[str]]) -> Optional[frozenset]:
    if kind is None:
        return None
    return frozenset([kind] if isinstance(kind, str) else kind)


def _dispose_guarded(target: Any, stop_timeout: float, site: str) -> DisposeResult:
    """``dispose()`` that cannot stop ``release_all()``: a failure is counted and reported."""
    try:
        return _dispose(target, stop_timeout, "release_all", site)
    except Exception as exc:
        TRACKER.registry.count_error("release_all", exc)
        return DisposeResult(target=type(target).__qualname__, errors=(_describe("dispose", exc),))


def release_all(
    kinds: Union[None, str, Iterable[str]] = None,
    *,
    older_than: Optional[float] = None,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    kind: Union[None, str, Iterable[str]] = None,
) -> ReleaseAllResult:
    """Dispose the owners of every live tracked handle (for shutdown paths, admin endpoints).

    ``kinds``: only handles of this kind (or these kinds), e.g. ``"recognizer"``, as for
    ``install(kinds=)`` (``kind=`` is its old name);
    ``older_than``: only handles created at least this many seconds ago. Each matching
    handle's top-level owner is disposed (a property bag's recognizer, say), which releases
    all the handles that owner owns, matching or not. Owners are disposed newest first (in
    reverse order of creation), so consumers go before the streams and configs they use.
    Objects in unreachable reference cycles are disposed too, without a garbage collection.

    Needs the registry, i.e. ``install()`` (it warns ``HandleTraceWarning`` when handletrace
    is not installed, and then acts only on records kept from an earlier installation).

    Async handles of never-resolved ``ResultFuture``\\ s (records with ``source ==
    "future"``) are never released; they are returned in ``skipped``: releasing a pending
    async operation blocks until that operation completes (forever, if it never does), and
    the future's ``get()`` may be running on another thread, which would then release the
    same address a second time.
    """
    if kind is not None:
        warnings.warn(
            "release_all(kind=) is now release_all(kinds=) (as in install())",
            DeprecationWarning,
            stacklevel=2,
        )
        kinds = kind if kinds is None else kinds
    if older_than is not None and older_than < 0:
        raise ValueError(f"older_than must be >= 0 seconds, got {older_than!r}")
    tracker = TRACKER
    if not tracker.installed:
        warnings.warn(
            "handletrace.release_all() needs handletrace.install(): without it no handles are "
            "tracked, so only records kept from an earlier installation are released",
            HandleTraceWarning,
            stacklevel=2,
        )
    wanted = _kinds_filter(kinds)
    now = time.monotonic()
    # Each owner once, in the order first met (by identity: one lookup per record, not a
    # scan of the owners so far, which made this quadratic in the live handles).
    targets: Dict[int, Any] = {}
    skipped: List[HandleRecord] = []
    for record in live_records(tracker.registry, kinds=wanted):
        if older_than is not None and record.age(now) < older_than:
            continue
        if record.source != "handle":
            skipped.append(record)
            continue
        target = _target_of(record)
        if target is not None:
            targets.setdefault(id(target), target)
    # Newest first, like destruction in reverse order of construction: a recognizer is
    # stopped and released before the streams and configs it was made from.
    site = _caller_site()
    ordered = list(targets.values())
    targets.clear()
    results = tuple(_dispose_guarded(target, stop_timeout, site) for target in reversed(ordered))
    del ordered
    return ReleaseAllResult(results=results, skipped=tuple(skipped))


def is_disposed(obj: Any) -> bool:
    """Whether ``dispose()`` has been called on ``obj``."""
    try:
        return obj in _DISPOSED
    except Exception:
        return False
