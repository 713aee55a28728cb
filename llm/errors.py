"""What can go wrong talking to the LLM endpoint, as a small exception hierarchy.

Every error names the endpoint (scheme, host, port and path: never credentials or query)
and the HTTP status when there was one.  None of them ever contains the API key.
"""

from __future__ import annotations

from yarl import URL


def public_endpoint(url: str) -> str:
    """``url`` without user info, query or fragment, safe for logs and error messages."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "<invalid url>"
    if not parsed.is_absolute():
        return str(parsed.with_query(None).with_fragment(None))
    return str(parsed.with_user(None).with_password(None).with_query(None).with_fragment(None))


class LLMError(Exception):
    """Base of every LLM client error.

    ``endpoint``: the URL that failed, without credentials.  ``status``: the HTTP status
    code, or None when no response arrived.  ``retryable``: whether trying again may help.
    """

    retryable = False

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.status = status


class AuthError(LLMError):
    """HTTP 401/403: the API key was rejected.  Never retried; the message starts with
    "API key rejected"."""


class LLMHTTPError(LLMError):
    """Any other non-2xx answer.  ``retry_after`` is the server's Retry-After in seconds."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.retry_after = retry_after
        self.retryable = retryable


class LLMConnectionError(LLMError):
    """No HTTP response at all: DNS failure, refused, TLS failure, dropped before the status.

    The message starts with "endpoint unreachable".
    """

    retryable = True


class LLMTimeoutError(LLMError):
    """A time-out; ``phase`` says which one: "connect", "first_byte" or "chunk".

    A connect time-out is retried like a connection error and its message starts with
    "endpoint unreachable"; the others are not retried (the turn has waited long enough).
    """

    def __init__(
        self, message: str, *, phase: str, timeout_s: float, endpoint: str = "", status: int | None = None
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.phase = phase
        self.timeout_s = timeout_s
        self.retryable = phase == "connect"


class LLMStreamError(LLMError):
    """The response started but the stream broke: dropped connection, malformed SSE,
    invalid JSON, or an ``error`` object sent inside the stream."""
