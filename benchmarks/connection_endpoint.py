"""Where the connection benchmark's requests go: a real remote API, or the embedded llama.cpp server
(over TLS with a throw-away certificate unless ``--no-tls``), each behind the latency proxy that
forwards to its host and port.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from benchmarks.common import TlsFiles
from benchmarks.connection_records import EndpointInfo
from llm import EMBEDDED_MODEL, EmbeddedLLMServer, Secret, public_endpoint


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: the URL the client uses (its host names the TLS certificate) and the
    host and port the latency proxy forwards to."""

    base_url: str
    target_host: str
    target_port: int
    api_key: Secret
    model: str
    ssl_context: ssl.SSLContext | None
    info: EndpointInfo


def remote_endpoint(base_url: str, api_key: Secret, model: str) -> Endpoint:
    """A real OpenAI-compatible API; the proxy fronts its host and port, TLS verified as usual."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("--base-url must be an absolute http:// or https:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    tls = parts.scheme == "https"
    info = EndpointInfo(
        kind="remote",
        base_url=public_endpoint(base_url),
        model=model,
        tls=tls,
        description=f"remote API {public_endpoint(base_url)} ({'TLS' if tls else 'plain HTTP'}) behind the "
        f"latency proxy (which adds the emulated RTT on top of the real network distance; the proxy, not "
        f"the client, resolves the host name)",
    )
    return Endpoint(base_url.rstrip("/"), parts.hostname, port, api_key, model, None, info)


def embedded_endpoint(server: EmbeddedLLMServer, api_key: Secret, tls: TlsFiles | None) -> Endpoint:
    """The started embedded server, over TLS when ``tls`` is given."""
    assert server.port is not None
    scheme = "TLS 1.3 with a throw-away trustme certificate" if tls else "plain HTTP (--no-tls)"
    info = EndpointInfo(
        kind="embedded",
        base_url=server.base_url,
        model=EMBEDDED_MODEL,
        tls=tls is not None,
        description=(
            f"the embedded llama.cpp server (uvicorn, SmolLM2-135M-Instruct Q4_1 GGUF) on loopback, {scheme}, "
            f"behind the latency proxy"
        ),
    )
    return Endpoint(
        server.base_url,
        "127.0.0.1",
        server.port,
        api_key,
        EMBEDDED_MODEL,
        tls.client_context if tls else None,
        info,
    )
