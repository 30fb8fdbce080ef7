"""HANDLETRACE=1 at interpreter start: only the arming hook loads; tracking, analysis and
reports load when they are needed (the SDK's import, the API, the exit). Modules, not
timings: benchmarks/bench_startup.py measures the milliseconds and megabytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Set

from . import subprocesses

#: What HANDLETRACE=1 may load at start, over plain Python.
LIGHT = {
    "__future__",
    "atexit",
    "handletrace",
    "handletrace._boot",
    "handletrace._core",
    "handletrace._core.arming",
    "handletrace._version",
}
#: Modules that must wait for their use (issue #17: each costs milliseconds or megabytes).
HEAVY = (
    "wrapt",
    "asyncio",
    "typing",
    "dataclasses",
    "inspect",
    "importlib.metadata",
    "handletrace._env",
    "handletrace._instrument.install",
)
#: Loaded when the SDK arrives only if the program asks for a report or diagnosis.
REPORTING = (
    "handletrace._api",
    "handletrace._analysis",
    "handletrace._report",
    "handletrace.release",
    "handletrace.cli",
    "handletrace._frontend",
)

MODULES = "import sys, json\nprint(json.dumps(sorted(sys.modules)))\n"


def run(tmp_path: Path, env: Dict[str, str], script: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "program.py"
    path.write_text(script)
    return subprocesses.run_script(path, env)


def modules_after(tmp_path: Path, env: Dict[str, str], script: str = "") -> Set[str]:
    # json is imported by the listing itself, after the start-up being checked.
    result = run(tmp_path, env, script + MODULES)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_handletrace_1_on_an_empty_program_loads_only_the_arming_hook(tmp_path: Path) -> None:
    """HANDLETRACE=1 with no SDK import loads the arming hook and nothing else of weight."""
    plain = modules_after(tmp_path, {})
    armed = modules_after(tmp_path, {"HANDLETRACE": "1", "HANDLETRACE_REPORT": "none"})
    added = armed - plain
    assert added <= LIGHT, f"loaded at start: {sorted(added - LIGHT)}"
    assert not [name for name in HEAVY if name in armed], sorted(armed)


def test_unset_variable_loads_nothing_of_handletrace(tmp_path: Path) -> None:
    """Without HANDLETRACE the .pth line imports nothing."""
    loaded = modules_after(tmp_path, {})
    assert not [name for name in loaded if name.startswith("handletrace")], sorted(loaded)


SDK_PROGRAM = textwrap.dedent(
    """
    import azure.cognitiveservices.speech as speechsdk
    from handletrace._core.state import TRACKER

    config = speechsdk.SpeechConfig(subscription="FAKEKEY-STARTUP-01", region="westus")
    print(TRACKER.installed, TRACKER.patcher is not None, len(TRACKER.registry.live_table))
    print(type(speechsdk.__loader__).__name__, type(speechsdk.__spec__.loader).__name__)
    """
)


def test_sdk_import_activates_tracking_without_loading_reports(tmp_path: Path) -> None:
    """Importing the SDK under HANDLETRACE=1 patches it before the first object is made, loads
    no report or analysis module, and leaves the SDK its own loader."""
    env = {"HANDLETRACE": "1", "HANDLETRACE_REPORT": "none"}
    result = run(tmp_path, env, SDK_PROGRAM + MODULES)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "True True 2", result.stdout  # SpeechConfig + its PropertyCollection
    assert "Chained" not in lines[1], lines[1]
    loaded = json.loads(lines[-1])
    reporting = [m for m in loaded if m.startswith(REPORTING)]
    assert not reporting, reporting


def test_sdk_import_in_a_thread_activates_tracking(tmp_path: Path) -> None:
    """The SDK imported first on another thread is patched there, as on the main thread."""
    script = textwrap.dedent(
        """
        import threading
        from handletrace._core.state import TRACKER
        seen = []
        def work():
            import azure.cognitiveservices.speech as speechsdk
            config = speechsdk.SpeechConfig(subscription="FAKEKEY-STARTUP-02", region="westus")
            seen.append(len(TRACKER.registry.live_table))
        thread = threading.Thread(target=work)
        thread.start(); thread.join()
        print(TRACKER.installed, seen)
        """
    )
    result = run(tmp_path, {"HANDLETRACE": "1", "HANDLETRACE_REPORT": "none"}, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True [2]", result.stdout


def test_api_used_before_the_sdk_sees_tracking_on(tmp_path: Path) -> None:
    """handletrace.is_installed() before the SDK's import says True under HANDLETRACE=1, as
    when the activation ran at start."""
    script = "import handletrace\nprint(handletrace.is_installed())\n"
    result = run(tmp_path, {"HANDLETRACE": "1", "HANDLETRACE_REPORT": "none"}, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n", result.stdout


def test_empty_program_still_reports_at_exit(tmp_path: Path) -> None:
    """HANDLETRACE=1 on a program that never imports the SDK prints the at-exit report (no
    handle made), not silence."""
    result = run(tmp_path, {"HANDLETRACE": "1"}, "print('done')\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert result.stderr == "handletrace: no live native handles (created 0, released 0)\n", (
        result.stderr
    )


def test_invalid_value_warns_once_when_the_sdk_is_never_imported(tmp_path: Path) -> None:
    """A bad variable is still warned about (once) when the SDK never arrives to activate."""
    env = {"HANDLETRACE": "1", "HANDLETRACE_STACK_DEPTH": "lots"}
    result = run(tmp_path, env, "print('done')\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("HANDLETRACE_STACK_DEPTH='lots'") == 1, result.stderr
    assert "no live native handles" in result.stderr, result.stderr


def test_invalid_switch_warns_and_does_not_track(tmp_path: Path) -> None:
    """HANDLETRACE=maybe: one warning naming it, no tracking and no report."""
    result = run(tmp_path, {"HANDLETRACE": "maybe"}, SDK_PROGRAM)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "False False 0", result.stdout
    assert result.stderr.count("HANDLETRACE='maybe'") == 1, result.stderr
    assert "live native handles" not in result.stderr, result.stderr


def test_boot_names_the_sdk_package_and_variables_as_their_layers_do() -> None:
    """_boot waits for the package _sdk/modules.py calls the SDK and reads the report and
    metrics variables _env.py declares (each stated twice, to keep their modules out of
    start-up)."""
    script = (
        "import handletrace._boot as boot, handletrace._sdk.modules as modules\n"
        "import handletrace._env as env\n"
        "print(boot.SDK_MODULE == modules.SDK_MODULE, boot.ENV_REPORT == env.ENV_REPORT,\n"
        "      boot.ENV_METRICS == env.ENV_METRICS)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.stdout == "True True True\n", done.stdout + done.stderr


def test_public_names_all_resolve() -> None:
    """Every name in handletrace.__all__ resolves lazily to the object its module defines."""
    import handletrace

    missing: List[str] = [name for name in handletrace.__all__ if not hasattr(handletrace, name)]
    assert not missing, missing
    from handletrace._instrument.install import install

    assert handletrace.install is install


def test_pytest_plugin_import_loads_no_analysis_or_report_module() -> None:
    """pytest loads the plugin in every run: importing it loads no analysis, report or API
    module (they load when a checked test ends)."""
    script = (
        "import sys, json, pytest\n"
        "before = set(sys.modules)\n"
        "import handletrace.pytest_plugin\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    reporting = [m for m in loaded if m.startswith(REPORTING)]
    assert not reporting, reporting
