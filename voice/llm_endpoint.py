"""Which LLM the app talks to, and the embedded server's life when it is the local one."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from llm import EmbeddedLLMServer, Secret, public_endpoint
from voice.settings import Settings

log = logging.getLogger(__name__)

# Shown on the page next to the conversation while the bundled model answers (issue #23).
SMALL_MODEL_CAVEAT = (
    "Answers come from SmolLM2-135M, a small offline model that is wrong on many facts. "
    "For real answers set `OPENAI_API_KEY`, or `OPENAI_BASE_URL` to an Ollama, vLLM or llama.cpp server."
)


def answers_with_bundled_model(settings: Settings) -> bool:
    """True when ``settings`` leave the bundled SmolLM2-135M to answer: no endpoint, no key, and
    no other local model (EMBEDDED_MODEL)."""
    return settings.uses_embedded_llm and not settings.embedded_model


def model_caveat(settings: Settings) -> str | None:
    """The line the page shows about the model that answers, or None when it needs none."""
    return SMALL_MODEL_CAVEAT if answers_with_bundled_model(settings) else None


@dataclass
class LLMEndpoint:
    """The resolved endpoint: base URL, model, key, and the embedded server if one runs.

    Shared by every session of the process (one embedded server per process).  ``ssl`` is the
    context that trusts the endpoint's certificate when the system's CAs do not (a private CA,
    e.g. the benchmark's embedded server over TLS); None verifies against the system's CAs.
    """

    base_url: str
    model: str
    api_key: Secret
    reason: str
    server: EmbeddedLLMServer | None = None
    ssl: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMEndpoint:
        """Resolve the endpoint; the embedded server is created but not started."""
        if settings.openai_base_url:
            reason = "OPENAI_BASE_URL is set"
        elif settings.openai_api_key:
            reason = "OPENAI_API_KEY is set and OPENAI_BASE_URL is not: using OpenAI"
        else:
            model_path = Path(settings.embedded_model).expanduser() if settings.embedded_model else None
            what = f"{model_path.name} (EMBEDDED_MODEL)" if model_path is not None else "SmolLM2"
            server = EmbeddedLLMServer(model_path)
            return cls(
                base_url="",
                model=settings.llm_model or server.model_alias,
                api_key=Secret(""),
                reason=f"no OPENAI_API_KEY and no OPENAI_BASE_URL: embedded llama.cpp server with {what}",
                server=server,
            )
        return cls(settings.resolved_base_url, settings.resolved_model, settings.openai_api_key, reason)

    @property
    def is_embedded(self) -> bool:
        """True when the LLM is the local llama.cpp child process."""
        return self.server is not None

    def start(self, prefix: Sequence[Mapping[str, str]] = ()) -> None:
        """Start the embedded server if there is one and prime its model with ``prefix``, the
        messages every request starts with (blocking; seconds).  Logs the choice."""
        if self.server is not None:
            self.base_url = self.server.start()
            log.info("Embedded model primed in %.0f ms", self.server.prime(prefix))
        log.info(
            "LLM backend: %s at %s (model %s) - %s",
            "embedded" if self.is_embedded else "remote",
            public_endpoint(self.base_url),
            self.model,
            self.reason,
        )

    async def ensure_running(self) -> bool:
        """Restart a dead embedded server (off the event loop); True if it had died."""
        if self.server is None:
            return False
        restarted = await asyncio.to_thread(self.server.ensure_running)
        if restarted:
            self.base_url = self.server.base_url
        return restarted

    def close(self) -> None:
        """Stop the embedded server, if any."""
        if self.server is not None:
            self.server.stop()
