"""Turning what aiohttp reports (exceptions, non-2xx answers) into :mod:`llm.errors`.

Every message names the endpoint; ``redact`` removes the API key from anything a server
sent back (a server may echo the Authorization header in its error text).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp

from llm.chat import error_summary
from llm.errors import AuthError, LLMConnectionError, LLMError, LLMHTTPError
from llm.retry import retry_after_seconds, status_is_retryable


class StaleConnectionError(LLMConnectionError):
    """A reused pooled connection died before any response byte: the server had closed it.
    The client retries at once on another connection; callers never see this error unless
    every pooled connection was dead.  ``protocol``: the dead connection, if known."""

    protocol: object = None


def connection_error(
    exc: BaseException, *, reused: bool, endpoint: str, redact: Callable[[str], str]
) -> LLMConnectionError:
    """The error for an attempt that got no HTTP status.  Messages start with
    "endpoint unreachable"; certificate and TLS failures are marked not retryable."""
    if (
        reused
        and isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)
        and not isinstance(exc, aiohttp.ClientConnectorError)
    ):
        return StaleConnectionError(
            f"endpoint unreachable: pooled connection to {endpoint} closed before the response",
            endpoint=endpoint,
        )
    retryable = True
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        detail = f"cannot resolve {exc.host} (DNS lookup failed)"
    elif isinstance(exc, aiohttp.ClientConnectorCertificateError):
        detail = f"TLS certificate of {exc.host} not trusted ({exc.certificate_error})"
        retryable = False
    elif isinstance(exc, aiohttp.ClientSSLError):
        detail = f"TLS handshake with {exc.host} failed"
        retryable = False
    elif isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or "connection failed"
        detail = f"cannot connect to {exc.host}:{exc.port} ({reason})"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        detail = "server closed the connection before answering"
    elif isinstance(exc, aiohttp.InvalidURL):
        detail = "invalid URL"
        retryable = False
    else:
        # Messages reach the user: the server's text (redacted), never an exception class name.
        detail = redact(str(exc))[:200] or "connection failed"
    error = LLMConnectionError(f"endpoint unreachable: {endpoint}: {detail}", endpoint=endpoint)
    error.retryable = retryable
    return error


def http_error(
    status: int, headers: Mapping[str, str], body: bytes, *, endpoint: str, redact: Callable[[str], str]
) -> LLMError:
    """The error for a non-2xx answer: :class:`AuthError` for 401/403, else
    :class:`LLMHTTPError` with the server's message, Retry-After and retryability."""
    if status in (401, 403):
        # The body may echo (part of) the key: leave it out entirely.
        return AuthError(f"API key rejected (HTTP {status} from {endpoint})", endpoint=endpoint, status=status)
    summary = redact(error_summary(body))
    return LLMHTTPError(
        f"HTTP {status} from {endpoint}" + (f": {summary}" if summary else ""),
        endpoint=endpoint,
        status=status,
        retry_after=retry_after_seconds(headers),
        retryable=status_is_retryable(status, headers),
    )
