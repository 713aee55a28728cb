"""Word error rate, as the benchmarks count it: word edits over the reference's words, after
lower-casing, dropping punctuation and spelling numbers out (Whisper writes "24", a script
"twenty-four"), so a digit is not an error.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def words(text: str) -> list[str]:
    """The lower-case words of ``text`` (hyphenated and apostrophe words kept whole)."""
    return _WORD.findall(text.lower())


_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _spelled(token: str) -> list[str]:
    """A number below 1000 in words ("24" -> twenty four): Whisper writes digits, the panel words."""
    if not token.isdigit() or int(token) >= 1000:
        return [token]
    n = int(token)
    out: list[str] = []
    if n >= 100:
        out += [_ONES[n // 100], "hundred"]
        n %= 100
        if not n:
            return out
    if n < 20:
        return [*out, _ONES[n]]
    return [*out, _TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])


def _wer_words(text: str) -> list[str]:
    return [w for token in words(text.replace("-", " ")) for w in _spelled(token)]


def word_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) between two texts, after lower-casing, dropping punctuation
    and spelling out numbers; the WER is edits / reference words."""
    ref, hyp = _wer_words(reference), _wer_words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1], len(ref)
