"""WarmVoice's LLM layer: HTTP and the OpenAI wire format, nothing about audio.

The public API is what this module exports; everything else is private to ``llm``.
"""

from llm.chat import ChatMessage
from llm.client import ConnectionState, PooledLLMClient
from llm.clock import Clock, ManualClock, MonotonicClock
from llm.config import KeepWarm, PoolLimits, Timeouts
from llm.embedded_server import MODEL_ALIAS as EMBEDDED_MODEL
from llm.embedded_server import EmbeddedLLMServer, EmbeddedServerError, bundled_model_path, free_loopback_port
from llm.errors import (
    AuthError,
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMStreamError,
    LLMTimeoutError,
    public_endpoint,
)
from llm.latency_proxy import LatencyProxy
from llm.prompt_cache import PromptCacheReport, parse_prompt_cache_log
from llm.retry import RetryPolicy
from llm.secret import Secret, configure_logging, hide_in_logs
from llm.sentences import SentenceSplitter, SplitterConfig
from llm.strategies import STRATEGIES, STRATEGY_LABELS, STRATEGY_SHORT_LABELS, Strategy, parse_strategy
from llm.timing import (
    EVENT_CONNECTED,
    EVENT_DONE,
    EVENT_FAILED,
    EVENT_FIRST_SENTENCE,
    EVENT_FIRST_TOKEN,
    EVENT_KEEP_WARM,
    EVENT_REQUEST_STARTED,
    EVENT_RETRY,
    EVENT_STATUS,
    EVENT_WARMUP_DONE,
    EVENT_WARMUP_STARTED,
    ClientStats,
    LLMEvent,
    RequestTiming,
    WarmUpResult,
    format_ms,
)

__all__ = [
    "EMBEDDED_MODEL",
    "EVENT_CONNECTED",
    "EVENT_DONE",
    "EVENT_FAILED",
    "EVENT_FIRST_SENTENCE",
    "EVENT_FIRST_TOKEN",
    "EVENT_KEEP_WARM",
    "EVENT_REQUEST_STARTED",
    "EVENT_RETRY",
    "EVENT_STATUS",
    "EVENT_WARMUP_DONE",
    "EVENT_WARMUP_STARTED",
    "STRATEGIES",
    "STRATEGY_LABELS",
    "STRATEGY_SHORT_LABELS",
    "AuthError",
    "ChatMessage",
    "ClientStats",
    "Clock",
    "ConnectionState",
    "EmbeddedLLMServer",
    "EmbeddedServerError",
    "KeepWarm",
    "LLMConnectionError",
    "LLMError",
    "LLMEvent",
    "LLMHTTPError",
    "LLMStreamError",
    "LLMTimeoutError",
    "LatencyProxy",
    "ManualClock",
    "MonotonicClock",
    "PoolLimits",
    "PooledLLMClient",
    "PromptCacheReport",
    "RequestTiming",
    "RetryPolicy",
    "Secret",
    "SentenceSplitter",
    "SplitterConfig",
    "Strategy",
    "Timeouts",
    "WarmUpResult",
    "bundled_model_path",
    "configure_logging",
    "format_ms",
    "free_loopback_port",
    "hide_in_logs",
    "parse_prompt_cache_log",
    "parse_strategy",
    "public_endpoint",
]
