"""Activation deferred until it is needed: what ``HANDLETRACE=1`` leaves at interpreter start.

``handletrace.pth`` runs in every interpreter, before the program; tracking has nothing to
do until the SDK is imported. So ``_boot`` only *arms* here: a small import hook that waits
for the SDK's package, and the at-exit hook. The full activation (reading and validating
the variables, ``install()``, the at-exit report) runs once, at the first of: the SDK's
import, a use of handletrace's public API, a front end starting (``handletrace run``, the
pytest plugin) or the program's exit. Until then start-up pays for this module only, which
imports nothing beyond what the interpreter has already loaded (no ``typing``, no
``dataclasses``, no ``threading``, no wrapt: measured in benchmarks/bench_startup.py).

Standard library only, like the rest of ``_core``: it knows the module to wait for from its
caller, not from the SDK layer.
"""

from __future__ import annotations

import _thread
import sys

TYPE_CHECKING = False  # typing is not imported at start-up (it costs ~1.7 MB); mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

__all__ = ["arm", "complete", "disarm", "is_armed"]

# The activation waiting to run, called with ``at_exit`` (True when the program is exiting
# and the watched module was never imported), and the import hook watching for the module.
_pending: Optional[Callable[[bool], Any]] = None
_finder: Optional[_ArmOnImport] = None
_lock = _thread.allocate_lock()  # guards the two above; never held while a callback runs


class _ChainedLoader:
    """The watched module's own loader, then the activation once the module has run."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # The module keeps its real loader, as if this one had never been there.
        module.__loader__ = self.loader
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self.loader
        self.loader.exec_module(module)
        complete()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class _ArmOnImport:
    """A ``sys.meta_path`` finder that chains the activation after the watched module's loader
    (the way ``wrapt``'s post-import hooks do, without importing wrapt at start-up)."""

    def __init__(self, module_name: str) -> None:
        self.module_name = module_name

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.module_name:
            return None
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _ChainedLoader(spec.loader)
            return spec
        return None


def arm(module_name: str, activation: Callable[[bool], Any]) -> None:
    """Run ``activation(at_exit=False)`` once ``module_name`` has been imported (now if it
    already is), or ``activation(at_exit=True)`` at exit if it never was; ``complete()`` runs
    it earlier. Arming again replaces the activation waiting (the hooks stay one each)."""
    global _pending, _finder
    if module_name in sys.modules:
        activation(False)
        return
    import atexit  # a built-in module: nothing to load

    with _lock:
        first = _pending is None and _finder is None
        _pending = activation
        if _finder is None:
            _finder = _ArmOnImport(module_name)
            sys.meta_path.insert(0, _finder)
    if first:
        atexit.register(_complete_at_exit)


def is_armed() -> bool:
    """Whether an activation is waiting."""
    return _pending is not None


def _take() -> Optional[Callable[[bool], Any]]:
    global _pending, _finder
    with _lock:
        activation, _pending = _pending, None
        finder, _finder = _finder, None
    if finder is not None:
        try:
            sys.meta_path.remove(finder)
        except ValueError:
            pass
    return activation


def complete() -> None:
    """Run the waiting activation now, if there is one (at most once)."""
    activation = _take()
    if activation is not None:
        activation(False)


def disarm() -> None:
    """Forget the waiting activation without running it (a front end takes over)."""
    _take()


def _complete_at_exit() -> None:
    activation = _take()
    if activation is not None:
        activation(True)
