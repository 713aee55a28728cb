"""WarmVoice's LLM layer: HTTP and the OpenAI wire format, nothing about audio.

The public API is what this module exports; everything else is private to ``llm``.
"""

from llm.chat import ChatMessage
from llm.client import STRATEGIES, PooledLLMClient
from llm.errors import (
    AuthError,
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMStreamError,
    LLMTimeoutError,
    public_endpoint,
)
from llm.secret import Secret, configure_logging
from llm.sentences import SentenceSplitter, SplitterConfig
from llm.timing import ClientStats, RequestTiming, WarmUpResult

__all__ = [
    "STRATEGIES",
    "AuthError",
    "ChatMessage",
    "ClientStats",
    "LLMConnectionError",
    "LLMError",
    "LLMHTTPError",
    "LLMStreamError",
    "LLMTimeoutError",
    "PooledLLMClient",
    "RequestTiming",
    "Secret",
    "SentenceSplitter",
    "SplitterConfig",
    "WarmUpResult",
    "configure_logging",
    "public_endpoint",
]
