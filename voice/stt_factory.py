"""The speech recognizer a session hears with, from the settings (``STT_ENGINE``)."""

from __future__ import annotations

from voice.moonshine import MoonshineRecognizer
from voice.recognizer import SpeechRecognizer
from voice.settings import Settings
from voice.transcribe import Transcriber


def recognizer_for(settings: Settings) -> SpeechRecognizer:
    """The engine ``settings.stt_engine`` names.  Cheap: the model behind it is loaded once per
    process, on its first :meth:`~voice.recognizer.SpeechRecognizer.load` (or ``warm``)."""
    if settings.stt_engine == "moonshine":
        return MoonshineRecognizer()
    return Transcriber(
        settings.whisper_model, settings.whisper_device, settings.whisper_compute_type, settings.whisper_language
    )
