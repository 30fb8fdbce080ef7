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
from typing import Any, Dict, FrozenSet, Optional

import wrapt

from .._core import stacks
from .._core.config import Config
from .._core.state import TRACKER, Tracker
from .._sdk.kinds import unknown_kinds_message
from .._sdk.modules import SDK_MODULE, SPEECH_MODULE, sdk_problem, sdk_version
from .._sdk.records import live_records, prune_dead_handles
from ..errors import HandleTraceWarning
from .environ import OPTIONS as ENV_OPTIONS
from .environ import tracking_from_env, warn_once
from .patcher import Patcher

__all__ = ["install", "is_installed", "prune_unobserved", "uninstall"]

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
    tracker.exposed_futures, tracker.exposed_after = prune_unobserved(tracker), None
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
    sdk = sys.modules.get(SDK_MODULE)
    if sdk is not None and SPEECH_MODULE in sys.modules:
        _patch_sdk(sdk)
    elif not _hook_registered:
        _hook_registered = True
        wrapt.register_post_import_hook(_patch_sdk, SDK_MODULE)
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
    marker = tracker.registry.last_seq()  # records made after this raced with uninstall()
    tracker.installed = False
    # Futures alive now may be resolved (their async handle released) unseen once the release
    # wrappers are gone. Listed while the wrappers are still in place: a future resolved and
    # dropped before the listing was seen by them, one resolved after it is listed.
    tracker.exposed_futures = tracker.exposed_futures.union(
        record.seq
        for record in live_records(tracker.registry, source="future")
        if record.owner_ref() is not None
    )
    if tracker.patcher is not None:
        tracker.patcher.remove()
        tracker.patcher = None
    if _on_gc in gc.callbacks:
        gc.callbacks.remove(_on_gc)
    tracker.gc_thread = None
    tracker.exposed_after = marker
    return True


def is_installed() -> bool:
    """Whether handletrace is tracking (or waiting for the SDK to be imported to track)."""
    return TRACKER.installed


def prune_unobserved(tracker: Tracker) -> FrozenSet[int]:
    """Drop records whose handle was released while handletrace was not installed: a
    ``_Handle`` that died, or the async handle of a ``ResultFuture`` that was alive at an
    ``uninstall()`` and has since been resolved (``get()`` released it unseen) or dropped.
    (A future that died unresolved while handletrace watched is a real leak: it stays.)

    Returns the exposed futures still alive and unresolved (still exposed: one may be in the
    middle of ``get()``, its handle released but not yet marked resolved)."""
    registry = tracker.registry
    exposed, after = tracker.exposed_futures, tracker.exposed_after
    still = set()
    prune_dead_handles(registry)
    for record in live_records(registry, source="future"):
        if record.seq in exposed or (after is not None and record.seq > after):
            future = record.owner_ref()
            if future is None or getattr(future, "_ResultFuture__resolved", False):
                registry.release(record.seq, "untracked")
            else:
                still.add(record.seq)
    return frozenset(still)


def reset_lock_after_fork() -> None:
    # A lock held by another thread at fork() time would never be released in the child.
    global _LOCK
    _LOCK = threading.RLock()


TRACKER.on_reset.append(uninstall)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_lock_after_fork)
