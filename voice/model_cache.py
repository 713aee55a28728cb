"""Read-only models, loaded once per process and shared by every session.

faster-whisper keeps its models the same way: a cached getter.  The lock makes the load happen
once even when two threads ask at the same moment (a session's first Piper sentence on a worker
thread while the runtime warms up); a load that fails is not cached, so the next call tries again.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


def load_once(loader: Callable[..., T]) -> Callable[..., T]:
    """``loader`` run at most once per distinct (hashable, positional) arguments; later calls
    return the same object.  Thread-safe; blocking while a load runs."""
    cached = functools.cache(loader)
    lock = threading.Lock()

    @functools.wraps(loader)
    def get(*args: Hashable) -> T:
        with lock:
            return cached(*args)

    return get
