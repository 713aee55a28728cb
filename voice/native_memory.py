"""Keep the C heap that Whisper, Piper and Silero allocate from returning to where it started.

glibc gives each thread that calls ``malloc`` its own arena, up to eight per core.  Piper's
and Silero's ONNX runs and CTranslate2's decodes happen on several worker threads at once,
so after ten concurrent sessions freed blocks lay scattered over a dozen arenas, each one
pinned by a few live blocks: ``malloc_trim`` could hand back only whole free pages and the
process kept creeping up (+50, +80, +95 MB over four rounds of ten Piper and two Whisper
runs at once).  Two arenas keep the freed memory together: the same four rounds ended within
+5 MB of the start, after ``malloc_trim``.

Both functions are no-ops where glibc is not the allocator (macOS, musl).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os

log = logging.getLogger(__name__)

MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # from glibc's <malloc.h>


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process; True if the cap is now in force.

    glibc fixes its arena limit the first time a ninth arena is needed, so call this early,
    before worker threads start.  An explicit ``MALLOC_ARENA_MAX`` in the environment (read by
    glibc itself) is left alone.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _libc()
    if libc is None:
        return False
    applied = bool(libc.mallopt(_M_ARENA_MAX, arenas))
    if applied:
        log.debug("glibc malloc arenas capped at %d", arenas)
    return applied


def release_freed_memory() -> None:
    """Give memory freed by finished sessions back to the OS (glibc keeps it cached otherwise).

    After ten sessions at once the process held ~670 MB of freed pages until ``malloc_trim``
    (measured by the load test).
    """
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(OSError):
            libc.malloc_trim(0)
