"""A string that refuses to be printed: the API key travels only as ``Secret``."""

from __future__ import annotations

import logging


class Secret:
    """Wraps a credential so that ``str``, ``repr`` and f-strings never reveal it.

    Only :meth:`reveal` returns the value, and the client calls it in exactly one
    place: when it builds the ``Authorization`` header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value.  Use it for the Authorization header and nothing else."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('<hidden>')" if self._value else "Secret('')"

    __str__ = __repr__


class RedactingFilter(logging.Filter):
    """Replaces every registered secret in a log record's final text with ``<hidden>``.

    A last line of defence: the code never logs the key, but a third-party library
    might echo a header.  Attach it to the root handlers (``configure_logging`` does).
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: Secret) -> None:
        """Start hiding ``secret`` (ignored when empty)."""
        if secret:
            self._secrets.add(secret.reveal())

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        changed = False
        for value in self._secrets:
            if value in text:
                text = text.replace(value, "<hidden>")
                changed = True
            if record.exc_text and value in record.exc_text:
                record.exc_text = record.exc_text.replace(value, "<hidden>")
        if changed:
            record.msg, record.args = text, None
        return True


REDACTOR = RedactingFilter()


def hide_in_logs(secret: Secret) -> None:
    """Replace ``secret`` with ``<hidden>`` in every line logged through :func:`configure_logging`."""
    REDACTOR.add(secret)


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """One log format for the whole process, with secrets redacted from every line."""
    root = logging.getLogger()
    if not any(getattr(h, "_warmvoice", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(REDACTOR)
        handler._warmvoice = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
