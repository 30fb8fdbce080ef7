"""The seed's leaky transcription service, driven for N requests (the peers' workload).

Each request makes a ConversationTranscriber whose ``transcribed`` callback is a closure that
captures the transcriber, transcribes one second of generated audio against the local
speech service, and returns. The closure cycle keeps every native recognizer alive, and the
cyclic GC is off, as it effectively is for native memory in production.

It imports only the SDK (not handletrace), so no tool's output is about the workload's
helpers.

    python benchmarks/leaky_workload.py ws://127.0.0.1:PORT [REQUESTS]
"""

import gc
import sys
import threading

import azure.cognitiveservices.speech as speechsdk
from azure.cognitiveservices.speech import audio

AUDIO = bytes(32000)  # one second of 16 kHz 16-bit mono silence


class TranscriptionService:
    """One ConversationTranscriber per request; segments collected through a closure."""

    def __init__(self, host):
        self.host = host

    def process_audio(self, pcm):
        segments = []
        stopped = threading.Event()
        stream = audio.PushAudioInputStream(audio.AudioStreamFormat(16000, 16, 1))
        transcriber = speechsdk.transcription.ConversationTranscriber(
            speech_config=speechsdk.SpeechConfig(host=self.host),
            audio_config=audio.AudioConfig(stream=stream),
        )

        def on_transcribed(evt):
            if transcriber is not None:  # the closure captures its own transcriber: a cycle
                segments.append(evt.result.text)

        transcriber.transcribed.connect(on_transcribed)
        transcriber.session_stopped.connect(lambda evt: stopped.set())
        transcriber.start_transcribing_async().get()
        stream.write(pcm)
        stream.close()
        stopped.wait(10)
        transcriber.stop_transcribing_async().get()
        return segments


def main(argv):
    host = argv[0]
    requests = int(argv[1]) if len(argv) > 1 else 100
    gc.disable()
    service = TranscriptionService(host)
    texts = [service.process_audio(AUDIO) for _ in range(requests)]
    print(f"{requests} requests, {sum(map(len, texts))} segments")


if __name__ == "__main__":
    main(sys.argv[1:])
