"""A small transcription service of the seed's shape, with its leak, and automatic GC on.

Each request makes a ConversationTranscriber on a push stream and collects the transcribed
segments through an ``on_transcribed`` closure that captures the transcriber (to stop it
after ``MAX_SEGMENTS``): ConversationTranscriber -> EventSignal -> on_transcribed -> the
transcriber, the seed's cycle. Automatic garbage collection stays on, as in a service that
never touches ``gc``: the collector frees these cycles when its allocation counters say so,
not when native memory grows, so recognizers pile up between collections and some are
alive at exit.

It imports only the SDK (no handletrace), so what a tool reports is about this file.

    python benchmarks/seed_service.py ws://127.0.0.1:PORT [REQUESTS]
"""

import sys
import threading

import azure.cognitiveservices.speech as speechsdk
from azure.cognitiveservices.speech import audio

AUDIO = bytes(32000)  # one second of 16 kHz 16-bit mono silence
MAX_SEGMENTS = 100


class TranscriptionService:
    """One ConversationTranscriber per request; segments collected through a closure."""

    def __init__(self, host):
        self.host = host
        self.served = 0

    def config(self):
        config = speechsdk.SpeechConfig(host=self.host)
        config.set_property_by_name("SPEECH-Error-MaxRetryCount", "0")
        return config

    def process_audio(self, pcm):
        segments = []
        stopped = threading.Event()
        stream = audio.PushAudioInputStream(audio.AudioStreamFormat(16000, 16, 1))
        transcriber = speechsdk.transcription.ConversationTranscriber(
            speech_config=self.config(), audio_config=audio.AudioConfig(stream=stream)
        )

        def on_transcribed(evt):  # captures segments and its own transcriber: the cycle
            segments.append(evt.result.text)
            if len(segments) >= MAX_SEGMENTS:
                transcriber.stop_transcribing_async()

        transcriber.transcribed.connect(on_transcribed)
        transcriber.session_stopped.connect(lambda evt: stopped.set())
        transcriber.start_transcribing_async().get()
        stream.write(pcm)
        stream.close()
        stopped.wait(10)
        transcriber.stop_transcribing_async().get()
        self.served += 1
        return segments


def main(argv):
    host = argv[0]
    requests = int(argv[1]) if len(argv) > 1 else 60
    service = TranscriptionService(host)
    segments = sum(len(service.process_audio(AUDIO)) for _ in range(requests))
    print(f"{service.served} requests, {segments} segments")


if __name__ == "__main__":
    main(sys.argv[1:])
