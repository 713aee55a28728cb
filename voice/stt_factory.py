"""The speech recognizer a session hears with, from the settings (``STT_ENGINE``)."""

from __future__ import annotations

from voice.moonshine import MoonshineRecognizer
from voice.recognizer import SpeechRecognizer
from voice.settings import Settings
from voice.transcribe import Transcriber, WhisperOptions


def recognizer_for(settings: Settings) -> SpeechRecognizer:
    """The engine ``settings.stt_engine`` names.  Cheap: the model behind it is loaded once per
    process, on its first :meth:`~voice.recognizer.SpeechRecognizer.load` (or ``warm``)."""
    if settings.stt_engine == "moonshine":
        return MoonshineRecognizer()
    return Transcriber(
        settings.whisper_model,
        settings.whisper_device,
        settings.whisper_compute_type,
        settings.whisper_language,
        options=WhisperOptions(window_margin_s=settings.whisper_window_margin_s),
    )


# The settings a recognizer is built from that a session may change (the rest are the process's).
RECOGNIZER_SETTINGS = ("stt_engine", "whisper_window_margin_s")


def same_recognizer(a: Settings, b: Settings) -> bool:
    """Whether sessions with settings ``a`` and ``b`` hear with the same recognizer."""
    return all(getattr(a, name) == getattr(b, name) for name in RECOGNIZER_SETTINGS)
