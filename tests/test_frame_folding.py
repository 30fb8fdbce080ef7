"""Creation stacks in text and HTML fold the standard library's frames (an asyncio service's
stacks begin with the event loop's runner frames); the JSON report keeps every frame."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from handletrace import Report
from handletrace._report.html import format_html
from handletrace._report.model import ReportFrame
from handletrace._report.text import FoldedFrames, fold_library_frames, format_text

from . import subprocesses

ASYNC_SERVICE = textwrap.dedent(
    """
    import asyncio
    import azure.cognitiveservices.speech as speechsdk

    CONFIGS = []

    async def handle_request():
        CONFIGS.append(speechsdk.SpeechConfig(subscription="FAKEKEY-FOLD-0001", region="westus"))

    async def serve():
        await asyncio.gather(handle_request(), handle_request())

    asyncio.run(serve())
    print("served")
    """
)


def asyncio_report(tmp_path: Path) -> Report:
    """The JSON report of a real asyncio program that made SDK objects in a handler."""
    program = tmp_path / "service.py"
    program.write_text(ASYNC_SERVICE)
    out = tmp_path / "report.json"
    result = subprocesses.run_script(program, {"HANDLETRACE": "1", "HANDLETRACE_REPORT": str(out)})
    assert result.returncode == 0, result.stderr
    return Report.from_dict(json.loads(out.read_text()))


def test_asyncio_runner_frames_fold_in_text_and_html_and_stay_in_json(tmp_path: Path) -> None:
    """An asyncio handler's creation stack: text and HTML show '... N asyncio frames' and the
    handler's frame; the JSON report has all N asyncio frames."""
    report = asyncio_report(tmp_path)
    frames = report.groups[0].traceback
    in_asyncio = [f for f in frames if f"asyncio{'/'}" in f.filename]
    assert len(in_asyncio) >= 4, [str(f) for f in frames]  # runners, base_events, events
    folded = f"... {len(in_asyncio)} asyncio frames"
    text = format_text(report)
    assert folded in text, text
    assert "in handle_request" in text, text
    assert "base_events.py" not in text, text
    page = format_html(report)
    assert folded in page, page
    assert "base_events.py" not in page
    assert frames[-1].name == "handle_request", [str(f) for f in frames]


def test_a_single_library_frame_and_the_creation_site_are_never_folded() -> None:
    """One standard-library frame alone stays as it is, and the last frame (where the handle
    was made) is shown even when it is the standard library's."""
    stdlib = str(Path(json.__file__).parent.parent)
    app = ReportFrame("/srv/app/service.py", 10, "handler")
    one = ReportFrame(f"{stdlib}/threading.py", 1000, "run")
    loop = [ReportFrame(f"{stdlib}/asyncio/events.py", 80 + i, "_run") for i in range(3)]
    last = ReportFrame(f"{stdlib}/asyncio/base_events.py", 600, "run_forever")
    assert fold_library_frames([one, app]) == (one, app)
    assert fold_library_frames([*loop, app, last]) == (FoldedFrames(3, "asyncio"), app, last)
    mixed = fold_library_frames([one, *loop, app])
    assert mixed == (FoldedFrames(4, "standard-library"), app), mixed
    assert str(mixed[0]) == "... 4 standard-library frames"
