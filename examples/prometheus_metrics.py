"""Serve handletrace's handle metrics to Prometheus from a small transcription service.

    pip install "handletrace[otel]" opentelemetry-exporter-prometheus websockets
    python examples/prometheus_metrics.py               # leaks one transcriber per request
    python examples/prometheus_metrics.py --fixed       # disconnects its callbacks: stays flat
    curl -s localhost:9464/metrics | grep '^handletrace_'

Each request transcribes one second of audio with a ``ConversationTranscriber`` whose
``transcribed`` callback captures the transcriber: the reference cycle that keeps native
recognizers alive until a cyclic garbage collection. The Speech service is
``handletrace.testing.SpeechService``, a local stand-in for Azure, so no key or network is
needed. The automatic garbage collector is off, as in a service whose Python heap hardly
grows: native memory never triggers a collection.

The metrics go through OpenTelemetry's Prometheus exporter (a ``MeterProvider`` with a
``PrometheusMetricReader``; ``prometheus_client`` serves ``/metrics``). With the leak,
``handletrace_handles_live{handletrace_handle_kind="recognizer"}`` grows by one per
request; see docs/metrics.md for the alert that catches it.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
from pathlib import Path
from typing import Any, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import azure.cognitiveservices.speech as speechsdk  # noqa: E402
from azure.cognitiveservices.speech import transcription  # noqa: E402
from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from prometheus_client import start_http_server  # noqa: E402

import handletrace  # noqa: E402
import handletrace.metrics  # noqa: E402
from handletrace.testing import (  # noqa: E402
    Phrase,
    Script,
    SpeechService,
    push_stream_audio_config,
    silence_wav,
)


def serve_metrics(port: int) -> MeterProvider:
    """Track handles and serve their metrics at http://127.0.0.1:<port>/metrics."""
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    start_http_server(port, addr="127.0.0.1")
    handletrace.install()
    handletrace.metrics.enable(provider)
    return provider


def transcribe(host: str, wav: bytes, fixed: bool) -> List[str]:
    """One request: transcribe ``wav`` and return the phrases."""
    segments: List[str] = []
    done = threading.Event()
    audio = push_stream_audio_config(wav)
    transcriber = transcription.ConversationTranscriber(
        speech_config=speechsdk.SpeechConfig(host=host, subscription="not-a-key"),
        audio_config=audio.config,
    )

    def on_transcribed(evt: Any) -> None:
        # The leak: this closure refers to `transcriber`, whose signal holds this closure.
        if transcriber is not None and evt.result.text:
            segments.append(evt.result.text)

    transcriber.transcribed.connect(on_transcribed)
    transcriber.session_stopped.connect(lambda evt: done.set())
    transcriber.canceled.connect(lambda evt: done.set())
    transcriber.start_transcribing_async().get()
    audio.feed()
    done.wait(timeout=30)
    transcriber.stop_transcribing_async().get()
    if fixed:
        for signal in (transcriber.transcribed, transcriber.session_stopped, transcriber.canceled):
            signal.disconnect_all()
    return segments


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9464, help="metrics port (default 9464)")
    parser.add_argument("--requests", type=int, default=0, help="stop after N (0: run forever)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between requests")
    parser.add_argument("--fixed", action="store_true", help="disconnect callbacks after use")
    args = parser.parse_args(argv)

    gc.disable()
    serve_metrics(args.port)
    print(f"metrics: http://127.0.0.1:{args.port}/metrics", flush=True)
    wav = silence_wav(1.0)
    script = Script(phrases=(Phrase("hello from the example service"),))
    with SpeechService(script) as service:
        served = 0
        while args.requests == 0 or served < args.requests:
            phrases = transcribe(service.host, wav, args.fixed)
            served += 1
            live = handletrace.stats().kinds.get("recognizer")
            print(
                f"request {served}: {phrases!r}; live recognizers: {live.live if live else 0}",
                flush=True,
            )
            time.sleep(args.interval)
        # Release the leaked transcribers while the service still answers their disconnects.
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
