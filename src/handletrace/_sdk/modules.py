"""Where the SDK lives and what is the SDK's: module names, classes, code, version, and
whether its internals are what handletrace expects."""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional

__all__ = [
    "DISTRIBUTION",
    "INTEROP_MODULE",
    "SDK_MODULE",
    "SPEECH_MODULE",
    "event_signal_type",
    "handle_type",
    "is_sdk_class",
    "is_sdk_code",
    "is_sdk_object",
    "sdk_dir",
    "sdk_library",
    "sdk_problem",
    "sdk_version",
]

#: The SDK's top-level package, and the modules handletrace reads.
SDK_MODULE = "azure.cognitiveservices.speech"
INTEROP_MODULE = SDK_MODULE + ".interop"
SPEECH_MODULE = SDK_MODULE + ".speech"
#: The SDK's distribution name (for its version).
DISTRIBUTION = "azure-cognitiveservices-speech"

_is_sdk_type: Dict[type, bool] = {}


def is_sdk_class(cls: type) -> bool:
    """Whether ``cls`` is defined by the SDK (a user's subclass is not). Read past a
    metaclass's ``__getattribute__`` (a user's class may make it raise)."""
    try:
        module = type.__getattribute__(cls, "__module__")
    except Exception:
        return False
    return isinstance(module, str) and module.startswith(SDK_MODULE)


def is_sdk_object(obj: Any) -> bool:
    """Whether ``obj`` is an instance of an SDK class (or of a subclass of one)."""
    cls = type(obj)
    known = _is_sdk_type.get(cls)
    if known is None:
        mro = type.__getattribute__(cls, "__mro__")  # past a metaclass's __getattribute__
        known = _is_sdk_type[cls] = any(is_sdk_class(base) for base in mro[:-1])
    return known


def sdk_dir() -> str:
    """The SDK's package directory with a trailing separator ("\\0" before it is imported:
    a prefix no path has)."""
    module = sys.modules.get(SDK_MODULE)
    path = getattr(module, "__file__", None)
    return os.path.join(os.path.dirname(os.path.abspath(path)), "") if path else "\0"


def is_sdk_code(filename: str) -> bool:
    """Whether a code object's file is one of the SDK's."""
    return bool(filename) and os.path.abspath(filename).startswith(sdk_dir())


def handle_type() -> Optional[type]:
    """``interop._Handle``, if the SDK is imported."""
    module = sys.modules.get(INTEROP_MODULE)
    return getattr(module, "_Handle", None) if module is not None else None


def event_signal_type() -> Optional[type]:
    """The SDK's ``EventSignal`` class, if the SDK is imported."""
    module = sys.modules.get(SPEECH_MODULE)
    return getattr(module, "EventSignal", None) if module is not None else None


def sdk_library() -> Any:
    """The SDK's ctypes library (``interop._sdk_lib``), if the SDK is imported."""
    interop = sys.modules.get(INTEROP_MODULE)
    return getattr(interop, "_sdk_lib", None) if interop is not None else None


def sdk_problem(sdk: Any = None) -> Optional[str]:
    """Why this SDK's internals are not what handletrace expects, or ``None`` if they are."""
    interop = sys.modules.get(INTEROP_MODULE)
    speech = sys.modules.get(SPEECH_MODULE)
    if interop is None or speech is None:
        return "its interop or speech module is missing"
    handle_cls = getattr(interop, "_Handle", None)
    if not isinstance(handle_cls, type):
        return "interop._Handle is missing"
    for attr in ("__init__", "__del__"):
        if attr not in handle_cls.__dict__:
            return f"interop._Handle.{attr} is missing"
    init = handle_cls.__dict__["__init__"]
    code = getattr(init, "__code__", None)
    if code is None or code.co_varnames[:4] != ("self", "handle", "test_fn", "release_fn"):
        return "interop._Handle.__init__ no longer takes (handle, test_fn, release_fn)"
    if getattr(interop, "_sdk_lib", None) is None:
        return "interop._sdk_lib is missing"
    future = getattr(speech, "ResultFuture", None)
    if not isinstance(future, type) or "__init__" not in future.__dict__:
        return "speech.ResultFuture is missing"
    return None


def sdk_version() -> str:
    """The installed SDK's version ("unknown" if it cannot be read)."""
    try:
        # Here, not at import: HANDLETRACE=1 start-up does not pay for importlib.metadata.
        from importlib.metadata import version

        return version(DISTRIBUTION)
    except Exception:
        return "unknown"
