"""TLS for the loopback test servers: a certificate from a throw-away CA, and a client that trusts it."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import trustme


@dataclass(frozen=True)
class TLS:
    """A server context certified for ``localhost`` and ``127.0.0.1``, and a client context that trusts it."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def loopback_tls(ca: trustme.CA) -> TLS:
    """Both ends of a loopback TLS connection, certified by ``ca``."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return TLS(server_context, client_context)
