"""``handletrace demo``: the command; the demo itself (``cli/demo.py``) is imported only
when it runs, as it loads the local speech service and the example service."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import List, Optional

__all__ = ["DemoCommand", "demo_available"]

DEMO_MODULE = "handletrace.cli.demo"


def demo_available() -> bool:
    """Whether this build has the demo (``handletrace.cli.demo``)."""
    if sys.modules.get(DEMO_MODULE) is not None:
        return True
    try:
        return importlib.util.find_spec(DEMO_MODULE) is not None
    except (ImportError, ValueError):
        return False


class DemoCommand:
    """Show a recognizer leak and its fix, live, against the local speech service.

    handletrace demo [options]

    Needs no Azure account and no network: the demo runs its own local speech service.
    Every argument after "demo" is the demo's own (handletrace demo --help lists them).
    """

    name = "demo"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "demo_args", nargs=argparse.REMAINDER, help="options passed on to the demo"
        )

    def run(self, args: argparse.Namespace) -> int:
        return self.run_argv(list(args.demo_args))

    @staticmethod
    def run_argv(argv: Optional[List[str]]) -> int:
        demo = importlib.import_module(DEMO_MODULE)
        return int(demo.run_demo(argv))
