"""What one tab shows, folded event by event from its session's events."""

from __future__ import annotations

from typing import Any

import gradio as gr

from voice import panel, player_messages
from voice.browser_link import BrowserLink
from voice.events import (
    AssistantSaid,
    AudioOut,
    BargeIn,
    LatencyUpdate,
    Notice,
    ReplyRecorded,
    Status,
    TurnDone,
    UserSaid,
)
from voice.latency import TurnLatency
from voice.session import VoiceSession
from voice.uplink import PageUplink

INTERRUPTED_LABEL = "*(interrupted: you heard this much)*"  # after a cut reply in the chat


class PageView:
    """What one tab shows, updated event by event."""

    def __init__(self, session: VoiceSession) -> None:
        self.session = session
        self.status = "Pre-warming…" if session.settings.connection_strategy == "prewarmed" else "Listening…"
        self.chat: list[dict[str, str]] = []
        self.current: TurnLatency | None = None
        self._assistant_turn = -1
        self._replies: dict[int, int] = {}  # turn -> index of its reply in the chat
        self.link = BrowserLink()  # how far the page is: pings ride with the reply audio
        self.uplink = PageUplink(self.link)  # when the microphone's chunks were captured

    def apply(self, event: object) -> AudioOut | None:
        """Fold one event into the view; returns the event if it is audio to play."""
        if isinstance(event, Status):
            icon = {"error": "⛔ ", "warning": "⚠️ "}.get(event.level, "")
            self.status = f"{icon}{event.text}"
        elif isinstance(event, UserSaid):
            self.chat.append({"role": "user", "content": event.text})
        elif isinstance(event, AssistantSaid):
            if self._assistant_turn != event.turn or not self.chat or self.chat[-1]["role"] != "assistant":
                self.chat.append({"role": "assistant", "content": event.text})
                self._assistant_turn = event.turn
                self._replies[event.turn] = len(self.chat) - 1
            else:
                self.chat[-1]["content"] += " " + event.text
        elif isinstance(event, ReplyRecorded):
            self._rewrite_reply(event)
        elif isinstance(event, LatencyUpdate | TurnDone):
            if isinstance(event, TurnDone) and event.latency.outcome == "continued":
                self._withdraw(event.latency.transcript)
            # A late word about an earlier turn (its playback confirmed) updates the table only.
            if self.current is None or event.latency.turn >= self.current.turn:
                self.current = event.latency
        elif isinstance(event, Notice):
            icon = {"error": "⛔ ", "warning": "⚠️ "}.get(event.level, "ℹ️ ")
            self.status = f"{icon}{event.text}"
        elif isinstance(event, BargeIn):
            self.status = "You interrupted: listening…"
        elif isinstance(event, AudioOut):
            return event
        return None

    def _rewrite_reply(self, event: ReplyRecorded) -> None:
        # A barge-in cut the reply: the chat shows what was heard, marked, as the history keeps it.
        index = self._replies.get(event.turn)
        if index is None or index >= len(self.chat) or self.chat[index]["role"] != "assistant":
            return
        mark = f" {INTERRUPTED_LABEL}" if event.interrupted else ""
        self.chat[index]["content"] = (event.text or "…") + mark

    def _withdraw(self, text: str) -> None:
        # The user went on talking: the turn carries on, and its words come again, whole.
        if self.chat and self.chat[-1] == {"role": "user", "content": text}:
            self.chat.pop()

    def render(self, *, audio: str | None = None, chart: bool = False) -> tuple[Any, ...]:
        """Values for (status, chat, reply audio payload, current, table, chart, facts)."""
        session = self.session
        latencies = list(session.latencies)
        facts = panel.session_facts(session, self.link.summary(), page_clock=self.uplink.describe())
        chat = list(self.chat)
        current = panel.current_turn_html(self.current)
        rows = panel.turns_rows(latencies)
        figure = panel.waterfall_chart(latencies) if chart else gr.skip()
        facts_text = panel.facts_markdown(facts)
        if audio is None and (ping := self.link.ping()) is not None:
            # Stamped after the panel is drawn, and never with audio: the round trip measures the
            # channel, not this redraw or a chunk's decoding (voice/browser_link.py).
            audio = player_messages.audio_payload(session.instance_id, [], ping=ping)
        return (
            self.status,
            chat,
            audio if audio is not None else gr.skip(),
            current,
            rows,
            figure,
            facts_text,
        )
