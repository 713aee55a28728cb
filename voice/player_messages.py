"""What the server and the page's Web Audio player (web/player.js) say to each other.

Down: the reply audio, as numbered 16-bit PCM chunks in one JSON payload, with a flush on a
barge-in and the pings of :mod:`voice.browser_link` riding along.  Up: the player's reports of the
sentences whose playback started, which the server does not trust.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from voice.audio import float_to_int16
from voice.browser_link import finite_number, page_messages, positive_int
from voice.events import AudioOut

MAX_REPORT_CHARS = 4096  # a report names a few turns; anything longer is not from our player
_MAX_PLAYER_MS = 60_000.0


def audio_payload(
    stream: str, chunks: list[tuple[int, AudioOut]], *, flush: bool = False, ping: int | None = None
) -> str:
    """Reply audio for the page's Web Audio player (web/player.js): numbered 16-bit PCM chunks.

    ``stream`` is the session's ``instance_id``: a new one makes the player start afresh.  The
    numbers let the player ignore a chunk it has already scheduled; each chunk names its turn and
    sentence, so the player can report when each sentence started (:func:`playback_reports`);
    ``flush`` stops what is queued (barge-in).  ``ping`` asks the player to answer at once
    (:mod:`voice.browser_link`): it travels exactly as the audio does.
    """
    message: dict[str, object] = {
        "session": stream,
        "flush": flush,
        "chunks": [
            {
                "seq": seq,
                "turn": out.turn,
                "sentence": out.sentence,
                "rate": out.chunk.sample_rate,
                "pcm": base64.b64encode(float_to_int16(out.chunk.samples).astype("<i2").tobytes()).decode("ascii"),
            }
            for seq, out in chunks
        ],
    }
    if ping is not None:
        message["ping"] = ping
    return json.dumps(message)


@dataclass(frozen=True)
class PlaybackReport:
    """The player's word that a sentence of a turn's reply started, and how long it took in the page."""

    turn: int
    player_ms: float | None  # from the chunk's arrival in the page to the report being sent
    sentence: int = 0  # its index in the reply


def playback_reports(text: str, stream: str) -> list[PlaybackReport]:
    """The sentences whose playback the player reports as started, from its JSON
    (``[{"session": stream, "turn": n, "sentence": k, "player_ms": ms}, ...]``; no ``sentence``:
    the first).

    Only reports of ``stream`` count (an older session of the same tab may still report);
    anything malformed or oversized is ignored, and an implausible ``player_ms`` dropped: the
    page is not trusted.
    """
    reports = []
    for item in page_messages(text, stream, MAX_REPORT_CHARS):
        turn = positive_int(item.get("turn"))
        if turn is None:
            continue
        raw = item.get("sentence", 0)
        sentence = 0 if raw == 0 and not isinstance(raw, bool) else positive_int(raw)
        if sentence is None:
            continue
        player_ms = finite_number(item.get("player_ms"), 0, _MAX_PLAYER_MS)
        reports.append(PlaybackReport(turn, player_ms, sentence))
    return reports
