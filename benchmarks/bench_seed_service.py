"""The seed-shaped service (``seed_service.py``: 60 requests, automatic GC on, the leak
present) plain and under ``HANDLETRACE=1`` with its at-exit text report.

Arms, each in a fresh process against a fresh local speech service (its own process),
rotated from round to round:

- ``plain``:       ``python seed_service.py HOST 60``
- ``handletrace``: the same with ``HANDLETRACE=1``: tracking from interpreter start and the
  text report on stderr at exit (diagnosis included), as a user would first try it;
- ``tracking only``: ``HANDLETRACE=1 HANDLETRACE_REPORT=none`` (what the report adds is the
  difference).

Wall time and peak RSS (the child's ``ru_maxrss``, through the small ``_measure.py``
launcher) are ratios against ``plain`` in the same round; medians reported. Targets
(issue #17): ``handletrace`` ≤ 1.05× wall and ≤ 1.05× peak RSS. The check that matters as
much: the report must still name the leak (native recognizers), its creation line (read from
the service's source with ``ast``) and its cycle (the word and the ``on_transcribed``
callback), with the same patterns as ``bench_peers.py``; the script exits 1 if it does not.

    python benchmarks/bench_seed_service.py [--rounds 5] [--requests 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, rotated, write_json  # noqa: E402
from _service import ServiceProcess  # noqa: E402
from bench_peers import QUESTIONS, creation_site, findings, run_child  # noqa: E402

HERE = Path(__file__).resolve().parent
SERVICE = HERE / "seed_service.py"
TARGET = 1.05

# Bytecode cached, as for an installed package: an empty PYTHONDONTWRITEBYTECODE is unset
# (set, every run would compile the editable checkout's modules again).
CACHED = {"PYTHONDONTWRITEBYTECODE": ""}
ARMS: Dict[str, Dict[str, str]] = {
    "plain": {**CACHED},
    "handletrace": {**CACHED, "HANDLETRACE": "1"},
    "tracking only": {**CACHED, "HANDLETRACE": "1", "HANDLETRACE_REPORT": "none"},
}


def run(rounds: int, requests: int) -> Dict[str, Any]:
    line, callback = creation_site(SERVICE)
    runs: Dict[str, List[Dict[str, Any]]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(rounds):
            for arm in rotated(list(ARMS), index):
                workdir = Path(tmp) / f"{arm.replace(' ', '-')}-{index}"
                workdir.mkdir()
                with ServiceProcess() as service:
                    argv = [sys.executable, str(SERVICE), service.host, str(requests)]
                    outcome = run_child(argv, workdir, ARMS[arm])
                outcome["findings"] = findings(outcome["output"], SERVICE, line, callback)
                outcome["live_line"] = next(
                    (t for t in outcome["output"].splitlines() if "live native handle" in t), ""
                )
                del outcome["output"]
                runs[arm].append(outcome)
    arms: Dict[str, Any] = {}
    for arm in ARMS:
        mine, base = runs[arm], runs["plain"]
        arms[arm] = {
            "wall_ratio": statistics.median(
                r["seconds"] / b["seconds"] for r, b in zip(mine, base)
            ),
            "rss_ratio": statistics.median(
                r["peak_rss"] / b["peak_rss"] for r, b in zip(mine, base)
            ),
            "seconds": statistics.median(r["seconds"] for r in mine),
            "peak_rss": statistics.median(r["peak_rss"] for r in mine),
            "exit_codes": sorted({r["exit_code"] for r in mine}),
            # Every run's report must name the leak, not just one of them.
            "named_in_every_run": {
                key: all(r["findings"][key] is not None for r in mine) for key in QUESTIONS
            },
            "findings": mine[-1]["findings"],
            "live_line": mine[-1]["live_line"],
        }
    return {
        "machine": machine(),
        "rounds": rounds,
        "requests": requests,
        "creation_site": f"{SERVICE.name}:{line}",
        "callback": callback,
        "target": TARGET,
        "arms": arms,
    }


def report_ok(data: Dict[str, Any]) -> bool:
    """Whether every handletrace report named the leak, its line and its cycle."""
    return all(data["arms"]["handletrace"]["named_in_every_run"].values())


def format_table(data: Dict[str, Any]) -> List[str]:
    target = data["target"]
    lines = [
        f"Seed-shaped service (`seed_service.py`, {data['requests']} requests, automatic GC "
        f"on), median of {data['rounds']} rounds; ratios against `plain` in the same round:",
        "",
        "| arm | wall | wall ratio | peak RSS | peak RSS ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for arm, row in data["arms"].items():
        wall_mark = rss_mark = ""
        if arm == "handletrace":
            wall_mark = f" {'✓' if row['wall_ratio'] <= target else '✗'} (≤ {target:.2f})"
            rss_mark = f" {'✓' if row['rss_ratio'] <= target else '✗'} (≤ {target:.2f})"
        lines.append(
            f"| {arm} | {row['seconds']:.2f} s | {row['wall_ratio']:.3f}×{wall_mark} "
            f"| {row['peak_rss'] / 2**20:.1f} MB | {row['rss_ratio']:.3f}×{rss_mark} |"
        )
    row = data["arms"]["handletrace"]
    named = row["named_in_every_run"]
    words = {
        "native_recognizers_leaked": "the leaked native recognizers",
        "names_creation_line": f"the creation line ({data['creation_site']})",
        "explains_cycle": f"the cycle (through `{data['callback']}`)",
    }
    lines += [
        "",
        f"The at-exit report ({row['live_line'].strip() or 'no live handles'}) names, in every "
        "run: " + "; ".join(f"{words[k]} {'✓' if named[k] else '✗'}" for k in QUESTIONS) + ".",
    ]
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    data = run(args.rounds, args.requests)
    print("\n".join(format_table(data)))
    write_json(args.json, data)
    if not report_ok(data):
        print(
            "the handletrace report did not name the leak, its line and its cycle", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
