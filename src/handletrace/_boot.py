"""Imported by ``handletrace.pth`` at interpreter start when ``HANDLETRACE`` is set."""

from __future__ import annotations


def _boot() -> None:
    try:
        from ._env import activate_from_env

        activate_from_env()
    except Exception as exc:  # a broken tracer must never stop the interpreter from starting
        import sys

        sys.stderr.write(f"handletrace: not activated ({type(exc).__name__}: {exc})\n")


_boot()
