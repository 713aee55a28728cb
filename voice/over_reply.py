"""Speech over the reply, judged in the background: does it stop the reply, or is it ignored?

Whisper hears what the user says over the assistant (:mod:`voice.turns.interruption` decides from
it): while the speech goes on, its words so far may confirm a barge-in (:meth:`OverReply.check`);
once it ends without having stopped the reply, it is a backchannel to ignore or a turn of its
own (:meth:`OverReply.screen`).  Each transcript runs off the event loop, in a task of its own,
so the microphone is never held up; the session waits for them with :meth:`OverReply.settled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Protocol

import numpy as np

from voice.recognizer import SpeechRecognizer
from voice.turns import DetectedTurn, InterruptionScreen

log = logging.getLogger(__name__)


class Session(Protocol):
    """What the judgement needs of its session."""

    transcriber: SpeechRecognizer
    closed: bool

    @property
    def busy(self) -> bool: ...


class OverReply:
    """One session's transcripts of speech over its reply.  ``voiced_ms``: the speech's voiced
    length so far; ``barge_in``: stop the reply; ``begin``: the speech becomes a turn, judged
    over at the given ``perf_counter`` stamp."""

    def __init__(
        self,
        session: Session,
        interruption: InterruptionScreen,
        *,
        voiced_ms: Callable[[], float],
        barge_in: Callable[[], Awaitable[None]],
        begin: Callable[[DetectedTurn, float], object],
        clock: Callable[[], float],
    ) -> None:
        self._session = session
        self._interruption = interruption
        self._voiced_ms = voiced_ms
        self._barge_in = barge_in
        self._begin = begin
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def check(self, utterance: int, audio: np.ndarray) -> None:
        """Speech over the reply goes on: its words so far may stop it."""
        self._in_background(self._check(utterance, audio))

    def screen(self, detected: DetectedTurn) -> None:
        """Speech over the reply ended before stopping it: it is ignored or interrupts (capped: interrupts)."""
        self._in_background(self._screen(detected))

    async def settled(self) -> None:
        """Wait until every transcript under way is judged, including any started meanwhile."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def cancel(self) -> None:
        """Stop every transcript under way (the session stops)."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _in_background(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(coro, name="screen-interruption")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(self, utterance: int, audio: np.ndarray) -> None:
        session = self._session
        heard = await asyncio.to_thread(session.transcriber.transcribe, audio)
        if not session.closed and self._interruption.checked(utterance, heard, self._voiced_ms(), session.busy):
            await self._barge_in()

    async def _screen(self, detected: DetectedTurn) -> None:
        session = self._session
        endpoint_at = self._clock()
        spec = detected.speculation
        if not detected.ended.capped:
            if spec is not None and spec.task is not None:
                transcript = await spec.task
            else:
                transcript = await asyncio.to_thread(session.transcriber.transcribe, detected.ended.audio)
            if self._interruption.ignored(transcript):
                log.info("Speech over the reply ignored as a backchannel: %r", transcript.text)
                return
        if session.closed:
            return
        if session.busy:
            await self._barge_in()
        self._begin(detected, endpoint_at)
