"""The edge-tts service's wire format, for the warm transport and the probe.

What is reused from ``edge_tts`` (tested with edge-tts 7.3.1; requirements.txt pins ``>=7.3,<7.4``): the service
URL and its TLS context (``communicate.WSS_URL``, ``communicate._SSL_CTX``, read at every
connect so a stand-in can replace them), the request-signing helper (``DRM``), the headers
(``WSS_HEADERS``, ``SEC_MS_GEC_VERSION``), ``connect_id``, ``TTSConfig``, ``mkssml``,
``ssml_headers_plus_data``, ``date_to_string``, ``remove_incompatible_characters`` and
``get_headers_and_data``.  Two steps have no public API -- ``Communicate`` builds the
``speech.config`` message and parses the responses inside its private ``__stream`` -- so
:func:`speech_config_message` and :func:`audio_of` follow edge-tts 7.3's code.

:func:`open_socket` and :func:`request_audio` are the two exchanges built from those pieces:
the warm transport and ``python -m benchmarks.edge_probe`` both speak through them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from xml.sax.saxutils import escape

import aiohttp
from edge_tts import communicate
from edge_tts.constants import SEC_MS_GEC_VERSION, WSS_HEADERS
from edge_tts.data_classes import TTSConfig
from edge_tts.drm import DRM

# edge-tts splits longer text into several requests; the warm path sends one, so longer
# (escaped, UTF-8) text goes through the plain path.
MAX_REQUEST_BYTES = 4096
END_OF_TURN = object()  # what audio_of returns for turn.end


class WarmTransportError(RuntimeError):
    """The warm socket failed (could not open, broke, or answered something unexpected)."""


async def connect_service(session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    """Open and upgrade one WebSocket to the service, signed as ``Communicate`` signs it."""
    # The URL, headers and signing exactly as Communicate builds them (edge-tts 7.x).
    url = (
        f"{communicate.WSS_URL}&ConnectionId={communicate.connect_id()}"
        f"&Sec-MS-GEC={DRM.generate_sec_ms_gec()}&Sec-MS-GEC-Version={SEC_MS_GEC_VERSION}"
    )
    return await session.ws_connect(
        url, compress=15, headers=DRM.headers_with_muid(WSS_HEADERS), ssl=communicate._SSL_CTX
    )


def ssml_message(escaped_text: str, voice: str) -> str:
    """The SSML request for already escaped text, built with edge-tts's own helpers."""
    ssml = communicate.mkssml(TTSConfig(voice, "+0%", "+0%", "+0Hz", "SentenceBoundary"), escaped_text)
    return communicate.ssml_headers_plus_data(communicate.connect_id(), communicate.date_to_string(), ssml)


def escape_text(text: str) -> str:
    """``text`` as edge-tts puts it into SSML (unsupported control characters blanked, XML-escaped)."""
    return escape(communicate.remove_incompatible_characters(text))


def speech_config_message() -> str:
    """The ``speech.config`` message as edge-tts 7.3 sends it (built inside ``Communicate``'s
    private ``__stream``; no public API): MP3 24 kHz, sentence boundaries."""
    return (
        f"X-Timestamp:{communicate.date_to_string()}\r\n"
        "Content-Type:application/json; charset=utf-8\r\n"
        "Path:speech.config\r\n\r\n"
        '{"context":{"synthesis":{"audio":{"metadataoptions":{'
        '"sentenceBoundaryEnabled":"true","wordBoundaryEnabled":"false"'
        "},"
        '"outputFormat":"audio-24khz-48kbitrate-mono-mp3"'
        "}}}}\r\n"
    )


def audio_of(message: aiohttp.WSMessage) -> bytes | object:
    """The MP3 bytes of one service message, ``b""`` for a message without audio, or
    :data:`END_OF_TURN` after ``turn.end``; raises :class:`WarmTransportError` on anything else.
    Follows the parser in edge-tts 7.3's ``__stream``."""
    if message.type == aiohttp.WSMsgType.TEXT:
        encoded = message.data.encode("utf-8")
        headers, _ = communicate.get_headers_and_data(encoded, encoded.find(b"\r\n\r\n"))
        path = headers.get(b"Path")
        if path == b"turn.end":
            return END_OF_TURN
        if path in (b"turn.start", b"response", b"audio.metadata"):
            return b""
        raise WarmTransportError(f"edge-tts sent an unknown message: {path!r}")
    if message.type == aiohttp.WSMsgType.BINARY:
        data = message.data
        if len(data) < 2:
            raise WarmTransportError("edge-tts sent a binary message without a header length")
        header_length = int.from_bytes(data[:2], "big")
        if header_length > len(data):
            raise WarmTransportError("edge-tts sent a header longer than its message")
        headers, audio = communicate.get_headers_and_data(data, header_length)
        if headers.get(b"Path") != b"audio":
            raise WarmTransportError("edge-tts sent a binary message that is not audio")
        if headers.get(b"Content-Type") not in (b"audio/mpeg", None) or (
            headers.get(b"Content-Type") is None and audio
        ):
            raise WarmTransportError("edge-tts sent audio with an unexpected Content-Type")
        return audio
    raise WarmTransportError(f"edge-tts socket closed mid-request ({message.type.name})")


async def open_socket(session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    """Connect, upgrade and configure (``speech.config`` sent) one socket to the service."""
    try:
        ws = await connect_service(session)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status != 403:
            raise
        # As edge-tts does: a 403 means our clock is off; correct it from the server's Date
        # header and sign again.
        DRM.handle_client_response_error(exc)
        ws = await connect_service(session)
    await ws.send_str(speech_config_message())
    return ws


async def request_audio(
    ws: aiohttp.ClientWebSocketResponse,
    receive: Callable[[], Awaitable[aiohttp.WSMessage]],
    escaped_text: str,
    voice: str,
) -> AsyncIterator[bytes]:
    """One request on an open socket: send the SSML, then yield the MP3 bytes until ``turn.end``.

    ``receive`` returns the socket's next message (``ws.receive``, or a reader task's queue).
    Every failure (send, malformed or unexpected message, no audio at all) raises
    :class:`WarmTransportError`.
    """
    try:
        await ws.send_str(ssml_message(escaped_text, voice))
    except (aiohttp.ClientError, OSError, ConnectionError) as exc:
        raise WarmTransportError(f"edge-tts socket broke on send: {type(exc).__name__}: {exc}") from exc
    audio = 0
    while True:
        try:
            data = audio_of(await receive())
        except ValueError as exc:  # edge-tts's header parser on a malformed message
            raise WarmTransportError(f"edge-tts sent a malformed message: {exc}") from exc
        if data is END_OF_TURN:
            break
        if isinstance(data, bytes) and data:
            audio += len(data)
            yield data
    if not audio:
        raise WarmTransportError("edge-tts answered without audio")
