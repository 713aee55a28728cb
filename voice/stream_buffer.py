"""A buffer between one producer task and one reader: items as they come, then the end.

The producer :meth:`~StreamBuffer.put`\\ s items without waiting (unbounded on purpose: it must
drain its source as fast as it can) and calls :meth:`~StreamBuffer.end` once, with the error it
met if any; the reader gets the buffered items at once, the rest as they arrive, and then that
error raised.  Used for sentences buffered ahead of a turn and audio synthesized ahead of playback.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class _End:
    """The sentinel after the last item; ``error`` is what ended the producer early, if anything."""

    error: BaseException | None = None


class StreamBuffer(Generic[T]):
    """Items from a producer, buffered until one reader drains them with ``async for``.

    A plain async iterator, not a generator: a reader that stops early leaves nothing to finalize.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self._ended = False  # the reader has seen the end

    def put(self, item: T) -> None:
        """Buffer one item (never waits)."""
        self._queue.put_nowait(item)

    def end(self, error: BaseException | None = None) -> None:
        """No more items; the reader raises ``error`` (if given) after the last one."""
        self._queue.put_nowait(_End(error))

    def __aiter__(self) -> StreamBuffer[T]:
        return self

    async def __anext__(self) -> T:
        """The next item (buffered ones at once); the producer's error after the last one."""
        if self._ended:
            raise StopAsyncIteration
        item = await self._queue.get()
        if not isinstance(item, _End):
            return item
        self._ended = True
        if item.error is not None:
            raise item.error
        raise StopAsyncIteration
