"""Time for the keep-warm scheduler, replaceable so its tests need not wait real seconds.

:class:`MonotonicClock` is the real one.  :class:`ManualClock` is the test double, shipped with
the library: time stands still until :meth:`ManualClock.advance` moves it, which wakes every
waiter whose deadline has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock in seconds, and a way to wait on it."""

    def now(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Return once ``event`` is set or ``timeout`` seconds of this clock have passed."""
        ...


class MonotonicClock:
    """``time.monotonic`` and the event loop's own timers."""

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Wait for ``event`` at most ``timeout`` real seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()


class ManualClock:
    """A clock that moves only when told to (for tests)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._tick = asyncio.Event()  # replaced by a fresh one on every advance()

    def now(self) -> float:
        """The current (manual) time."""
        return self._now

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Wait until ``event`` is set or :meth:`advance` has moved the clock ``timeout`` on."""
        deadline = self._now + timeout
        while not event.is_set() and self._now < deadline:
            waiters = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._tick.wait())}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)

    async def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` and let the waiters that are now due run."""
        self._now += seconds
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()
        for _ in range(10):  # a few loop turns: woken waiters run up to their next await
            await asyncio.sleep(0)
