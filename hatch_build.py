"""Build hook: compile the optional C accelerator ``handletrace._instrument._speedups``.

handletrace works without it (``_instrument.hooks.python_hooks`` does the same in Python,
slower).
So a missing compiler, missing Python headers or a free-threaded interpreter (the hooks rely
on the GIL) give a warning and a pure-Python wheel, never a failed install.
``HANDLETRACE_NO_EXTENSIONS=1`` skips the compilation.

Run as a script (``python hatch_build.py``), it compiles the extension into the source tree,
for running the tests from a checkout (``import handletrace`` finds the sources first there).
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script, outside a build environment
    BuildHookInterface = object  # type: ignore[assignment,misc]

_ON = ("1", "true", "yes", "on")
SOURCE = "src/handletrace/_instrument/_speedups.c"
MODULE = "handletrace._instrument._speedups"


def compile_extension(root: Path, directory: str) -> Path:
    """Compile ``SOURCE`` under ``directory``; the path of the built module."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    flags = [] if os.name == "nt" else ["-Wall"]
    extension = Extension(MODULE, [str(root / SOURCE)], extra_compile_args=flags)
    distribution = Distribution({"name": "handletrace", "ext_modules": [extension]})
    command = build_ext(distribution)
    command.build_lib = os.path.join(directory, "lib")
    command.build_temp = os.path.join(directory, "temp")
    command.ensure_finalized()
    command.run()
    return Path(command.get_ext_fullpath(MODULE))


def skip_reason() -> Optional[str]:
    if os.environ.get("HANDLETRACE_NO_EXTENSIONS", "").strip().lower() in _ON:
        return "HANDLETRACE_NO_EXTENSIONS is set"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "free-threaded Python (the C hooks rely on the GIL)"
    return None


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        reason = skip_reason()
        if reason is not None:
            self.app.display_info(f"handletrace: {reason}; pure-Python hooks only")
            return
        root = Path(self.root)
        self._directory = tempfile.mkdtemp(prefix="handletrace-build-")
        try:
            built = compile_extension(root, self._directory)
        except Exception as exc:  # any failure: the pure-Python wheel still works
            self.app.display_warning(
                f"handletrace: the C accelerator was not built ({type(exc).__name__}: {exc}); "
                "installing the pure-Python version (slower per handle, same behaviour)"
            )
            return
        if version == "editable":
            # An editable install imports from the source tree: the module goes beside
            # the sources (ignored by git).
            shutil.copy2(built, root / "src" / "handletrace" / "_instrument" / built.name)
        else:
            build_data["force_include"][str(built)] = f"handletrace/_instrument/{built.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: Dict[str, Any], artifact_path: str) -> None:
        directory = getattr(self, "_directory", None)
        if directory:
            shutil.rmtree(directory, ignore_errors=True)


def build_in_place() -> int:
    root = Path(__file__).resolve().parent
    reason = skip_reason()
    if reason is not None:
        print(f"handletrace: {reason}; nothing built")
        return 0
    directory = tempfile.mkdtemp(prefix="handletrace-build-")
    try:
        built = compile_extension(root, directory)
        target = root / "src" / "handletrace" / "_instrument" / built.name
        shutil.copy2(built, target)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"built {target.relative_to(root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(build_in_place())
