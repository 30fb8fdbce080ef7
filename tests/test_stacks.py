"""Creation stacks: which frames are handletrace's machinery (trimmed from the top of a stack)
and which are user code, even when they ship in the handletrace package."""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any, Dict

import handletrace.cli.demo
import handletrace.testing
from handletrace._core import stacks
from handletrace._instrument import access, hooks, patcher


def test_machinery_files_are_the_package_modules() -> None:
    """Every module handletrace runs its instrumentation and reports with is machinery."""
    for module in (hooks, patcher, access, stacks, handletrace.cli.demo, handletrace):
        assert stacks.is_machinery(module.__file__), module.__file__


def test_the_local_speech_service_and_the_example_service_are_user_code() -> None:
    """USER_CODE ships in the package but uses the SDK as a program does: never trimmed."""
    testing_dir = os.path.dirname(handletrace.testing.__file__)
    testing_files = [
        os.path.join(testing_dir, name) for name in os.listdir(testing_dir) if name.endswith(".py")
    ]
    assert testing_files and not any(stacks.is_machinery(path) for path in testing_files)
    assert not stacks.is_machinery(os.path.join(stacks.PACKAGE_DIR, "_example_service.py"))
    assert stacks.USER_CODE == ("handletrace._example_service", "handletrace.testing")


def frame_in(filename: str) -> FrameType:
    """A frame of code compiled as if from ``filename``, called from this test's frame."""
    namespace: Dict[str, Any] = {"sys": sys}
    exec(compile("def here():\n    return sys._getframe()\n", filename, "exec"), namespace)
    return namespace["here"]()  # type: ignore[no-any-return]


def test_capture_trims_machinery_frames_and_keeps_user_code_in_the_package() -> None:
    """A stack starting in a machinery module starts at its caller; one starting in the
    example service's file starts there."""
    machinery = frame_in(hooks.__file__)
    user = frame_in(os.path.join(stacks.PACKAGE_DIR, "_example_service.py"))
    trimmed, kept = stacks.capture(2, machinery).origin, stacks.capture(2, user).origin
    assert trimmed is not None and (trimmed.filename, trimmed.name) == (__file__, "frame_in")
    assert kept is not None and (kept.filename, kept.name) == (user.f_code.co_filename, "here")
