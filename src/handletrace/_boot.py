"""Imported by ``handletrace.pth`` at interpreter start when ``HANDLETRACE`` is set.

It only arms (``_core/arming.py``): the activation (the variables read and validated,
``install()``, the at-exit report) runs when the SDK is imported, when handletrace's API is
first used, when a front end starts, or at exit, whichever comes first. So an interpreter
that never imports the SDK loads nothing of handletrace's tracking, analysis or reports at
start (``benchmarks/bench_startup.py``: the cost over plain Python).
"""

from __future__ import annotations

import os
import sys

from ._core import arming

#: The SDK's package, as ``_sdk/modules.SDK_MODULE`` states it (a test checks they agree):
#: imported from there, it would load ``typing`` at every interpreter start.
SDK_MODULE = "azure.cognitiveservices.speech"
#: ``_env.ENV_REPORT`` and ``_env.ENV_METRICS``, read here for the same reason (a test
#: checks they agree).
ENV_REPORT = "HANDLETRACE_REPORT"
ENV_METRICS = "HANDLETRACE_METRICS"


def _activate(at_exit: bool) -> None:
    if at_exit and os.environ.get(ENV_REPORT, "").strip().lower() == "none":
        # The SDK never arrived, so no handle was made, and no report is to be written: the
        # exit loads nothing either (the variables had nothing to apply to).
        return
    try:
        from ._env import activate_from_env, report_from_env_at_exit

        if at_exit:  # the SDK was never imported: validate, then the (empty) report
            report_from_env_at_exit()
        else:
            activate_from_env()
    except Exception as exc:  # a broken tracer must never stop the program
        sys.stderr.write(f"handletrace: not activated ({type(exc).__name__}: {exc})\n")


def _boot() -> None:
    try:
        arming.arm(SDK_MODULE, _activate)
        if os.environ.get(ENV_METRICS, "").strip():
            # Metrics asked for: activate now, as opentelemetry-instrument expects (the
            # instruments exist before its sitecustomize sets the meter provider). Those
            # programs load OpenTelemetry at start anyway.
            arming.complete()
    except Exception as exc:  # a broken tracer must never stop the interpreter from starting
        sys.stderr.write(f"handletrace: not activated ({type(exc).__name__}: {exc})\n")


_boot()
