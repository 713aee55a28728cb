"""One voice session per browser tab, with limits: how many at once, how long idle, how long at all."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from voice.native_memory import release_freed_memory
from voice.session import VoiceSession

log = logging.getLogger(__name__)


class TooManySessions(RuntimeError):
    """Every session slot is taken; the message is shown to the user as is."""


class SessionRegistry:
    """Maps a tab's key (Gradio's session hash) to its :class:`VoiceSession`.

    A tab only ever reaches its own session: there is no way to list or fetch another's.
    """

    def __init__(
        self,
        factory: Callable[[str], VoiceSession],
        *,
        max_sessions: int,
        idle_timeout_s: float,
        max_age_s: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._factory = factory
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self._clock = clock
        self._sessions: dict[str, tuple[VoiceSession, float]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, key: str) -> VoiceSession | None:
        """The tab's live session, or None."""
        entry = self._sessions.get(key)
        if entry is None or entry[0].closed:
            return None
        return entry[0]

    async def open(self, key: str, **options: Any) -> VoiceSession:
        """A fresh, started session for ``key`` (closing the tab's previous one).

        ``options`` go to :meth:`VoiceSession.configure` before it starts, so its first
        connection pool is already the requested one (no pool opened only to be replaced).
        """
        await self.close(key)
        await self.reap()
        if len(self._sessions) >= self.max_sessions:
            raise TooManySessions(
                f"WarmVoice is busy: {self.max_sessions} conversations are already running. "
                "Please try again in a minute."
            )
        session = self._factory(key)
        self._sessions[key] = (session, self._clock())
        try:
            if options:
                await session.configure(**options)
            await session.start()
        except BaseException:
            self._sessions.pop(key, None)
            await session.stop()
            raise
        return session

    async def close(self, key: str) -> None:
        """Stop and forget the tab's session (tab closed, Stop clicked)."""
        entry = self._sessions.pop(key, None)
        if entry is not None:
            await entry[0].stop()
            await asyncio.to_thread(release_freed_memory)

    async def reap(self) -> int:
        """Close sessions idle for too long or older than the limit; returns how many."""
        now = self._clock()
        expired = [
            key
            for key, (session, created) in self._sessions.items()
            if session.closed or now - session.last_activity > self.idle_timeout_s or now - created > self.max_age_s
        ]
        for key in expired:
            log.info("Session %s expired (idle or too old); closing it", key)
            await self.close(key)
        return len(expired)

    async def run_reaper(self, interval_s: float = 30.0) -> None:
        """Reap expired sessions every ``interval_s`` until cancelled (a tab that vanished
        without its unload event still gets its connection closed)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reap()
            except Exception:  # one bad session must not stop the reaper
                log.exception("Session reaper failed; retrying in %.0f s", interval_s)

    async def close_all(self) -> None:
        """Stop every session (server shutdown)."""
        await asyncio.gather(*(self.close(key) for key in list(self._sessions)), return_exceptions=True)
