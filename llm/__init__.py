"""WarmVoice's LLM layer: HTTP and the OpenAI wire format, nothing about audio.

The public API is what this module exports; everything else is private to ``llm``.
"""

from llm.secret import Secret, configure_logging

__all__ = ["Secret", "configure_logging"]
