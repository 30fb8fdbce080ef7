"""install() and uninstall() called from several threads at once: one set of patches, exactly
reversible (two concurrent first calls must not stack two patchers)."""

from __future__ import annotations

import sys
import threading
from typing import Any, Dict, List

from azure.cognitiveservices.speech import interop, speech

import handletrace
from handletrace._core.state import TRACKER


def _patch_targets() -> Dict[str, Any]:
    lib = interop._sdk_lib
    return {
        "_Handle.__init__": interop._Handle.__dict__["__init__"],
        "_Handle.__del__": interop._Handle.__dict__["__del__"],
        "ResultFuture.__init__": speech.ResultFuture.__dict__["__init__"],
        "recognizer_handle_release": lib.recognizer_handle_release,
    }


def _all_at_once(action: Any, threads: int = 8) -> List[Any]:
    """``action()`` in ``threads`` threads released together, switching threads as often as
    the interpreter can (without a lock, two first installs then interleave most times)."""
    barrier = threading.Barrier(threads)
    results: List[Any] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait(timeout=30)
        result = action()
        with lock:
            results.append(result)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    return results


def test_concurrent_first_installs_patch_once() -> None:
    """Eight threads call install() together: exactly one starts tracking, and the SDK's
    methods are wrapped once (each wrapper's original is the SDK's own function)."""
    originals = _patch_targets()
    results = _all_at_once(handletrace.install)
    assert sorted(results) == [False] * 7 + [True], results
    patched = _patch_targets()
    for name, wrapper in patched.items():
        inner = getattr(wrapper, "__wrapped__", None)
        assert inner is originals[name], f"{name}: {wrapper!r} wraps {inner!r}"
    results = _all_at_once(handletrace.uninstall)
    assert sorted(results) == [False] * 7 + [True], results
    assert _patch_targets() == originals
    assert TRACKER.patcher is None
