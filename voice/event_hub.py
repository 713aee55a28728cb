"""A session's events, fanned out to every listener: the page, this machine's speaker, a benchmark.

Each listener has a bounded queue of its own.  The session publishes without ever waiting: a
listener that falls behind loses its *oldest* events, and counts them by kind (and the log says
so), so one slow reader can neither block the session nor grow its memory, and the others do
not notice.  What each listener gets is everything published while it listens, in order, plus,
first of all, the latest of the events the hub keeps (``keep_latest``: the session's status
line), so one that joins late still knows where things stand.

Pipecat's observers and livekit-agents' ``metrics_collected`` listeners work the same way: the
producer does not know who listens.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# A page's pump renders the panel for each event: a reply's audio chunks arrive in a burst faster
# than that, so a listener holds a few replies' worth before anything is dropped.
DEFAULT_MAXSIZE = 1024


class Listener(Generic[T]):
    """One reader's bounded queue of a hub's events.  ``with hub.listen(...) as events:`` stops
    listening on exit (so does :meth:`close`)."""

    def __init__(self, hub: EventHub[T], name: str, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("a listener holds at least one event")
        self.name = name
        self.maxsize = maxsize
        self.drops: Counter[str] = Counter()  # events lost because this listener fell behind, by kind
        self._hub = hub
        self._queue: asyncio.Queue[T] = asyncio.Queue()

    @property
    def dropped(self) -> int:
        """How many events this listener lost (its oldest, when it fell ``maxsize`` behind)."""
        return self.drops.total()

    async def get(self) -> T:
        """The next event, waiting for one."""
        return await self._queue.get()

    def get_nowait(self) -> T:
        """The next event; ``asyncio.QueueEmpty`` if none is waiting."""
        return self._queue.get_nowait()

    def empty(self) -> bool:
        """True when no event is waiting."""
        return self._queue.empty()

    def qsize(self) -> int:
        """How many events are waiting."""
        return self._queue.qsize()

    def close(self) -> None:
        """Stop listening: nothing more is queued here (what is queued can still be read)."""
        self._hub._forget(self)

    def __enter__(self) -> Listener[T]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _offer(self, event: T) -> None:
        if self._queue.qsize() >= self.maxsize:
            oldest = self._queue.get_nowait()
            self.drops[type(oldest).__name__] += 1
            if self.dropped & (self.dropped - 1) == 0:  # the 1st, 2nd, 4th, 8th... drop: said, not flooded
                log.warning(
                    "Listener %r fell behind: %d events dropped so far %s", self.name, self.dropped, dict(self.drops)
                )
        self._queue.put_nowait(event)


class EventHub(Generic[T]):
    """Publish once, every listener receives; never blocks the publisher.

    ``keep_latest``: which events are state rather than news (the latest one of them is handed
    first to a listener that joins later).
    """

    def __init__(self, *, keep_latest: Callable[[T], bool] | None = None) -> None:
        self._listeners: list[Listener[T]] = []
        self._keep_latest = keep_latest
        self._latest: T | None = None

    @property
    def listeners(self) -> list[Listener[T]]:
        """Who listens now."""
        return list(self._listeners)

    def listen(self, name: str, maxsize: int = DEFAULT_MAXSIZE) -> Listener[T]:
        """A new listener of everything published from now on (after the latest kept event)."""
        listener = Listener(self, name, maxsize)
        if self._latest is not None:
            listener._offer(self._latest)
        self._listeners.append(listener)
        return listener

    def publish(self, event: T) -> None:
        """Hand ``event`` to every listener (none: it is gone); returns at once."""
        if self._keep_latest is not None and self._keep_latest(event):
            self._latest = event
        for listener in self._listeners:
            listener._offer(event)

    def _forget(self, listener: Listener[T]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
