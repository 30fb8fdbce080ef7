"""Run a command and print its wall time, peak RSS and exit code as JSON (last line).

    python benchmarks/_measure.py OUT.json -- command [args...]

Why a separate small process: on Linux a child's ``ru_maxrss`` starts from the peak RSS of
the process that spawned it (``exec`` keeps the high-water mark of the memory it replaces,
and ``vfork`` shares the parent's). Spawned from this small launcher, the figure is the
command's own; spawned from a benchmark that has grown, it would be the benchmark's.
"""

import json
import os
import subprocess
import sys
import time


def main(argv):
    out, separator, command = argv[0], argv[1], argv[2:]
    assert separator == "--" and command, __doc__
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    peak = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    with open(out, "w") as file:
        json.dump(
            {"seconds": seconds, "peak_rss": peak, "exit_code": os.waitstatus_to_exitcode(status)},
            file,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
