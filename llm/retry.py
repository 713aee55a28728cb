"""When to try a request again, and how long to wait first (as the OpenAI SDK does)."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

# Besides every 5xx: request time-out, conflict (a lock), rate limit.
RETRY_STATUSES = frozenset({408, 409, 429})
MAX_HONOURED_RETRY_AFTER_S = 60.0  # beyond this the header is ignored and the back-off used


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries with exponential back-off from ``base_delay`` (doubling, at most
    ``max_delay``, minus up to 25 % jitter), or the server's Retry-After capped at
    ``retry_after_cap``."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    retry_after_cap: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0 or self.retry_after_cap < 0:
            raise ValueError("retry settings must not be negative")

    def delay(
        self, retries_done: int, retry_after: float | None = None, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        if retry_after is not None and 0 <= retry_after <= MAX_HONOURED_RETRY_AFTER_S:
            return min(retry_after, self.retry_after_cap)
        if retry_after is not None and retry_after > MAX_HONOURED_RETRY_AFTER_S:
            return self.retry_after_cap
        backoff = min(self.base_delay * 2.0**retries_done, self.max_delay)
        return backoff * (1.0 - 0.25 * rand())


def status_is_retryable(status: int, headers: Mapping[str, str]) -> bool:
    """408/409/429/5xx are worth another try, unless ``x-should-retry`` says otherwise."""
    verdict = headers.get("x-should-retry", "").strip().lower()
    if verdict in ("true", "false"):
        return verdict == "true"
    return status in RETRY_STATUSES or status >= 500


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), if given."""
    value = headers.get("retry-after-ms", "").strip()
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
