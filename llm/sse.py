"""Server-Sent Events framing (the WHATWG "event stream" format), incremental and pure.

Bytes go in as they arrive from the socket (split anywhere, even inside a UTF-8 character or
between ``\\r`` and ``\\n``); complete events come out.  Knows nothing about OpenAI.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

MAX_LINE_CHARS = 1 << 20  # a line longer than 1 MiB is not a token stream: refuse it
_LINE_END = re.compile(r"\r\n|\r|\n")


class SSEError(ValueError):
    """The byte stream is not a valid or reasonable event stream."""


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event.  ``data`` joins multi-line ``data:`` fields with ``\\n``."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    """Incremental parser: :meth:`feed` bytes, get the events they completed."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._first_line = True
        self.comments = 0  # ":" lines seen (servers send them as keep-alives)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add raw bytes; return every event completed by a blank line."""
        self._text += self._decoder.decode(chunk)
        return self._drain(final=False)

    def close(self) -> list[SSEEvent]:
        """End of stream.  Unlike the strict spec, an event whose blank line never came is
        still dispatched: some servers end the body right after ``data: [DONE]``."""
        self._text += self._decoder.decode(b"", final=True)
        events = self._drain(final=True)
        if self._text:
            self._line(self._text, events)
            self._text = ""
        if self._data:
            events.append(self._dispatch())
        return events

    def _drain(self, *, final: bool) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        pos = 0
        text = self._text
        for match in _LINE_END.finditer(text):
            if match.group() == "\r" and match.end() == len(text) and not final:
                break  # maybe the first half of "\r\n": wait for the next byte
            self._line(text[pos : match.start()], events)
            pos = match.end()
        self._text = text[pos:]
        if len(self._text) > MAX_LINE_CHARS:
            raise SSEError(f"event-stream line longer than {MAX_LINE_CHARS} characters")
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if not line:
            if self._data:
                events.append(self._dispatch())
            else:
                self._event = ""
            return
        if line.startswith(":"):
            self.comments += 1
            return
        name, sep, value = line.partition(":")
        if sep:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        # "retry" and unknown fields are ignored, as the spec says.

    def _dispatch(self) -> SSEEvent:
        event = SSEEvent(data="\n".join(self._data), event=self._event or "message", id=self._id)
        self._data = []
        self._event = ""
        return event
