"""Running a script in a fresh interpreter, as a user would, for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict


def run_script(path: Path, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``path`` with this Python in its own directory; HANDLETRACE* come only from ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=path.parent,
        timeout=120,
    )
