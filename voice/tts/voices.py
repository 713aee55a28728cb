"""The voices a page may pick, and the only way a page's pick becomes a TTS voice.

The page is not trusted: its voice box must not name a file on the server.  A page chooses a
*name* from :class:`VoiceCatalog`; only the server's own settings (``TTS_VOICE``, ``--voice``)
may name a Piper ``.onnx`` file, and the catalog maps that voice's name back to its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voice.settings import Settings


# The edge-tts neural voices the page offers (any edge voice may still be set in TTS_VOICE).
EDGE_VOICES = ("en-US-AriaNeural", "en-US-GuyNeural", "en-GB-SoniaNeural", "en-US-JennyNeural")
PIPER_SUFFIX = ".onnx"
_MAX_ECHO_CHARS = 80  # how much of a refused value the message repeats


class VoiceRefused(ValueError):
    """The page asked for a voice that is not in the catalog; the message says what to pick."""


def is_piper_file(voice: str) -> bool:
    """True when ``voice`` names a local Piper voice file rather than an edge-tts voice."""
    return voice.lower().endswith(PIPER_SUFFIX)


@dataclass(frozen=True)
class VoiceCatalog:
    """The voices a page may choose: ``edge`` names, and ``piper`` (name, server path) pairs
    taken from the server's settings only."""

    edge: tuple[str, ...]
    piper: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceCatalog:
        """The page's choices for a server configured with ``settings``."""
        voice = settings.tts_voice
        if is_piper_file(voice):
            return cls(EDGE_VOICES, ((PurePath(voice).stem, voice),))
        edge = EDGE_VOICES if voice in EDGE_VOICES else (voice, *EDGE_VOICES)
        return cls(edge)

    @property
    def names(self) -> list[str]:
        """What the page's voice box lists."""
        return [*self.edge, *(name for name, _ in self.piper)]

    def name_of(self, voice: str) -> str:
        """The name the page shows for ``voice`` (a configured Piper path shows its name)."""
        return next((name for name, path in self.piper if path == voice), voice)

    def resolve(self, choice: str) -> str:
        """The ``tts_voice`` value for the page's ``choice``; raises :class:`VoiceRefused` for
        anything not in the catalog, and in particular for any ``.onnx`` path."""
        if choice in self.edge:
            return choice
        for name, path in self.piper:
            if choice == name:
                return path
        shown = choice if len(choice) <= _MAX_ECHO_CHARS else choice[:_MAX_ECHO_CHARS] + "…"
        if is_piper_file(choice):
            raise VoiceRefused(
                f"voice {shown!r} refused: a Piper voice file can only be set in the server's settings "
                "(TTS_VOICE or --voice), not from the page"
            )
        raise VoiceRefused(f"unknown voice {shown!r}: choose one of {', '.join(self.names)}")
