"""The page's callbacks: browser events in, the tab's :class:`~voice.session.VoiceSession` out.

One session per tab, kept in a :class:`~voice.registry.SessionRegistry`; the page layout that
wires these to components is :mod:`web.page`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np

from voice import player_messages
from voice.browser_link import parse_pongs
from voice.event_hub import Listener
from voice.events import BargeIn, SessionEvent, TurnDone
from voice.recognizer import ModelUnavailableError
from voice.registry import SessionRegistry, TooManySessions
from voice.runtime import RuntimeLoader
from voice.session import VoiceSession
from voice.settings import Settings, SettingsError
from voice.tts import TTSError
from voice.uplink import MicPath, PageTimes, PageUplink, page_times
from web.view import PageView

if TYPE_CHECKING:  # voice.local_audio is imported only with --local-audio
    from voice.local_audio import LocalMic, LocalSpeaker

log = logging.getLogger("warmvoice")


class PageCallbacks:
    """The page's callbacks, one session per tab (keyed by Gradio's session hash)."""

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
        self._local_playback: asyncio.Task[None] | None = None  # the speaker, a listener of the session
        self._hearing: set[str] = set()  # sessions whose microphone audio has arrived (logged once)
        # Each session's page round trips and microphone capture times, kept as long as the session lives.
        self._links: weakref.WeakKeyDictionary[VoiceSession, PageUplink] = weakref.WeakKeyDictionary()
        # Sessions whose page streams its microphone over its own socket (web/mic_socket.py).
        self._mic_sockets: weakref.WeakSet[VoiceSession] = weakref.WeakSet()
        # The page's listener of each session's events, from its start: nothing is lost before the pump runs.
        self._page_events: weakref.WeakKeyDictionary[VoiceSession, Listener[SessionEvent]] = weakref.WeakKeyDictionary()

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
        self._stop_local(self._local_playback)
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
        self._page_events[session] = session.events.listen("page")
        # The page's player reports each sentence it starts: only those count as heard.  On this
        # machine's speaker (--local-audio) a sentence is heard as it is handed to playback.
        session.speech.page_confirms = self._local_speaker is None
        if self._local_speaker is not None:
            from voice.local_audio import play_replies

            # --local-audio: this machine's speaker listens to the session's events on its own.
            self._stop_local(self._local_playback)
            self._local_playback = asyncio.create_task(
                play_replies(session.events.listen("local-speaker"), self._local_speaker), name="local-speaker"
            )
        if self._local_mic is not None:
            # --local-audio: this machine's microphone feeds the session (one tab at a time).
            if self._local_capture is not None:
                self._local_capture.cancel()
            self._local_capture = asyncio.create_task(self._local_mic.run(session), name="local-mic")
            self._local_capture.add_done_callback(_log_capture_failure)
        yield "Pre-warming…" if session.settings.connection_strategy == "prewarmed" else "Listening…"

    async def stop(self, request: gr.Request) -> str:
        """'Stop': cancel work in flight, close the connection, end the session."""
        self._stop_local(self._local_capture)
        self._stop_local(self._local_playback)
        self._local_capture = self._local_playback = None
        self._hearing.discard(request.session_hash or "")
        if self._registry is not None:
            await self._registry.close(request.session_hash or "")
        return "Session ended. Click **Start speaking** to talk again."

    async def hear_stream(self, chunk: tuple[int, np.ndarray] | None, request: gr.Request, evt: gr.EventData) -> None:
        """The microphone stream's handler: web/uplink.js puts each chunk's capture time in its event data."""
        # Gradio hands a handler its event's payload only as EventData._data (its own subclasses
        # read it the same way); uplink.js's capture times ride in that payload.
        await self.hear(chunk, request, page_times(evt._data))

    async def hear(
        self, chunk: tuple[int, np.ndarray] | None, request: gr.Request, page: PageTimes | None = None
    ) -> None:
        """A chunk of browser microphone audio from Gradio's streaming microphone (48 kHz int16,
        usually), and when the page captured and sent it on its clock (None: the page did not say)."""
        arrived_at = time.perf_counter()
        session = await self._session(request)
        if session is None or chunk is None:
            return
        if session in self._mic_sockets:
            return  # the page's own microphone path (web/mic_socket.py) carries this tab's audio
        try:  # whatever the browser sends: an exception here would end the microphone stream
            rate, samples = chunk
            audio = None if samples is None else np.asarray(samples)
            if audio is None or audio.size == 0:
                return
            await self.feed_microphone(session, audio, int(rate), page, arrived_at, MicPath.GRADIO)
        except (ValueError, TypeError) as exc:
            log.warning("Unusable audio chunk ignored: %s", exc)

    def open_session(self, session_hash: str) -> VoiceSession | None:
        """The live session of the tab with Gradio's ``session_hash``, or None (none open, or closed)."""
        session = None if self._registry is None else self._registry.get(session_hash)
        return None if session is None or session.closed else session

    @contextlib.contextmanager
    def microphone_socket(self, session: VoiceSession) -> Iterator[None]:
        """While the page's microphone socket is open for ``session``, Gradio's microphone stream
        (the fallback) is not fed too: one path at a time carries the tab's audio."""
        self._mic_sockets.add(session)
        try:
            yield
        finally:
            self._mic_sockets.discard(session)

    async def feed_microphone(
        self,
        session: VoiceSession,
        audio: np.ndarray,
        rate: int,
        page: PageTimes | None,
        arrived_at: float,
        path: MicPath,
    ) -> None:
        """Microphone audio that arrived at ``arrived_at`` (server ``perf_counter``) over ``path``,
        with the page's times for it (None: not said), into the tab's session.  Raises ValueError
        or TypeError for audio the session cannot use."""
        if session.session_id not in self._hearing:
            self._hearing.add(session.session_id)
            log.info(
                "Microphone audio arriving for session %s over %s: %s Hz, %s %s",
                session.session_id,
                path.value,
                rate,
                audio.shape,
                audio.dtype,
            )
        uplink = self._links.get(session)  # the audio's capture time, where the page gives it
        capture = None if uplink is None else uplink.arrived(page, arrived_at, path)
        if capture is not None:
            session.chunk_captured(capture)
        await session.feed_audio(audio, rate, received_at=arrived_at)

    async def playback_started(self, report: str, request: gr.Request) -> None:
        """web/player.js says a turn's first audio has started playing (see VoiceSession.playback_started)."""
        session = await self._session(request)
        if session is None:
            return
        for played in player_messages.playback_reports(report, session.instance_id):
            session.playback_started(played.turn, played.player_ms, played.sentence)

    async def pong(self, report: str, request: gr.Request) -> None:
        """web/player.js answers the server's pings (see voice.browser_link)."""
        session = await self._session(request)
        link = None if session is None else self._links.get(session)
        if session is None or link is None or session.closed:
            return
        for answer in parse_pongs(report, session.instance_id):
            trip = link.link.pong(answer)
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
        view = PageView(session)
        self._links[session] = view.uplink
        with self._page_events.pop(session, None) or session.events.listen("page") as events:
            yield view.render(chart=True)
            seq = 0
            while not session.closed:
                try:
                    event = await asyncio.wait_for(events.get(), timeout=1.0)
                except TimeoutError:
                    yield view.render()  # refresh connection state and facts
                    continue
                out = view.apply(event)
                barge_in = isinstance(event, BargeIn)
                audio: str | None = None
                # With --local-audio the reply plays on this machine's speaker (its own listener), not the page.
                if self._local_speaker is None and (out is not None or barge_in):
                    seq += 1
                    audio = player_messages.audio_payload(
                        session.instance_id, [(seq, out)] if out else [], flush=barge_in
                    )
                yield view.render(audio=audio, chart=isinstance(event, TurnDone))
        if (await self._session(request)) not in (None, session):
            return  # the tab started a new session: its own pump speaks for the page now
        view.status = "Session ended."
        yield view.render(chart=True)

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

    @staticmethod
    def _stop_local(task: asyncio.Task[None] | None) -> None:
        if task is not None:
            task.cancel()


def _log_capture_failure(task: asyncio.Task[None]) -> None:
    # Nobody awaits the --local-audio capture task: its error (a microphone that cannot open)
    # would otherwise surface only as "Task exception was never retrieved" with a traceback.
    if not task.cancelled() and task.exception() is not None:
        log.error("Local microphone stopped: %s", task.exception())
