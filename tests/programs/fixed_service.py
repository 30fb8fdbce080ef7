"""The same service with the fix: every event signal is disconnected when the request ends,
so the transcriber is freed by reference counting at once (offline: no network).

usage: python fixed_service.py [REQUESTS] [DELAY_SECONDS]
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
        segments.append((transcriber, evt.result.text))

    transcriber.transcribed.connect(on_transcribed)
    try:
        stream.close()
        return len(segments)
    finally:
        transcriber.transcribed.disconnect_all()  # breaks the cycle


def main(argv):
    requests = int(argv[0]) if argv else 40
    delay = float(argv[1]) if len(argv) > 1 else 0.01
    gc.disable()
    segments = []
    for _ in range(requests):
        handle_request(segments)
        time.sleep(delay)
    print(f"handled {requests} requests")


if __name__ == "__main__":
    main(sys.argv[1:])
