"""install() / uninstall(): start and stop tracking.

``install()`` works before or after the SDK is imported (a post-import hook patches it on
import); both are idempotent, exactly reversible and serialised by one lock, so two
concurrent first calls never stack two sets of patches.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import warnings
import weakref
from types import FrameType
from typing import Any, Collection, Dict, FrozenSet, Optional

import wrapt

from .._core import stacks
from .._core.config import Config
from .._core.registry import Registry
from .._core.state import TRACKER, Tracker
from .._sdk.kinds import unknown_kinds_message
from .._sdk.modules import SDK_MODULE, SPEECH_MODULE, handle_type, sdk_problem, sdk_version
from .._sdk.records import live_records, prune_dead_handles
from ..errors import HandleTraceWarning
from .environ import OPTIONS as ENV_OPTIONS
from .environ import tracking_from_env, warn_once
from .patcher import Patcher

__all__ = [
    "install",
    "is_installed",
    "releases_in_flight",
    "prune_unobserved",
    "settle_exposed_futures",
    "settle_records",
    "uninstall",
    "watch_handles",
]

# Serialises install(), uninstall() and the post-import hook: two concurrent first calls
# must not stack two patchers. Re-entrant: the SDK import inside install() runs the hook.
_LOCK = threading.RLock()
_hook_registered = False


def _patch_sdk(sdk: Any) -> None:
    """Post-import hook (or direct call): wrap the SDK if tracking is on and not yet wrapped."""
    with _LOCK:
        _patch_sdk_locked(sdk)


def _patch_sdk_locked(sdk: Any) -> None:
    tracker = TRACKER
    if not tracker.installed or tracker.patcher is not None:
        return
    problem = sdk_problem(sdk)
    if problem is not None:
        tracker.installed = False
        warnings.warn(
            f"handletrace: azure-cognitiveservices-speech {sdk_version()} is not supported "
            f"({problem}); the SDK was left untouched and no handles are tracked. "
            "Install a supported SDK release (see the handletrace README).",
            HandleTraceWarning,
            stacklevel=3,
        )
        return
    sdk_dir = os.path.dirname(os.path.abspath(sdk.__file__))
    wrapt_dir = os.path.dirname(os.path.abspath(wrapt.__file__))
    stacks.set_ignored_prefixes([sdk_dir, wrapt_dir])
    patcher = Patcher(tracker, sdk_dir + os.sep, [sdk_dir, wrapt_dir])
    try:
        patcher.apply(sdk)
    except Exception as exc:
        patcher.remove()
        tracker.installed = False
        warnings.warn(
            f"handletrace: could not wrap azure-cognitiveservices-speech {sdk_version()} "
            f"({type(exc).__name__}: {exc}); the SDK was left untouched.",
            HandleTraceWarning,
            stacklevel=3,
        )
        return
    tracker.patcher = patcher


def _on_gc(phase: str, info: Dict[str, int]) -> None:
    TRACKER.gc_thread = threading.get_ident() if phase == "start" else None


def install(
    *,
    stack_depth: Optional[int] = None,
    stack_sample: Optional[int] = None,
    kinds: Optional[Any] = None,
    slow_release: Optional[float] = None,
) -> bool:
    """Start tracking native handles; return ``True`` if this call started it.

    Works before or after ``azure.cognitiveservices.speech`` is imported (a post-import hook
    patches it on import). A second call while installed is a no-op; if it asks for other
    options, it warns and keeps the ones in force.

    An option left out (``None``) comes from the environment, else its default:
    ``HANDLETRACE_STACK_DEPTH`` (16), ``HANDLETRACE_STACK_SAMPLE`` (1), ``HANDLETRACE_KINDS``
    (every kind), ``HANDLETRACE_SLOW_RELEASE`` (0.1 s: a native release, or a synchronous SDK
    call on an event-loop thread, at least this long is recorded as blocking); a bad value
    there warns once and the default is used. An invalid argument
    raises ``ValueError``; for ``kinds``, one naming the unknown kinds, the closest known kind
    to each and the known kinds (a misspelt kind would otherwise track nothing).
    """
    changes: Dict[str, Any] = {}
    if stack_depth is not None:
        changes["stack_depth"] = stack_depth
    if stack_sample is not None:
        changes["stack_sample"] = stack_sample
    if slow_release is not None:
        changes["slow_release"] = slow_release
    if kinds is not None:
        names = frozenset([kinds] if isinstance(kinds, str) else kinds)
        if all(isinstance(name, str) for name in names):  # else Config says what is wrong
            problem = unknown_kinds_message(names)
            if problem is not None:
                raise ValueError(problem)
        changes["kinds"] = names
    with _LOCK:
        return _install_locked(changes)


def _install_locked(changes: Dict[str, Any]) -> bool:
    global _hook_registered
    tracker = TRACKER
    if tracker.installed:
        config = tracker.config.with_changes(**changes)  # validates; raises ValueError
        if changes and config != tracker.config:
            warnings.warn(
                "handletrace.install() called again with different options; it is already "
                "installed and keeps its current options (call uninstall() first to change them)",
                HandleTraceWarning,
                stacklevel=3,
            )
        return False
    # A fresh install starts from the defaults (options of an earlier install() do not
    # linger); the arguments win over the environment, which fills in the ones left out.
    config = Config().with_changes(**changes)  # validates the arguments before any warning
    missing = [option for option in ENV_OPTIONS if option not in changes]
    if missing:
        from_env, problems = tracking_from_env(options=missing)
        warn_once(problems, stacklevel=3)
        given = {option: getattr(from_env, option) for option in missing}
        config = config.with_changes(**{k: v for k, v in given.items() if v is not None})
    tracker.config = config
    tracker.installed = True
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
    sdk = sys.modules.get(SDK_MODULE)
    if sdk is not None and SPEECH_MODULE in sys.modules:
        _patch_sdk(sdk)
    elif not _hook_registered:
        _hook_registered = True
        wrapt.register_post_import_hook(_patch_sdk, SDK_MODULE)
    # Pruned once the hooks and release wrappers are in place, never before: a handle
    # released by another thread between a prune and the hooks would be seen by neither
    # and stay on record for good. From here on every release is seen, so one pass leaves
    # only the handles alive now (see prune_unobserved for those dying as it runs).
    watched_from = tracker.registry.last_seq()  # records made after this: all wrappers in
    tracker.exposed_futures = prune_unobserved(tracker, made_before=watched_from)
    return tracker.installed


def uninstall() -> bool:
    """Stop tracking and restore every original SDK attribute; ``True`` if it was installed.

    Handles created while installed keep working. Records of handles still alive stay in the
    registry until those handles are released or ``install()`` runs again.
    """
    with _LOCK:
        return _uninstall_locked()


def _uninstall_locked() -> bool:
    tracker = TRACKER
    if not tracker.installed and tracker.patcher is None:
        return False
    tracker.installed = False
    # Listed while the release wrappers are still in place: a future whose record is live
    # and which is gone now died unresolved while they watched (a resolved one's release
    # was seen and its record dropped): a real leak, kept by every later prune. Any other
    # future record may be resolved unseen once the wrappers are gone (one added by a
    # ResultFuture() that raced with this call too: it is not listed), and is pruned by the
    # next install() if its future is resolved or gone by then.
    registry = tracker.registry
    _settle_futures(registry, tracker.exposed_futures)  # not leaks: released unseen, or not
    tracker.exposed_futures = frozenset()
    tracker.leaked_futures = frozenset(
        record.seq
        for record in live_records(registry, source="future")
        if record.owner_ref() is None
    )
    if tracker.patcher is not None:
        tracker.patcher.remove()
        tracker.patcher = None
    if _on_gc in gc.callbacks:
        gc.callbacks.remove(_on_gc)
    tracker.gc_thread = None
    return True


def is_installed() -> bool:
    """Whether handletrace is tracking (or waiting for the SDK to be imported to track)."""
    return TRACKER.installed


def prune_unobserved(tracker: Tracker, made_before: Optional[int] = None) -> FrozenSet[int]:
    """Drop records whose handle was released while handletrace was not installed: a
    ``_Handle`` that died, or the async handle of a ``ResultFuture`` that has been resolved
    (``get()`` released it unseen) or dropped; a future that died unresolved while
    handletrace watched is a real leak and stays (``leaked_futures``). A ``_Handle`` whose
    release is running now through the SDK's own ``__del__`` (begun before the hooks went
    in) has its record released when the object goes (``watch_handles``). ``made_before``: only
    futures of records up to this sequence number are looked at (the later ones were made
    with every wrapper in place).

    Returns the futures looked at that are still alive and unresolved (still exposed: one
    may be in the middle of ``get()``, its handle released but not yet marked resolved)."""
    registry = tracker.registry
    # Looked for before the heap pass: a _Handle in its finaliser is still among the
    # collector's objects (found alive).
    unhooked = releases_in_flight()
    alive: Dict[int, Any] = {}
    prune_dead_handles(registry, found=alive if unhooked else None)
    if unhooked:
        watch_handles(registry, alive)
        alive.clear()
    leaked = tracker.leaked_futures
    return _settle_futures(
        registry,
        [
            seq
            for seq in registry.entries(source="future")
            if seq not in leaked and (made_before is None or seq <= made_before)
        ],
    )


def settle_records(tracker: Tracker) -> None:
    """What ``snapshot()`` does first: while not installed, drop the records of handles
    released since (``prune_unobserved``, one heap pass); while installed, those of exposed
    futures resolved or gone since ``install()`` looked (``settle_exposed_futures``)."""
    if tracker.installed:
        settle_exposed_futures(tracker)
        return
    with _LOCK:  # not while install() puts the wrappers in and prunes
        if not tracker.installed:
            prune_unobserved(tracker)


def settle_exposed_futures(tracker: Tracker) -> None:
    """Drop the records of exposed futures resolved or gone since install() looked: a
    ``get()`` that released its async handle before the release wrappers were in place and
    marked its future resolved after install() looked. ``snapshot()`` and ``stats()`` call
    this while installed; it costs nothing when no future is exposed."""
    if not tracker.exposed_futures:
        return
    with _LOCK:
        if tracker.installed:
            tracker.exposed_futures = _settle_futures(tracker.registry, tracker.exposed_futures)


def _settle_futures(registry: Registry, seqs: Collection[int]) -> FrozenSet[int]:
    """Release (cause ``untracked``) the future records of ``seqs`` whose future is resolved
    (its record still live: the release was unseen) or gone; the others' sequence numbers."""
    if not seqs:
        return frozenset()
    wanted = set(seqs)
    still = set()
    for record in live_records(registry, select=wanted.__contains__, source="future"):
        future = record.owner_ref()
        if future is None or getattr(future, "_ResultFuture__resolved", False):
            registry.release(record.seq, "untracked")
        else:
            still.add(record.seq)
    return frozenset(still)


class _Watch(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a ``_Handle`` that knows its record's sequence number."""

    __slots__ = ("seq",)
    seq: int


#: seq -> the weak reference that releases its record when its ``_Handle`` is freed.
_WATCHED: Dict[int, _Watch] = {}


def releases_in_flight() -> bool:
    """Whether a ``_Handle.__del__`` of the SDK's is running now on some thread: one begun
    before the hooks went in, if any, cannot be told from a hooked one.

    Frames are only walked (their code compared), never read: the locals of another
    thread's running frame are not safe to read (reading them in a ``__del__`` in flight
    crashed CPython 3.11 within a few hundred install() calls). Even the walk can meet a
    frame changing under it (an ``f_back`` that was a code object, once under CI load):
    then the answer is the careful one, yes."""
    handle_class = handle_type()
    if handle_class is None:
        return False
    current = handle_class.__dict__.get("__del__")
    original = getattr(current, "__wrapped__", current)  # the hooks name the SDK's own
    code = getattr(original, "__code__", None)
    if code is None:
        return False
    try:
        for top in sys._current_frames().values():
            frame: Optional[FrameType] = top
            while frame is not None:
                if not isinstance(frame, FrameType) or frame.f_code is code:
                    return True
                frame = frame.f_back
    except Exception:  # pragma: no cover - seen once under CI load (a code object as f_back)
        return True
    return False


def watch_handles(registry: Registry, alive: Dict[int, Any]) -> None:
    """Release (cause ``untracked``) the record of each ``_Handle`` of ``alive`` (seq ->
    object) when the object is freed, unless a hook did first.

    For ``install()`` when a release was in flight as the hooks went in: a ``_Handle`` in
    the SDK's own ``__del__`` then is among the collector's objects, found alive, and no
    hook sees it go. Its record goes when the object is freed, just after its native
    release returned (for every other handle the hook has released the record by then, and
    the callback finds nothing to do)."""

    def freed(ref: _Watch) -> None:
        # Runs as the object is freed, on any thread: never raises.
        try:
            _WATCHED.pop(ref.seq, None)
            registry.release(ref.seq, "untracked")
        except Exception as exc:
            registry.count_error("unhooked release", exc)

    for seq, handle in alive.items():
        if seq in _WATCHED:
            continue
        try:
            ref = _Watch(handle, freed)
        except TypeError:  # not weakly referenceable: left to the next install()
            continue
        ref.seq = seq
        _WATCHED[seq] = ref


def reset_lock_after_fork() -> None:
    # A lock held by another thread at fork() time would never be released in the child.
    global _LOCK
    _LOCK = threading.RLock()


TRACKER.on_reset.append(uninstall)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_lock_after_fork)
