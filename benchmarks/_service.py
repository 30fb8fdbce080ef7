"""The local speech service in its own process, for benchmarks that must not share a GIL
(or a memory tracer) with it."""

from __future__ import annotations

import subprocess
import sys
from types import TracebackType
from typing import Optional, Type

from _common import ROOT


class ServiceProcess:
    """``python -m handletrace.testing`` on a free port; ``host`` once started."""

    def __init__(self) -> None:
        self.process: Optional[subprocess.Popen[str]] = None
        self.host = ""

    def __enter__(self) -> ServiceProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handletrace.testing"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("ws://"):
            self.process.kill()
            raise RuntimeError(f"the speech service did not start (printed {line!r})")
        self.host = line.split()[0]
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
