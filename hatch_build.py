"""Build hook: compile the optional C accelerator ``handletrace._speedups``.

handletrace works without it (``_patching._python_hooks`` does the same in Python, slower).
So a missing compiler, missing Python headers or a free-threaded interpreter (the hooks rely
on the GIL) give a warning and a pure-Python wheel, never a failed install.
``HANDLETRACE_NO_EXTENSIONS=1`` skips the compilation.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, Dict

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_ON = ("1", "true", "yes", "on")
SOURCE = "handletrace/_speedups.c"
MODULE = "handletrace._speedups"


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        if os.environ.get("HANDLETRACE_NO_EXTENSIONS", "").strip().lower() in _ON:
            self.app.display_info("handletrace: HANDLETRACE_NO_EXTENSIONS is set; pure Python")
            return
        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            self.app.display_info("handletrace: free-threaded Python; pure Python")
            return
        root = Path(self.root)
        try:
            built = self._compile(root)
        except Exception as exc:  # any failure: the pure-Python wheel still works
            self.app.display_warning(
                f"handletrace: the C accelerator was not built ({type(exc).__name__}: {exc}); "
                "installing the pure-Python version (slower per handle, same behaviour)"
            )
            return
        name = built.name
        if version == "editable":
            # An editable install imports from the source tree: the module goes beside
            # the sources (ignored by git).
            shutil.copy2(built, root / "handletrace" / name)
        else:
            build_data["force_include"][str(built)] = f"handletrace/{name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def _compile(self, root: Path) -> Path:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        self._directory = tempfile.mkdtemp(prefix="handletrace-build-")
        flags = [] if os.name == "nt" else ["-Wall"]
        extension = Extension(MODULE, [str(root / SOURCE)], extra_compile_args=flags)
        distribution = Distribution({"name": "handletrace", "ext_modules": [extension]})
        command = build_ext(distribution)
        command.build_lib = os.path.join(self._directory, "lib")
        command.build_temp = os.path.join(self._directory, "temp")
        command.ensure_finalized()
        command.run()
        return Path(command.get_ext_fullpath(MODULE))

    def finalize(self, version: str, build_data: Dict[str, Any], artifact_path: str) -> None:
        directory = getattr(self, "_directory", None)
        if directory:
            shutil.rmtree(directory, ignore_errors=True)
