"""What a voice session tells its front-end (browser page, local speaker, CLI), as it happens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from llm import ConnectionState
from voice.latency import TurnLatency
from voice.tts import AudioChunk

# How loudly the page shows a status line or a notice.
Level = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Status:
    """Session status line and connection state (cold / warming / warm / idle / closed)."""

    text: str
    connection: ConnectionState
    level: Level = "info"


@dataclass(frozen=True)
class UserSaid:
    """The transcript (or typed text) of the user's turn."""

    turn: int
    text: str


@dataclass(frozen=True)
class AssistantSaid:
    """One more sentence of the assistant's reply, the moment it is complete."""

    turn: int
    text: str


@dataclass(frozen=True)
class AudioOut:
    """A chunk of reply audio, ready to play: of sentence ``sentence`` (its index in the reply)."""

    turn: int
    chunk: AudioChunk
    sentence: int = 0


@dataclass(frozen=True)
class LatencyUpdate:
    """A stage of the current turn became known (a snapshot of the breakdown)."""

    latency: TurnLatency


@dataclass(frozen=True)
class TurnDone:
    """The turn ended (ok, no speech, error or interrupted); final breakdown."""

    latency: TurnLatency


@dataclass(frozen=True)
class Notice:
    """Something the user should read: a retry, a fallback, an error, a capped recording."""

    text: str
    level: Level = "info"


@dataclass(frozen=True)
class ReplyRecorded:
    """What turn ``turn``'s reply is now remembered as, after a barge-in cut it (``interrupted``:
    only ``text`` was heard) or a resumed reply finished it.  Empty ``text``: none of it was heard."""

    turn: int
    text: str
    interrupted: bool


@dataclass(frozen=True)
class BargeIn:
    """The user started speaking over the assistant; its reply was cut."""

    turn: int


SessionEvent = (
    Status | UserSaid | AssistantSaid | AudioOut | LatencyUpdate | TurnDone | Notice | BargeIn | ReplyRecorded
)

# How a stage hands its events to the session (which publishes them to every listener).
Emit = Callable[[SessionEvent], None]
