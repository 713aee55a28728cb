"""What llama.cpp did with each prompt: how much came from its cache, read from its own log.

llama.cpp keeps the previous request's tokens in its KV cache; a new prompt that starts with
the same tokens (the same system prompt, examples and history) only evaluates what follows.
llama-cpp-python's server says so on stderr for every completion (it runs verbose by default):

* ``Llama.generate: 187 prefix-match hit, remaining 13 prompt tokens to eval`` when the
  prompt's start was cached (no such line when nothing was);
* ``llama_perf_context_print: prompt eval time = 72.69 ms / 13 tokens`` when the completion
  ends (not for one cut off by its client).  Only its token count is used: its time reads
  ~0 ms for a whole prompt evaluated in one batch, so the time to first token is measured by
  the client instead.

:func:`parse_prompt_cache_log` turns those lines into one :class:`PromptCacheReport` per
completion.  The embedded server queues requests and runs one at a time, so each completion's
lines come together, in the order the completions ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit, remaining (\d+) prompt tokens to eval")
_WHOLE = "Llama.generate: full prompt already cached"
_EVAL = re.compile(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens")


@dataclass(frozen=True)
class PromptCacheReport:
    """One completion's prompt, as llama.cpp reported it.

    ``reused_tokens``: prompt tokens taken from the KV cache (the start the prompt shares with
    the tokens of the request before); 0 on a miss; None when llama.cpp said the whole prompt
    was already cached.  ``evaluated_tokens``: prompt tokens it computed for this request.
    ``completed``: False for a completion cut off by its client before the end (llama.cpp
    prints its timings only at the end), or still running when the log was read.
    """

    reused_tokens: int | None
    evaluated_tokens: int
    completed: bool = True

    @property
    def hit(self) -> bool:
        """True when part of the prompt came from the cache."""
        return self.reused_tokens is None or self.reused_tokens > 0

    def describe(self) -> str:
        """``"187 cached + 13 evaluated"``: one line for a report or a log."""
        cached = "whole prompt cached" if self.reused_tokens is None else f"{self.reused_tokens} cached"
        return f"{cached} + {self.evaluated_tokens} evaluated" + ("" if self.completed else " (cut off)")


def parse_prompt_cache_log(text: str) -> list[PromptCacheReport]:
    """One report per completion found in ``text`` (llama-cpp-python server output), in order.

    A cache-hit line opens a completion; the timings line closes it (a completion with no hit
    line reused nothing).  A hit line followed by another hit line belongs to a completion cut
    off before its timings: it is reported with ``completed`` False, as is one still running at
    the end of ``text``.
    """
    reports: list[PromptCacheReport] = []
    pending: tuple[int | None, int] | None = None  # (reused, to evaluate) of an open completion
    for line in text.splitlines():
        hit = _HIT.search(line)
        whole = hit is None and _WHOLE in line
        if hit is not None or whole:
            if pending is not None:
                reports.append(PromptCacheReport(*pending, completed=False))
            pending = (int(hit.group(1)), int(hit.group(2))) if hit is not None else (None, 0)
            continue
        timings = _EVAL.search(line)
        if timings is not None:
            reused, evaluated = pending if pending is not None else (0, int(timings.group(1)))
            reports.append(PromptCacheReport(reused, evaluated))
            pending = None
    if pending is not None:
        reports.append(PromptCacheReport(*pending, completed=False))
    return reports
