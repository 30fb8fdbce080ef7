"""A service that handles "requests" the way the seed did: each request makes a
ConversationTranscriber whose callback closure captures the transcriber, so the native
recognizer is freed only if a cyclic garbage collection happens to run (offline: no network).

usage: python leaky_service.py [REQUESTS] [DELAY_SECONDS]
"""

import gc
import sys
import time

import azure.cognitiveservices.speech as speechsdk
from azure.cognitiveservices.speech import audio, transcription


def handle_request(segments):
    config = speechsdk.SpeechConfig(subscription="dummy-key", region="westus")
    stream = audio.PushAudioInputStream()
    transcriber = transcription.ConversationTranscriber(
        speech_config=config, audio_config=audio.AudioConfig(stream=stream)
    )

    def on_transcribed(evt):
        segments.append((transcriber, evt.result.text))  # captures its own transcriber

    transcriber.transcribed.connect(on_transcribed)
    stream.close()
    return len(segments)


def main(argv):
    requests = int(argv[0]) if argv else 40
    delay = float(argv[1]) if len(argv) > 1 else 0.01
    gc.disable()  # as in production: native memory never triggers a collection
    segments = []
    for _ in range(requests):
        handle_request(segments)
        time.sleep(delay)
    print(f"handled {requests} requests")


if __name__ == "__main__":
    main(sys.argv[1:])
