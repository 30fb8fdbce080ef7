"""``handletrace run``: run a Python program with tracking from its first line, then report."""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import threading
import traceback
import types
from typing import Any, List, Optional, Sequence, Tuple

from .._core import arming
from .._core.config import format_for_path
from .common import (
    EXIT_LEAKS,
    REPORT_FORMATS,
    UsageError,
    exit_code,
    open_output,
    write_report,
)

__all__ = ["RunCommand"]


def _parse_kinds(value: str) -> List[str]:
    from .._sdk.kinds import unknown_kinds_message

    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise UsageError(f"--kinds: no handle kind given in {value!r}")
    problem = unknown_kinds_message(names)
    if problem is not None:
        raise UsageError(f"--kinds: {problem}")
    return names


class _Program:
    """The program to run, prepared like ``python script.py`` / ``python -m module`` would."""

    def __init__(self, target: str, module_mode: bool, args: Sequence[str]) -> None:
        self.target = target
        self.module_mode = module_mode
        self.args = list(args)
        self.code: Optional[types.CodeType] = None
        self.main_module = types.ModuleType("__main__")
        self.argv0 = target
        self.path0 = ""
        self.syntax_error: Optional[BaseException] = None
        self._saved_main: Optional[types.ModuleType] = None
        self._prepare()

    def _prepare(self) -> None:
        namespace = self.main_module.__dict__
        namespace["__builtins__"] = __builtins__
        if self.module_mode:
            # Like python -m: the current directory comes first on sys.path.
            self.path0 = os.getcwd()
            sys.path.insert(0, self.path0)
            try:
                spec = importlib.util.find_spec(self.target)
                if spec is not None and spec.submodule_search_locations is not None:
                    spec = importlib.util.find_spec(self.target + ".__main__")
                    if spec is None:
                        raise UsageError(
                            f"No module named {self.target}.__main__; '{self.target}' is a "
                            "package and cannot be directly executed"
                        )
            except (ImportError, ValueError) as exc:
                raise UsageError(f"cannot import {self.target}: {exc}") from None
            finally:
                sys.path.remove(self.path0)
            if spec is None or spec.loader is None:
                raise UsageError(f"No module named {self.target}")
            get_code = getattr(spec.loader, "get_code", None)
            code = get_code(spec.name) if get_code is not None else None
            if code is None:
                raise UsageError(f"cannot run {self.target}: its loader gives no code")
            self.code = code
            self.argv0 = spec.origin or self.target
            namespace.update(
                __file__=spec.origin,
                __spec__=spec,
                __loader__=spec.loader,
                __package__=spec.parent,
                __cached__=getattr(spec, "cached", None),
            )
            return
        path = self.target
        if os.path.isdir(path) or not os.path.exists(path):
            if not os.path.exists(path):
                raise UsageError(f"can't open file {os.path.abspath(path)!r}: no such file")
            raise UsageError(f"{path} is a directory; give the script inside it")
        try:
            with open(path, "rb") as source:
                data = source.read()
            self.code = compile(data, path, "exec", dont_inherit=True)
        except OSError as exc:
            raise UsageError(f"can't open file {path!r}: {exc.strerror or exc}") from None
        except (SyntaxError, ValueError) as exc:
            # As python does: the program "ran" and failed with a SyntaxError.
            self.code = None
            self.syntax_error = exc
        self.path0 = os.path.dirname(os.path.abspath(path))
        namespace.update(
            __file__=path, __spec__=None, __loader__=None, __package__=None, __cached__=None
        )

    def run(self) -> int:
        """Run the program; its exit code (exceptions are printed like python prints them)."""
        self._saved_main = sys.modules.get("__main__")
        saved_argv = sys.argv
        saved_path0 = sys.path[0] if sys.path else None
        sys.argv = [self.argv0, *self.args]
        if sys.path:
            sys.path[0] = self.path0
        else:
            sys.path.append(self.path0)
        sys.modules["__main__"] = self.main_module
        try:
            if self.code is None:
                raise self.syntax_error or RuntimeError("no code to run")
            exec(self.code, self.main_module.__dict__)
            return 0
        except SystemExit as exc:
            return exit_code(exc.code)
        except KeyboardInterrupt:
            _print_exception(*sys.exc_info())
            return 130
        except BaseException:
            _print_exception(*sys.exc_info())
            return 1
        finally:
            # __main__ stays the program's module until the report is written: its globals
            # are alive at exit as they would be under python.
            sys.argv = saved_argv
            if saved_path0 is not None:
                sys.path[0] = saved_path0

    def restore(self) -> None:
        """Put back the ``__main__`` module that was there before :meth:`run`."""
        saved = self._saved_main
        if saved is not None:
            sys.modules["__main__"] = saved


def _machinery_dirs() -> Tuple[str, ...]:
    """Where the frames that start the program come from (trimmed from creation stacks)."""
    import runpy

    from .._frontend import module_dir

    dirs = [module_dir(_machinery_dirs), os.path.abspath(runpy.__file__), "<frozen runpy>"]
    if sys.argv and sys.argv[0]:
        dirs.append(os.path.abspath(sys.argv[0]))  # the console script
    return tuple(dirs)


def _print_exception(etype: Any, value: Any, tb: Any) -> None:
    """Print like python's top level: without this module's frames, through sys.excepthook."""
    here = os.path.abspath(__file__)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == here:
        tb = tb.tb_next
    if isinstance(value, BaseException):
        value.__traceback__ = tb  # some Pythons print value.__traceback__, not tb
    try:
        sys.stdout.flush()
    except Exception:
        pass
    try:
        sys.excepthook(etype, value, tb)
    except Exception:
        traceback.print_exception(etype, value, tb)


def _wait_for_threads(exclude: Sequence[Optional[threading.Thread]]) -> None:
    """Join the program's non-daemon threads, as the interpreter does before exiting."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is current or thread in exclude or thread.daemon:
            continue
        try:
            thread.join()
        except RuntimeError:
            pass


USAGE = """handletrace run [options] script.py [args...]
       handletrace run [options] -m module [args...]"""


class RunCommand:
    """Run a Python program with native-handle tracking from its first line, then report.

    The program runs in this interpreter as python would run it (sys.argv, sys.path[0],
    __main__). When its code returns or raises SystemExit, handletrace waits for its
    non-daemon threads and writes the report of the native handles still alive, before
    the program's atexit handlers run. It then runs gc.collect() once and notes which of
    those handles were cyclic garbage and which are still reachable.

    The HANDLETRACE_* environment variables apply (stack depth, sampling, kinds, report,
    report format, stale-after, metrics); an option given here wins over its variable.

    Exit code: the program's own (an uncaught exception prints its traceback and gives 1,
    KeyboardInterrupt 130). With --fail-on-leak: 3 if handles were alive at the report and
    the program exited 0.
    """

    name = "run"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        # The two forms as the usage line (above this docstring in --help), not every option.
        parser.usage = USAGE
        parser.add_argument(
            "-m",
            dest="module_mode",
            action="store_true",
            help="run a library module as a script (like python -m)",
        )
        parser.add_argument(
            "--report",
            metavar="DEST",
            default=None,
            help="where the report goes: stderr, stdout, none, or a file path (default: "
            "HANDLETRACE_REPORT, else stderr)",
        )
        parser.add_argument(
            "--format",
            choices=REPORT_FORMATS,
            default=None,
            help="report format (default: from the report file's extension .json/.html, else text)",
        )
        parser.add_argument(
            "--fail-on-leak",
            action="store_true",
            help=f"exit {EXIT_LEAKS} when native handles are alive at the report (for CI)",
        )
        parser.add_argument(
            "--timeline",
            metavar="DEST",
            default=None,
            help="sample live handles per kind and RSS while the program runs, and write the "
            "chart: a .svg, .html, .json or .txt path, or stderr/stdout for a terminal chart",
        )
        parser.add_argument(
            "--interval",
            metavar="MS",
            type=float,
            default=100.0,
            help="timeline sampling interval in milliseconds (default 100)",
        )
        parser.add_argument(
            "--stack-depth",
            metavar="N",
            type=int,
            default=None,
            help="frames kept per creation stack (0-256; default HANDLETRACE_STACK_DEPTH, else 16)",
        )
        parser.add_argument(
            "--stack-sample",
            metavar="N",
            type=int,
            default=None,
            help="capture a creation stack for every handle (1), one in N, or none (0) "
            "(default HANDLETRACE_STACK_SAMPLE, else 1)",
        )
        parser.add_argument(
            "--kinds",
            metavar="KINDS",
            default=None,
            help="only track these comma-separated handle kinds, e.g. recognizer,property_bag "
            "(default HANDLETRACE_KINDS, else all)",
        )
        parser.add_argument(
            "target", metavar="script.py | module", nargs="?", help="the program to run"
        )
        parser.add_argument(
            "args", nargs=argparse.REMAINDER, help="arguments passed on to the program"
        )

    def run(self, args: argparse.Namespace) -> int:
        from .. import _api
        from .._env import enable_metrics, read_settings
        from .._frontend import collect_and_split, trim_frames
        from .._instrument.install import install, is_installed, uninstall

        if args.target is None:
            sys.stderr.write(f"usage: {USAGE}\n")
            what = "module" if args.module_mode else "program"
            raise UsageError(f"no {what} to run (handletrace run --help lists the options)")
        env = read_settings()
        destination, fmt = self._report_destination(args, env)
        if not 0.001 <= args.interval / 1000.0 <= 3600:
            raise UsageError(f"--interval must be from 1 to 3600000 ms; got {args.interval:g}")
        kinds = _parse_kinds(args.kinds) if args.kinds is not None else None
        program = _Program(args.target, args.module_mode, args.args)
        self._take_over_env_activation()
        was_installed = is_installed()
        gc_was_enabled = gc.isenabled()
        try:
            # The options left out (None) come from the environment, in install().
            install(stack_depth=args.stack_depth, stack_sample=args.stack_sample, kinds=kinds)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        metrics_started = env.metrics == "otel" and enable_metrics()
        sampler = None
        if args.timeline is not None:
            from .._report.timeline import Sampler

            label = os.path.basename(args.target) if not args.module_mode else args.target
            sampler = Sampler(args.interval / 1000.0, label=label).start()
        code = 0
        try:
            code = program.run()
            _wait_for_threads([sampler.thread if sampler is not None else None])
            timeline = sampler.stop() if sampler is not None else None
            self._flush()
            snap = _api.snapshot()
            report = trim_frames(
                _api.build_report(snap, stale_after=env.stale_after), _machinery_dirs()
            )
            seqs = [record.seq for record in snap.records]
            del snap
            if seqs:
                report, _ = collect_and_split(report, seqs)
            if destination != "none":
                write_report(report, destination, fmt)
            if timeline is not None:
                self._write_timeline(timeline, args.timeline)
        finally:
            if sampler is not None:
                sampler.stop()
            program.restore()
            if gc_was_enabled:  # the program may have turned it off (matters in-process only)
                gc.enable()
            if metrics_started:
                from ..metrics import disable

                disable()
            if not was_installed:
                uninstall()
        leaked = args.fail_on_leak and code == 0 and report.live > 0
        self._say_where(report, destination, leaked)
        return EXIT_LEAKS if leaked else code

    @staticmethod
    def _report_destination(args: argparse.Namespace, env: Any) -> Tuple[str, str]:
        """(destination, format): --report and --format win over HANDLETRACE_REPORT and
        HANDLETRACE_REPORT_FORMAT. The pair goes together: with --report, the format comes
        from --format or the file's extension, never from the environment."""
        if args.report is not None:
            destination = args.report
            env_format = None
        else:
            destination, env_format = env.report, env.report_format
        if destination.lower() in ("stderr", "stdout", "none"):
            destination = destination.lower()
        elif destination == "-":
            destination = "stdout"
        fmt = args.format or env_format
        if fmt is None:
            path = destination if destination not in ("stderr", "stdout", "none") else None
            fmt = format_for_path(path, (*REPORT_FORMATS, "svg"))
        if fmt == "svg":
            raise UsageError("--report cannot be an .svg file; use .json, .html or a text file")
        return destination, fmt

    @staticmethod
    def _take_over_env_activation() -> None:
        """Under HANDLETRACE=1 tracking started with the interpreter: this run's report
        replaces the at-exit one, and its options replace the ones in force."""
        from .._core.state import TRACKER
        from .._instrument.install import uninstall

        arming.disarm()  # armed at start, not yet activated: nothing to take over
        hook = TRACKER.at_exit
        if hook is None:
            return
        import atexit

        atexit.unregister(hook)
        TRACKER.at_exit = None
        uninstall()

    @staticmethod
    def _say_where(report: Any, destination: str, leaked: bool) -> None:
        """One line on stderr when the report is not there itself: where it went (a file),
        and why the exit code is 3 (--fail-on-leak) when it went to stdout or nowhere."""
        from .._report.text import summary_line  # here: `handletrace --help` loads no report code

        to_file = destination not in ("stderr", "stdout", "none")
        if not to_file and not (leaked and destination != "stderr"):
            return
        if destination == "stdout":
            where = "report on stdout"
        elif destination == "none":
            where = "no report written (--report none)"
        else:
            where = f"report written to {destination}"
        exit_note = f"; exit {EXIT_LEAKS} (--fail-on-leak)" if leaked else ""
        sys.stderr.write(summary_line(report, where + exit_note) + "\n")

    @staticmethod
    def _flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass

    @staticmethod
    def _write_timeline(timeline: Any, destination: str) -> None:
        """Write the timeline; a file gets one line on stderr saying where (as the demo)."""
        from .._report.terminal import Style
        from .._report.timeline import format_for_path, render_timeline

        if destination in ("stderr", "stdout", "-"):
            stream = sys.stderr if destination == "stderr" else sys.stdout
            render_timeline(timeline, stream, "text", style=Style.for_stream(stream))
            return
        fmt = format_for_path(destination)
        stream, close = open_output(destination)
        try:
            render_timeline(timeline, stream, fmt)
        finally:
            if close:
                stream.close()
        sys.stderr.write(f"handletrace: timeline ({fmt}) written to {destination}\n")
