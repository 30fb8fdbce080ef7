"""Start-up cost of ``HANDLETRACE=1`` on an empty program, against plain Python.

Each arm starts a fresh interpreter on an empty program through the ``handletrace.pth``
file; rounds run the arms in rotated order; figures are medians over rounds, "added" the
median of the per-round differences against ``plain``:

- start-up: from spawn to the program's end (the time its last line ran), and the peak RSS
  then (``VmHWM``, read by the program itself);
- exit: from spawn to the process's end, and the peak RSS at exit (read by a finaliser that
  runs after the atexit hooks: the at-exit report included). Read in the child, not as the
  parent's ``ru_maxrss``, which on Linux starts from the spawning process's own peak.

Arms on the empty program: ``plain`` (``HANDLETRACE`` unset: the ``.pth`` line is one
environment lookup), ``armed`` (``HANDLETRACE=1 HANDLETRACE_REPORT=none``: tracking armed,
no report), ``armed+report`` (``HANDLETRACE=1``: the at-exit text report on stderr, which
says that no handle was made). Targets: ``armed`` ≤ 15 ms and ≤ 2 MB over ``plain`` (issue
#17). Arms on a program that only imports the SDK (where the activation runs): ``sdk``,
``sdk armed``, and ``sdk+wrapt`` (plain, then ``import wrapt``: wrapt's own cost, the floor).

The modules each arm loaded are listed too (``--modules``): what start-up pays for.

    python benchmarks/bench_startup.py [--rounds 41] [--json out.json] [--modules]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, rotated, write_json  # noqa: E402

TARGET_MS = 15.0
TARGET_MB = 2.0

#: The empty program: the time it reached its end and its peak RSS so far (start-up only),
#: then, from a finaliser that runs after the atexit hooks (the at-exit report included),
#: its peak RSS at exit.
PROGRAM = """\
{prelude}
import os, time
ENDED = time.time()
def peak(open=open, int=int):
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
print(ENDED, peak(), flush=True)
class AtExit:
    def __del__(self, peak=peak, write=os.write):
        write(1, b'%d\\n' % peak())
KEEP = AtExit()
"""
LIST_MODULES = "import sys; print('\\n'.join(sorted(sys.modules)))"

SDK = "import azure.cognitiveservices.speech"
OFF: Dict[str, str] = {}
ARMED = {"HANDLETRACE": "1", "HANDLETRACE_REPORT": "none"}

#: name -> (the program's first line, the environment, the arm it is compared with).
ARMS: Dict[str, Tuple[str, Dict[str, str], str]] = {
    "plain": ("pass", OFF, "plain"),
    "armed": ("pass", ARMED, "plain"),
    "armed+report": ("pass", {"HANDLETRACE": "1"}, "plain"),
    # Importing the SDK: the activation runs then (tracking modules, wrapt).
    "sdk": (SDK, OFF, "sdk"),
    "sdk+wrapt": (f"{SDK}; import wrapt", OFF, "sdk"),
    "sdk armed": (SDK, ARMED, "sdk"),
}


def environment(extra: Dict[str, str]) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    # Bytecode cached, as for an installed package (PYTHONDONTWRITEBYTECODE would compile the
    # editable checkout's modules at every start: a cost users do not pay).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def run_once(arm: str) -> Dict[str, float]:
    """One interpreter start: seconds to the program's end and to exit, peak RSS then."""
    prelude, extra, _ = ARMS[arm]
    env = environment(extra)
    spawned, started = time.time(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(prelude=prelude)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    ended, end_rss, exit_rss = done.stdout.split()
    return {
        "startup": float(ended) - spawned,
        "seconds": seconds,
        "end_rss": int(end_rss),
        "exit_rss": int(exit_rss),
    }


def modules(arm: str) -> List[str]:
    prelude, extra, _ = ARMS[arm]
    done = subprocess.run(
        [sys.executable, "-c", f"{prelude}\n{LIST_MODULES}"],
        env=environment(extra),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def run(rounds: int) -> Dict[str, Any]:
    names = list(ARMS)
    figures: Dict[str, List[Dict[str, float]]] = {name: [] for name in names}
    for name in names:  # warm the file cache and the .pyc files
        run_once(name)
    for index in range(rounds):
        for name in rotated(names, index):
            figures[name].append(run_once(name))

    def median(name: str, key: str) -> float:
        return statistics.median(f[key] for f in figures[name])

    def added(name: str, key: str) -> float:  # per round, against its baseline in that round
        base = figures[ARMS[name][2]]
        return statistics.median(a[key] - b[key] for a, b in zip(figures[name], base))

    arms = {}
    for name in names:
        arms[name] = {
            "startup_ms": median(name, "startup") * 1000,
            "added_startup_ms": added(name, "startup") * 1000,
            "wall_ms": median(name, "seconds") * 1000,
            "added_wall_ms": added(name, "seconds") * 1000,
            "end_rss_mb": median(name, "end_rss") / 2**20,
            "added_end_rss_mb": added(name, "end_rss") / 2**20,
            "exit_rss_mb": median(name, "exit_rss") / 2**20,
            "added_exit_rss_mb": added(name, "exit_rss") / 2**20,
            "baseline": ARMS[name][2],
            "modules_added": sorted(set(modules(name)) - set(modules(ARMS[name][2]))),
        }
    return {
        "machine": machine(),
        "rounds": rounds,
        "target_ms": TARGET_MS,
        "target_mb": TARGET_MB,
        "arms": arms,
    }


def format_table(data: Dict[str, Any], show_modules: bool = False) -> List[str]:
    lines = [
        f"Median of {data['rounds']} interpreter starts per arm; added: over the arm's "
        "baseline in the same round (`plain` for the empty program, `sdk` for a program that "
        "only imports the SDK). Start-up: spawn to the program's end; exit: spawn to the "
        "process's end (atexit hooks included).",
        "",
        "| arm | start-up | added | peak RSS at program end | added | exit | added "
        "| peak RSS at exit | added |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in data["arms"].items():
        mark_ms = mark_mb = ""
        if name == "armed":
            ok_ms = row["added_startup_ms"] <= data["target_ms"]
            ok_mb = row["added_end_rss_mb"] <= data["target_mb"]
            mark_ms = f" {'✓' if ok_ms else '✗'} (≤ {data['target_ms']:.0f} ms)"
            mark_mb = f" {'✓' if ok_mb else '✗'} (≤ {data['target_mb']:.0f} MB)"
        lines.append(
            f"| {name} | {row['startup_ms']:.1f} ms | {row['added_startup_ms']:+.1f} ms{mark_ms} "
            f"| {row['end_rss_mb']:.1f} MB | {row['added_end_rss_mb']:+.2f} MB{mark_mb} "
            f"| {row['wall_ms']:.1f} ms | {row['added_wall_ms']:+.1f} ms "
            f"| {row['exit_rss_mb']:.1f} MB | {row['added_exit_rss_mb']:+.2f} MB |"
        )
    armed = data["arms"]["armed"]["modules_added"]
    lines += ["", f"`armed` loads {len(armed)} modules more than `plain`: {', '.join(armed)}."]
    sdk_armed = data["arms"]["sdk armed"]["modules_added"]
    ours = [m for m in sdk_armed if m.startswith("handletrace")]
    wrapt = data["arms"]["sdk+wrapt"]
    lines += [
        "",
        f"At the SDK's import `HANDLETRACE=1` loads {len(sdk_armed)} modules: {len(ours)} of "
        f"handletrace's tracking (no report, analysis or API module), wrapt and what wrapt 2.x "
        f"imports (asyncio, importlib.metadata: `import wrapt` alone after the SDK adds "
        f"{wrapt['added_startup_ms']:+.0f} ms and {wrapt['added_end_rss_mb']:+.1f} MB, the "
        "floor while wrapt is the patching mechanism).",
    ]
    if show_modules:
        for name, row in data["arms"].items():
            if row["modules_added"] and name != "armed":
                lines += ["", f"{name}: " + ", ".join(row["modules_added"])]
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--modules", action="store_true", help="list the modules each arm adds")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    data = run(args.rounds)
    print("\n".join(format_table(data, args.modules)))
    write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
