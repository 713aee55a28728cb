"""Smart Turn v3.2: an audio model that says whether the user sounds finished.

Pipecat's Smart Turn v3.2 (BSD-2, Daily) is a Whisper-encoder classifier that judges the
prosody of the last 8 s of 16 kHz speech and returns the probability that the turn is
complete.  The 8.7 MB ONNX file ships inside the ``pipecat-ai`` wheel; nothing is
downloaded at run time.

Why the ONNX file through onnxruntime, and not ``LocalSmartTurnAnalyzerV3``:

* importing anything under the ``pipecat`` package runs its ``__init__``, which on
  Python < 3.12 replaces ``asyncio.wait_for`` process-wide (``wait_for2``) and logs a
  banner through loguru: a global side effect on the app's one event loop;
* the analyzer keeps its own VAD-driven state machine and silence timer (``stop_secs``),
  a second endpointer competing with :mod:`voice.turns.endpointing`, and its own thread pool;
  WarmVoice only needs "given this audio, how complete does it sound?";
* its dependencies (numba, llvmlite, openai, loguru...) are not needed for that.

So this module finds the model and pipecat's own numpy-only Whisper feature code
(``_whisper_features.py``, the code the analyzer itself calls) by path in the installed
distribution, without importing the ``pipecat`` package, and runs the model with
onnxruntime exactly as ``LocalSmartTurnAnalyzerV3._predict_endpoint`` does: last 8 s
(zero-padded in front), Whisper log-mel with waveform normalisation, one inference.

The model runs on a pause (the caller decides when), in a worker thread: one inference
costs tens of milliseconds of CPU, far too much for every 32 ms audio frame and never
acceptable on the event loop.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime

from voice.audio import SAMPLE_RATE
from voice.model_cache import load_once

WINDOW_SAMPLES = 8 * SAMPLE_RATE  # the model sees the last 8 s
_DISTRIBUTION = "pipecat-ai"
_MODEL_PATH = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
_FEATURES_PATH = "pipecat/audio/turn/smart_turn/_whisper_features.py"


class SmartTurnUnavailable(RuntimeError):
    """The ``pipecat-ai`` distribution (and so the model) is not installed or is not the expected one."""


@dataclass(frozen=True)
class TurnPrediction:
    """The audio model's verdict on one pause.

    ``probability``: that the user has finished their turn (0..1).
    ``compute_ms``: CPU time the features and the inference took (for the breakdown).
    """

    probability: float
    compute_ms: float


def _locate(relative: str) -> Path:
    try:
        dist = importlib.metadata.distribution(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise SmartTurnUnavailable(
            f"the audio turn model needs the {_DISTRIBUTION!r} package (pip install -r requirements.txt)"
        ) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise SmartTurnUnavailable(f"{_DISTRIBUTION} {dist.version} does not ship {relative}")
    return path


def _load_features() -> Callable[..., np.ndarray]:
    """pipecat's ``compute_whisper_log_mel_features``, loaded from its file without the package's
    import-time side effects (see the module docstring)."""
    path = _locate(_FEATURES_PATH)
    spec = importlib.util.spec_from_file_location("warmvoice_smart_turn_features", path)
    if spec is None or spec.loader is None:
        raise SmartTurnUnavailable(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    features: Callable[..., np.ndarray] = module.compute_whisper_log_mel_features
    return features


class SmartTurnModel:
    """The loaded model.  ``predict`` is thread-safe (onnxruntime sessions are)."""

    def __init__(self) -> None:
        self._features = _load_features()
        opts = onnxruntime.SessionOptions()
        # One thread: a prediction runs next to Whisper's early transcript on a small machine.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(_locate(_MODEL_PATH)), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def predict(self, audio: np.ndarray) -> TurnPrediction:
        """Probability that ``audio`` (16 kHz mono float32, ending at the pause) is a finished turn.

        Blocking (tens of ms): call it from a worker thread.
        """
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected 1-D 16 kHz mono audio, got shape {samples.shape}")
        started = time.perf_counter()
        samples = samples[-WINDOW_SAMPLES:]
        if len(samples) < WINDOW_SAMPLES:  # pipecat pads in front: the speech ends the window
            samples = np.pad(samples, (WINDOW_SAMPLES - len(samples), 0))
        features = self._features(samples, do_normalize=True)[np.newaxis, ...]
        (out,) = self._session.run(None, {"input_features": features})
        probability = float(np.asarray(out).reshape(-1)[0])
        return TurnPrediction(probability=probability, compute_ms=(time.perf_counter() - started) * 1000.0)


@load_once
def smart_turn_model() -> SmartTurnModel:
    """The process-wide model (loaded on first use, thread-safe); read-only once loaded."""
    return SmartTurnModel()
