"""Text-to-speech: one interface (:class:`TTSEngine`), two engines, fallback between them.

* :class:`PiperTTS` (``piper.py``): offline, the bundled ``en_US-joe-medium`` voice.
* :class:`EdgeTTS` (``edge.py``): Microsoft's neural voices through ``edge-tts``, over a
  warm connection (``edge_transport.py``, ``edge_protocol.py``), MP3 decoded as it streams
  (``mp3_decoder.py``), behind a :class:`CircuitBreaker`.
* :func:`make_tts` / :func:`tts_for` (``factory.py``) build the engine a session speaks with;
  :class:`VoiceCatalog` (``voices.py``) is the only way a page's pick becomes a voice.

Everything outside this package imports from here, never from the modules inside.
"""

from voice.tts.edge import CircuitBreaker, EdgeTTS
from voice.tts.edge_transport import WarmEdgeTransport
from voice.tts.engine import (
    OUTPUT_SAMPLE_RATE,
    AudioChunk,
    FallbackTTS,
    PrefetchedSpeech,
    TTSConnection,
    TTSConnectionKind,
    TTSEngine,
    TTSError,
    bound_text,
    has_speakable,
    prefetch,
)
from voice.tts.factory import make_tts, tts_for
from voice.tts.piper import PiperTTS, bundled_voice_path, load_voice
from voice.tts.voices import VoiceCatalog

__all__ = [
    "OUTPUT_SAMPLE_RATE",
    "AudioChunk",
    "CircuitBreaker",
    "EdgeTTS",
    "FallbackTTS",
    "PiperTTS",
    "PrefetchedSpeech",
    "TTSConnection",
    "TTSConnectionKind",
    "TTSEngine",
    "TTSError",
    "VoiceCatalog",
    "WarmEdgeTransport",
    "bound_text",
    "bundled_voice_path",
    "has_speakable",
    "load_voice",
    "make_tts",
    "prefetch",
    "tts_for",
]
