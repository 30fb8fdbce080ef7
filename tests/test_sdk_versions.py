"""SDK versions: handletrace's expectations hold, and tracking works, on older SDK releases.

``.ci/run`` creates one virtual environment per older ``azure-cognitiveservices-speech``
release (``.ci/venvs/sdk-X.Y.Z``: the SDK, wrapt, websockets and the handletrace wheel) and lists
their interpreters in ``HANDLETRACE_SDK_PYTHONS``. Each test here runs one compact scenario
script in such an interpreter (where .ci/run installed the same handletrace wheel) and in this
one (the newest SDK), and checks what it printed. The releases CI uses span two years:

    1.41.1  2024-10 (interop._Handle and ResultFuture as in 1.53; intent handles still there)
    1.47.0  2025-11
    1.53.0  2026-10 (the installed one)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".ci" / "venvs"
ENV_PYTHONS = "HANDLETRACE_SDK_PYTHONS"
#: What CI must provide: older releases, and the oldest at least this old.
OLDEST_EXPECTED = (1, 41)

SCENARIO = textwrap.dedent(
    """
    import gc, io, json, sys, warnings
    from importlib.metadata import version

    warnings.simplefilter("error")  # install() must not warn on a supported SDK
    import azure.cognitiveservices.speech as speechsdk
    from azure.cognitiveservices.speech import audio, interop, speech, transcription

    import handletrace
    from handletrace._sdk.modules import sdk_problem
    from handletrace._report.model import Report

    out = {"sdk": version("azure-cognitiveservices-speech"), "problem": sdk_problem(speechsdk)}
    def patch_targets():
        handle, future = interop._Handle.__dict__, speech.ResultFuture.__dict__
        return (handle["__init__"], handle["__del__"], future["__init__"],
                interop._sdk_lib.recognizer_handle_release)
    originals = patch_targets()
    out["installed"] = handletrace.install()
    gc.disable()

    def config():
        return speechsdk.SpeechConfig(subscription="not-a-key", region="westus")

    def push():
        return audio.AudioConfig(stream=audio.PushAudioInputStream())

    def made_by(build):
        marker = handletrace.snapshot().records[-1].seq if handletrace.snapshot().records else 0
        obj = build()
        rows = [(r.kind, r.owner_label) for r in handletrace.snapshot().filter(since=marker)]
        return obj, rows

    kept = []
    for name, build in [
        ("speech_config", config),
        ("recognizer", lambda: speechsdk.SpeechRecognizer(config(), audio_config=push())),
        ("transcriber", lambda: transcription.ConversationTranscriber(config(), push())),
        ("synthesizer", lambda: speechsdk.SpeechSynthesizer(config(), audio_config=None)),
    ]:
        obj, rows = made_by(build)
        kept.append(obj)
        out[name] = sorted(set(rows))
    del kept
    out["released_by_del"] = handletrace.stats().released_by_cause["del"]

    segments = []
    def leak():
        t = transcription.ConversationTranscriber(speech_config=config(), audio_config=push())
        t.transcribed.connect(lambda evt: segments.append((t, evt)))
    leak()
    live = handletrace.snapshot().filter(kinds=["recognizer"])
    out["leak_origin"] = [r.traceback.origin.name for r in live]
    gc.collect()
    out["leak_after_gc"] = len(handletrace.snapshot().filter(kinds=["recognizer"]))
    out["released_by_gc"] = handletrace.stats().released_by_cause["gc"]

    unreachable = speechsdk.SpeechConfig(host="ws://127.0.0.1:9", subscription="dummy")
    unreachable.set_property_by_name("SPEECH-Error-MaxRetryCount", "0")
    recognizer = speechsdk.SpeechRecognizer(speech_config=unreachable, audio_config=push())
    future = recognizer.recognize_once_async()
    pending = handletrace.snapshot().filter(kinds=["recognizer_async"])
    out["future"] = [(r.kind, r.owner_label) for r in pending]
    future.get()
    out["released_direct"] = handletrace.stats().released_by_cause["direct"]
    del future, recognizer

    def leak_again():
        t = transcription.ConversationTranscriber(speech_config=config(), audio_config=push())
        t.transcribed.connect(lambda evt: segments.append((t, evt)))
        return t
    result = handletrace.dispose(leak_again())
    out["dispose"] = [list(result.released), list(result.disconnected), list(result.errors)]

    keep = transcription.ConversationTranscriber(speech_config=config(), audio_config=push())
    text, data = io.StringIO(), io.StringIO()
    handletrace.report(text)
    handletrace.report(data, "json")
    report = Report.from_dict(json.loads(data.getvalue()))
    out["report_kinds"] = sorted({entry[0] for g in report.groups for entry in g.kinds})
    out["text_mentions_owner"] = "ConversationTranscriber" in text.getvalue()
    del keep

    service_text = None
    try:
        from handletrace.testing import SpeechService, push_stream_audio_config, silence_wav
    except ImportError:
        pass
    else:
        with SpeechService() as service:
            feed = push_stream_audio_config(silence_wav(1.0))
            session = speechsdk.SpeechRecognizer(
                speechsdk.SpeechConfig(host=service.host), audio_config=feed.config)
            feed.feed_when_connected(session)
            service_text = session.recognize_once().text
            del session, feed
    out["service_text"] = service_text

    out["errors"] = handletrace.stats().instrumentation_errors
    out["uninstalled"] = handletrace.uninstall()
    out["restored"] = all(a is b for a, b in zip(patch_targets(), originals))
    print(json.dumps(out))
    """
)


def older_pythons() -> List[str]:
    """Interpreters of the older-SDK environments (from .ci/run, or found in .ci/venvs)."""
    listed = os.environ.get(ENV_PYTHONS, "").split(os.pathsep)
    found = [str(p) for p in sorted(VENVS.glob("sdk-*/bin/python"))]
    return sorted({p for p in listed + found if p and Path(p).exists()})


def run_scenario(python: str, tmp_path: Path) -> Dict[str, Any]:
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    result = subprocess.run(
        [python, str(script)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def version_tuple(text: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


PYTHONS = [sys.executable, *older_pythons()]


@pytest.mark.slow
@pytest.mark.parametrize("python", PYTHONS, ids=lambda p: Path(p).parents[1].name)
def test_tracking_works_on_this_sdk_release(python: str, tmp_path: Path) -> None:
    """The scenario's handles are tracked, released and reported as on the newest SDK."""
    out = run_scenario(python, tmp_path)
    print(f"\nazure-cognitiveservices-speech {out['sdk']}: {python}")
    assert out["problem"] is None
    assert out["installed"] is True
    assert out["speech_config"] == [
        ["property_bag", "PropertyCollection of SpeechConfig"],
        ["speech_config", "SpeechConfig"],
    ]
    assert ["recognizer", "SpeechRecognizer"] in out["recognizer"]
    assert ["property_bag", "PropertyCollection of SpeechRecognizer"] in out["recognizer"]
    assert ["recognizer", "ConversationTranscriber"] in out["transcriber"]
    assert ["synthesizer", "SpeechSynthesizer"] in out["synthesizer"]
    assert out["released_by_del"] > 0
    assert out["leak_origin"] == ["leak"]
    assert out["leak_after_gc"] == 0
    assert out["released_by_gc"] == 2
    assert out["future"] == [["recognizer_async", "ResultFuture of SpeechRecognizer"]]
    assert out["released_direct"] == 1
    assert out["dispose"] == [["recognizer", "property_bag"], ["transcribed"], []]
    assert {"recognizer", "property_bag"} <= set(out["report_kinds"])
    assert out["text_mentions_owner"] is True
    assert out["service_text"] == "hello world"  # a real session against the local service
    assert out["errors"] == 0
    assert out["uninstalled"] is True
    assert out["restored"] is True


def test_ci_provides_older_sdk_releases_two_years_back() -> None:
    """Under .ci/run, at least two older releases are there, the oldest 1.41 or older."""
    if ENV_PYTHONS not in os.environ:
        pytest.skip(f"{ENV_PYTHONS} is set by .ci/run, which creates the older-SDK venvs")
    versions = []
    for python in older_pythons():
        code = "import importlib.metadata as m; print(m.version('azure-cognitiveservices-speech'))"
        result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
        versions.append(version_tuple(result.stdout.strip()))
    assert len(versions) >= 2, versions
    assert min(versions)[:2] <= OLDEST_EXPECTED
