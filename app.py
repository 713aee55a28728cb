"""WarmVoice: a voice agent that answers faster than you expect, and shows why.

``python app.py`` serves the Gradio page on http://127.0.0.1:7860.  This file is a thin
layer over :mod:`voice`: it places components, forwards browser events to the tab's
:class:`~voice.session.VoiceSession`, and renders the session's events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np

from llm import STRATEGY_LABELS, configure_logging, hide_in_logs, public_endpoint
from voice import panel
from voice.browser_link import MAX_PONG_CHARS, BrowserLink, parse_pongs
from voice.events import (
    AssistantSaid,
    AudioOut,
    BargeIn,
    LatencyUpdate,
    Notice,
    Status,
    TurnDone,
    UserSaid,
)
from voice.latency import TurnLatency
from voice.native_memory import limit_malloc_arenas
from voice.recognizer import ENGINE_LABELS, ModelUnavailableError
from voice.registry import SessionRegistry, TooManySessions
from voice.runtime import VoiceRuntime
from voice.session import VoiceSession
from voice.settings import Settings, SettingsError, load_settings
from voice.tts import TTSError
from voice.turn_policy import TURN_DETECTOR_LABELS
from voice.voices import VoiceCatalog

if TYPE_CHECKING:  # voice.local_audio is imported only with --local-audio
    from voice.local_audio import LocalMic, LocalSpeaker

log = logging.getLogger("warmvoice")

STRATEGY_CHOICES = [(label, key) for key, label in STRATEGY_LABELS.items()]
TURN_DETECTOR_CHOICES = [(label, key) for key, label in TURN_DETECTOR_LABELS.items()]
STT_ENGINE_CHOICES = [(label, key) for key, label in ENGINE_LABELS.items()]
# One click on "Start speaking" starts the session (Python), the browser capture (the mic's own
# record button) and the reply player (browsers only start audio from a user gesture).
# Gradio 6's streaming recorder loads its WAV encoder (two modules and a worker) after the page
# has rendered; a record press before that finds no recorder class, throws in a promise and
# leaves the component showing "recording" while nothing is ever sent (seen in the browser
# test under CPU load, about 1 s after the page loaded).  So the press waits until the page
# is RECORDER_READY_MS old; a person clicking later than that waits for nothing.
RECORDER_READY_MS = 3000
START_MIC_JS = f"""(...args) => {{ window.warmvoice && window.warmvoice.ensure();
  const press = (tries) => {{ const b = document.querySelector('#mic button.record-button');
    if (b) b.click(); else if (tries > 0) setTimeout(() => press(tries - 1), 100); }};
  setTimeout(() => press(30), Math.max(0, {RECORDER_READY_MS} - performance.now())); return args; }}"""
STOP_MIC_JS = """(...args) => { document.querySelector('#mic button.stop-button')?.click(); return args; }"""


PLAYER_HEAD = f"<script>{(Path(__file__).parent / 'web' / 'player.js').read_text()}</script>"


class RuntimeLoader:
    """Loads the models and starts the LLM backend in a thread, so the page is up at once
    and shows progress instead of a silent wait."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.progress = "Starting…"
        self.error: str | None = None
        self.runtime: VoiceRuntime | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._load, name="runtime-loader", daemon=True)

    @classmethod
    def loaded(cls, settings: Settings, runtime: VoiceRuntime) -> RuntimeLoader:
        """A loader that is already done (tests, or a caller that built the runtime itself)."""
        loader = cls(settings)
        loader.runtime = runtime
        loader.progress = "Ready"
        loader._done.set()
        return loader

    def start(self) -> None:
        """Begin loading in the background."""
        self._thread.start()

    def _load(self) -> None:
        def say(text: str) -> None:
            self.progress = text
            log.info("%s", text)

        try:
            self.runtime = VoiceRuntime.create(self.settings, progress=say)
        except Exception as exc:
            self.error = f"WarmVoice could not start: {exc}"
            log.error("%s", self.error)
        finally:
            self._done.set()

    async def wait(self) -> VoiceRuntime:
        """The runtime once loaded; raises RuntimeError with the reason if loading failed."""
        await asyncio.to_thread(self._done.wait)
        if self.runtime is None:
            raise RuntimeError(self.error or "WarmVoice could not start")
        return self.runtime

    @property
    def ready(self) -> bool:
        """True once loading has finished (successfully or not)."""
        return self._done.is_set()


class WarmVoiceApp:
    """The Gradio callbacks, one session per tab (keyed by Gradio's session hash)."""

    def __init__(
        self,
        settings: Settings,
        loader: RuntimeLoader,
        *,
        local_mic: LocalMic | None = None,
        local_speaker: LocalSpeaker | None = None,
    ) -> None:
        """``local_mic``/``local_speaker``: this machine's sound devices (``--local-audio``)."""
        self.settings = settings
        self.loader = loader
        self._registry: SessionRegistry | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._local_speaker = local_speaker
        self._local_mic = local_mic
        self._local_capture: asyncio.Task[None] | None = None
        self._hearing: set[str] = set()  # sessions whose microphone audio has arrived (logged once)
        # Each session's page round trips, kept as long as the session object lives.
        self._links: weakref.WeakKeyDictionary[VoiceSession, BrowserLink] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ sessions

    async def registry(self) -> SessionRegistry:
        """The tab registry, created once the runtime is loaded."""
        if self._registry is None:
            runtime = await self.loader.wait()
            self._registry = SessionRegistry(
                runtime.new_session,
                max_sessions=self.settings.max_sessions,
                idle_timeout_s=self.settings.session_idle_timeout_s,
                max_age_s=self.settings.session_max_s,
            )
            self._reaper = asyncio.create_task(self._registry.run_reaper(), name="session-reaper")
        return self._registry

    async def aclose(self) -> None:
        """End every tab's session and stop the idle reaper (server shutdown, tests)."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        if self._registry is not None:
            await self._registry.close_all()

    async def _session(self, request: gr.Request | None) -> VoiceSession | None:
        if request is None or self._registry is None:
            return None
        return self._registry.get(request.session_hash or "")

    # ------------------------------------------------------------------ callbacks

    async def start(
        self,
        strategy: str,
        rtt_ms: float,
        system_prompt: str,
        silence_ms: float,
        barge_in: bool,
        request: gr.Request,
    ) -> AsyncIterator[str]:
        """'Start speaking': open the tab's session (warm-up fires at once)."""
        while not self.loader.ready:
            yield f"⏳ {self.loader.progress}"
            await asyncio.sleep(0.3)
        try:
            registry = await self.registry()
            session = await registry.open(
                request.session_hash or "",
                strategy=strategy,
                rtt_ms=float(rtt_ms),
                system_prompt=system_prompt,
                silence_ms=int(silence_ms),
                barge_in=bool(barge_in),
            )
        except (TooManySessions, RuntimeError, ValueError, SettingsError) as exc:
            yield f"⚠️ {exc}"
            return
        if self._local_mic is not None:
            # --local-audio: this machine's microphone feeds the session (one tab at a time).
            if self._local_capture is not None:
                self._local_capture.cancel()
            self._local_capture = asyncio.create_task(self._local_mic.run(session), name="local-mic")
            self._local_capture.add_done_callback(_log_capture_failure)
        yield "Pre-warming…" if session.settings.connection_strategy == "prewarmed" else "Listening…"

    async def stop(self, request: gr.Request) -> str:
        """'Stop': cancel work in flight, close the connection, end the session."""
        if self._local_capture is not None:
            self._local_capture.cancel()
            self._local_capture = None
        self._hearing.discard(request.session_hash or "")
        if self._registry is not None:
            await self._registry.close(request.session_hash or "")
        return "Session ended. Click **Start speaking** to talk again."

    async def hear(self, chunk: tuple[int, np.ndarray] | None, request: gr.Request) -> None:
        """A chunk of browser microphone audio (48 kHz int16, usually)."""
        session = await self._session(request)
        if session is None or chunk is None:
            return
        try:  # whatever the browser sends: an exception here would end the microphone stream
            rate, samples = chunk
            audio = None if samples is None else np.asarray(samples)
            if audio is None or audio.size == 0:
                return
            if session.session_id not in self._hearing:
                self._hearing.add(session.session_id)
                log.info(
                    "Microphone audio arriving for session %s: %s Hz, %s %s",
                    session.session_id,
                    rate,
                    audio.shape,
                    audio.dtype,
                )
            await session.feed_audio(audio, int(rate))
        except (ValueError, TypeError) as exc:
            log.warning("Unusable audio chunk ignored: %s", exc)

    async def playback_started(self, report: str, request: gr.Request) -> None:
        """web/player.js says a turn's first audio has started playing (see VoiceSession.playback_started)."""
        session = await self._session(request)
        if session is None:
            return
        for played in panel.playback_reports(report, session.instance_id):
            session.playback_started(played.turn, played.player_ms)

    async def pong(self, report: str, request: gr.Request) -> None:
        """web/player.js answers the server's pings (see voice.browser_link)."""
        session = await self._session(request)
        link = None if session is None else self._links.get(session)
        if session is None or link is None or session.closed:
            return
        for answer in parse_pongs(report, session.instance_id):
            trip = link.pong(answer)
            if trip is not None:
                log.debug("Page <-> server round trip for session %s: %.0f ms", session.session_id, trip)

    async def type_turn(self, text: str, request: gr.Request) -> str:
        """A typed turn; returns "" to clear the text box."""
        session = await self._session(request)
        if session is None:
            raise gr.Error("Click “Start speaking” first: it opens the session (you can then type or speak).")
        await session.submit_text(text)
        return ""

    async def configure(
        self,
        strategy: str,
        rtt_ms: float,
        system_prompt: str,
        silence_ms: float,
        barge_in: bool,
        request: gr.Request,
    ) -> None:
        """A/B controls and settings changed: apply them to the live session."""
        session = await self._session(request)
        if session is None:
            return
        try:
            await session.configure(
                strategy=strategy,
                rtt_ms=float(rtt_ms),
                system_prompt=system_prompt,
                silence_ms=int(silence_ms),
                barge_in=bool(barge_in),
            )
        except (ValueError, SettingsError) as exc:
            gr.Warning(str(exc))

    async def unload(self, request: gr.Request) -> None:
        """The tab closed: end its session."""
        if self._registry is not None and request is not None:
            self._hearing.discard(request.session_hash or "")
            await self._registry.close(request.session_hash or "")

    async def pump(self, request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        """Streams the session's events to the page for as long as the session lives.

        Yields (status, chat, reply audio payload, current turn, turns table, chart, facts).
        """
        session = await self._session(request)
        if session is None:
            return
        view = _PageView(session)
        self._links[session] = view.link
        yield view.render(chart=True)
        seq = 0
        while not session.closed:
            try:
                event = await asyncio.wait_for(session.events.get(), timeout=1.0)
            except TimeoutError:
                yield view.render()  # refresh connection state and facts
                continue
            out = view.apply(event)
            barge_in = isinstance(event, BargeIn)
            audio: str | None = None
            if self._local_speaker is not None:
                if barge_in:
                    self._local_speaker.flush()
                if out is not None:
                    self._local_speaker.play(out.chunk)
            elif out is not None or barge_in:
                seq += 1
                audio = panel.audio_payload(session.instance_id, [(seq, out)] if out else [], flush=barge_in)
            yield view.render(audio=audio, chart=isinstance(event, TurnDone))
        if (await self._session(request)) not in (None, session):
            return  # the tab started a new session: its own pump speaks for the page now
        view.status = "Session ended."
        yield view.render(chart=True)

    # ------------------------------------------------------------------ page

    def build(self) -> gr.Blocks:
        """The page."""
        s = self.settings
        with gr.Blocks(title="WarmVoice") as demo:
            gr.Markdown(
                "# WarmVoice\nA voice agent that answers out loud fast, and shows where every millisecond "
                "went. Click **Start speaking**, ask a question, pause: the reply starts as soon as its "
                "first sentence exists. The connection to the LLM is pre-warmed while you talk."
            )
            with gr.Row(equal_height=True):
                start = gr.Button("Start speaking", variant="primary", size="lg", elem_id="start-speaking", scale=3)
                stop = gr.Button("Stop", variant="stop", size="lg", elem_id="stop", scale=1)
            status = gr.Markdown("Click **Start speaking** to begin.", elem_id="status")
            with gr.Row():
                with gr.Column(scale=3):
                    chat = gr.Chatbot(label="Conversation", elem_id="chat", height=360)
                    with gr.Row():
                        typed = gr.Textbox(
                            placeholder="…or type a turn and press Enter",
                            show_label=False,
                            scale=4,
                            elem_id="typed",
                            max_length=100_000,
                        )
                        send = gr.Button("Send", scale=1, elem_id="send")
                    mic = gr.Audio(
                        sources=["microphone"],
                        streaming=True,
                        type="numpy",
                        label="Microphone",
                        elem_id="mic",
                        waveform_options=gr.WaveformOptions(show_recording_waveform=False),
                    )
                    # Reply audio goes to web/player.js (Web Audio), not a streamed gr.Audio: see there.
                    reply = gr.Textbox(visible=False, elem_id="reply-audio")
                    # The player clicks this (hidden) button when a turn's audio starts playing;
                    # its report travels in the hidden text box.
                    played = gr.Button("playing", elem_id="playback-started", elem_classes=["wv-hidden"])
                    played_report = gr.Textbox(
                        visible=False, elem_id="playback-report", max_length=panel.MAX_REPORT_CHARS
                    )
                    # The same way back for the answers to the server's pings (voice/browser_link.py).
                    pong = gr.Button("pong", elem_id="pong", elem_classes=["wv-hidden"])
                    pong_report = gr.Textbox(visible=False, elem_id="pong-report", max_length=MAX_PONG_CHARS)
                with gr.Column(scale=2):
                    current = gr.HTML(panel.current_turn_html(None), elem_id="current-turn")
                    facts = gr.Markdown("", elem_id="facts")
            with gr.Accordion("All turns", open=True):
                table = gr.Dataframe(
                    headers=panel.TURN_COLUMNS, value=[], interactive=False, elem_id="turns", wrap=True
                )
                chart = gr.Plot(label="Where the time went (ms after your speech ended)", elem_id="chart")
            with gr.Accordion("A/B and settings", open=True):
                with gr.Row():
                    strategy = gr.Radio(
                        STRATEGY_CHOICES, value=s.connection_strategy, label="Connection strategy", elem_id="strategy"
                    )
                    rtt = gr.Slider(
                        0,
                        1000,
                        value=s.emulated_rtt_ms,
                        step=10,
                        elem_id="rtt",
                        label="Emulated network distance (extra round-trip ms)",
                    )
                with gr.Row():
                    silence = gr.Slider(
                        200,
                        2000,
                        value=s.end_of_turn_silence_ms,
                        step=50,
                        label="Silence that ends a turn (silence-only and word-list detectors, ms)",
                        elem_id="silence",
                    )
                    detector = gr.Dropdown(
                        TURN_DETECTOR_CHOICES, value=s.turn_detector, label="End-of-turn detector", elem_id="detector"
                    )
                    stt = gr.Dropdown(STT_ENGINE_CHOICES, value=s.stt_engine, label="Speech recognizer", elem_id="stt")
                    barge = gr.Checkbox(value=s.barge_in, label="Barge-in (interrupt the reply by speaking)")
                    voices = VoiceCatalog.from_settings(s)
                    voice = gr.Dropdown(
                        voices.names,
                        value=voices.name_of(s.tts_voice),
                        label="Voice",
                        interactive=s.tts_engine != "piper",
                    )
                prompt = gr.Textbox(value=s.system_prompt, label="System prompt", lines=2, max_length=4000)

            controls = [strategy, rtt, prompt, silence, barge]
            outputs = [status, chat, reply, current, table, chart, facts]
            limit = s.max_sessions
            started = start.click(
                self.start, controls, status, js=START_MIC_JS, concurrency_limit=limit, api_name="start"
            )
            # "multiple": Stop then Start again must get its pump even while the old one is still
            # winding down (Gradio's default, "once", silently dropped the new one).
            started.then(self.set_turn_detector, detector, None, api_visibility="private", show_progress="hidden")
            started.then(self.set_stt_engine, stt, None, api_visibility="private", show_progress="hidden")
            started.then(
                self.pump,
                None,
                outputs,
                concurrency_limit=limit,
                api_name="events",
                show_progress="hidden",
                trigger_mode="multiple",
            )
            mic.stream(
                self.hear,
                mic,
                None,
                stream_every=0.1,
                time_limit=int(s.session_max_s),
                concurrency_limit=limit,
                api_visibility="private",
                show_progress="hidden",
            )
            stop.click(self.stop, None, status, js=STOP_MIC_JS, api_name="stop")
            reply.change(None, reply, None, js="(payload) => { window.warmvoice && window.warmvoice.play(payload); }")
            played.click(
                self.playback_started,
                played_report,
                None,
                api_visibility="private",
                show_progress="hidden",
                js="() => window.warmvoice ? window.warmvoice.takeReports() : '[]'",
                concurrency_limit=limit,
                trigger_mode="always_last",
            )
            pong.click(
                self.pong,
                pong_report,
                None,
                api_visibility="private",
                show_progress="hidden",
                js="() => window.warmvoice ? window.warmvoice.takePongs() : '[]'",
                concurrency_limit=limit,
                trigger_mode="always_last",
            )
            for trigger in (send.click, typed.submit):
                trigger(self.type_turn, typed, typed, concurrency_limit=limit, api_visibility="private")
            for change in (strategy.change, rtt.change, prompt.change, silence.change, barge.change):
                change(self.configure, controls, None, api_visibility="private", show_progress="hidden")
            voice.change(self.set_voice, voice, None, api_visibility="private")
            detector.change(self.set_turn_detector, detector, None, api_visibility="private", show_progress="hidden")
            stt.change(self.set_stt_engine, stt, None, api_visibility="private", show_progress="hidden")
            demo.unload(self.unload)
        return demo

    async def set_voice(self, voice: str, request: gr.Request) -> None:
        """The voice box changed: a name from the catalog (a path is refused with a warning)."""
        session = await self._session(request)
        if session is not None and voice:
            try:
                await session.configure(voice=voice)
            except (ValueError, SettingsError, TTSError) as exc:
                gr.Warning(str(exc))

    async def set_turn_detector(self, detector: str, request: gr.Request) -> None:
        """The end-of-turn detector changed (A/B): the session's next pause uses it."""
        await self._configure_one(request, turn_detector=detector)

    async def set_stt_engine(self, engine: str, request: gr.Request) -> None:
        """The speech recognizer changed (A/B): the session's next utterance is heard by it."""
        await self._configure_one(request, stt_engine=engine)

    async def _configure_one(self, request: gr.Request, **change: str) -> None:
        """One page control's value for the tab's session; a refused value is a warning, not an error."""
        session = await self._session(request)
        if session is not None and all(change.values()):
            try:
                await session.configure(**change)  # type: ignore[arg-type]  # the names are configure()'s
            except (ValueError, SettingsError, ModelUnavailableError) as exc:
                gr.Warning(str(exc))


class _PageView:
    """What one tab shows, updated event by event."""

    def __init__(self, session: VoiceSession) -> None:
        self.session = session
        self.status = "Pre-warming…" if session.settings.connection_strategy == "prewarmed" else "Listening…"
        self.chat: list[dict[str, str]] = []
        self.current: TurnLatency | None = None
        self._assistant_turn = -1
        self.link = BrowserLink()  # how far the page is: pings ride with the reply audio

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
            else:
                self.chat[-1]["content"] += " " + event.text
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

    def _withdraw(self, text: str) -> None:
        # The user went on talking: the turn carries on, and its words come again, whole.
        if self.chat and self.chat[-1] == {"role": "user", "content": text}:
            self.chat.pop()

    def render(self, *, audio: str | None = None, chart: bool = False) -> tuple[Any, ...]:
        """Values for (status, chat, reply audio payload, current, table, chart, facts)."""
        session = self.session
        latencies = list(session.latencies)
        client = session.client
        stats = getattr(client, "stats", None)
        warm = session.reply.warmup
        warm_text = "—" if warm is None else (f"{warm.ms:,.0f} ms" if warm.ok else f"failed: {warm.error}")
        facts = panel.SessionFacts(
            endpoint=public_endpoint(session.endpoint.base_url),
            model=session.endpoint.model,  # no user:password
            connection_state=session.connection_state,
            strategy=session.settings.connection_strategy,
            rtt_ms=session.settings.emulated_rtt_ms,
            warmup=warm_text,
            connections_opened=getattr(stats, "connections_opened", 0),
            connections_reused=getattr(stats, "connections_reused", 0),
            tts_engine=next((lat.tts_engine for lat in reversed(latencies) if lat.tts_engine), "—"),
            browser_rtt=self.link.summary(),
            interruptions=f"{session.interruption.stats.describe()}, "
            f"{session.speculation_stats.continued} turns continued before the reply was heard",
            preemptive=session.reply.preemptive.stats.describe(),
        )
        chat = list(self.chat)
        current = panel.current_turn_html(self.current)
        rows = panel.turns_rows(latencies)
        figure = panel.waterfall_chart(latencies) if chart else gr.skip()
        facts_text = panel.facts_markdown(facts)
        if audio is None and (ping := self.link.ping()) is not None:
            # Stamped after the panel is drawn, and never with audio: the round trip measures the
            # channel, not this redraw or a chunk's decoding (voice/browser_link.py).
            audio = panel.audio_payload(session.instance_id, [], ping=ping)
        return (
            self.status,
            chat,
            audio if audio is not None else gr.skip(),
            current,
            rows,
            figure,
            facts_text,
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags override the environment and .env (see the README's configuration table)."""
    p = argparse.ArgumentParser(description="WarmVoice: a fast voice agent with a live latency panel.")
    p.add_argument("--host", help="bind address (default 127.0.0.1; a Space uses 0.0.0.0)")
    p.add_argument("--port", type=int, help="port (default 7860)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1")
    p.add_argument("--model", help="model name at that endpoint")
    p.add_argument("--system-prompt", help="system prompt")
    p.add_argument("--tts", choices=("auto", "edge", "piper"), help="text-to-speech engine")
    p.add_argument("--voice", help="TTS voice (edge-tts name, or a Piper .onnx path)")
    p.add_argument("--whisper-model", help="faster-whisper model name or path")
    p.add_argument("--whisper-device", help="cpu, cuda or auto")
    p.add_argument("--whisper-compute-type", help="e.g. int8, float16")
    p.add_argument("--strategy", choices=tuple(STRATEGY_LABELS), help="LLM connection strategy")
    p.add_argument("--rtt-ms", type=float, help="emulated network distance to the LLM")
    p.add_argument("--local-audio", action="store_true", help="use this machine's microphone and speaker")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment + .env + flags -> validated settings."""
    return load_settings(
        {
            "host": args.host,
            "port": args.port,
            "openai_base_url": args.base_url,
            "llm_model": args.model,
            "system_prompt": args.system_prompt,
            "tts_engine": args.tts,
            "tts_voice": args.voice,
            "whisper_model": args.whisper_model,
            "whisper_device": args.whisper_device,
            "whisper_compute_type": args.whisper_compute_type,
            "connection_strategy": args.strategy,
            "emulated_rtt_ms": args.rtt_ms,
            "local_audio": args.local_audio or None,
            "log_level": args.log_level,
        }
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _log_capture_failure(task: asyncio.Task[None]) -> None:
    # Nobody awaits the --local-audio capture task: its error (a microphone that cannot open)
    # would otherwise surface only as "Task exception was never retrieved" with a traceback.
    if not task.cancelled() and task.exception() is not None:
        log.error("Local microphone stopped: %s", task.exception())


def create_app(settings: Settings) -> tuple[gr.Blocks, WarmVoiceApp]:
    """The Gradio app and its callbacks object; starts loading the models in the background."""
    hide_in_logs(settings.openai_api_key)
    loader = RuntimeLoader(settings)
    loader.start()
    mic, speaker = None, None
    if settings.local_audio:
        from voice.local_audio import LocalAudioError, LocalMic, LocalSpeaker

        try:
            mic, speaker = LocalMic(), LocalSpeaker()
            log.info("Local audio: this machine's microphone and speaker carry the conversation")
        except LocalAudioError as exc:
            log.warning("%s; the browser microphone and player keep working", exc)
    app = WarmVoiceApp(settings, loader, local_mic=mic, local_speaker=speaker)
    demo = app.build()
    demo.queue(default_concurrency_limit=settings.max_sessions)
    return demo, app


def main(argv: list[str] | None = None) -> int:
    """Run the app until Ctrl-C; returns the exit code."""
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    limit_malloc_arenas()  # before Gradio's threads start: glibc fixes the limit early
    demo, app = create_app(settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("Serving on %s: reachable from other machines", settings.host)
    # A Space (or any container) stops the app with SIGTERM: shut down as on Ctrl-C, so the
    # embedded server is stopped by us rather than only killed along with us.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            css=panel.PANEL_CSS,
            head=PLAYER_HEAD,
            show_error=False,
            # Client-side rendering whatever GRADIO_SSR_MODE a Space sets: SSR needs Node 24+
            # and puts a Node proxy in front of the page, which the player was never tested with.
            ssr_mode=False,
        )
    except KeyboardInterrupt:
        pass
    finally:
        # Sessions' sockets die with the process; the child server must be stopped explicitly.
        if app.loader.runtime is not None:
            app.loader.runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
