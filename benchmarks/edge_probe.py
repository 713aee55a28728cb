"""``python -m benchmarks.edge_probe``: what the real edge-tts service does with a connection.

WarmVoice's warm TTS transport (:mod:`voice.tts.edge_transport`) assumes two things about
Microsoft's speech service that cannot be tried from the development machines (no internet):

* **reuse** -- after a request's ``turn.end`` the service answers another request on the same
  WebSocket (if not, the spare pattern still takes the handshake off the path, one socket per
  sentence);
* **idle limit** -- how long the service keeps an idle socket open.  ``EDGE_TTS_MAX_IDLE``
  (default 15 s) should stay below it, so a spare is replaced before the service drops it
  (a spare it drops is replaced too, but only once the close is seen).

Run this on a machine with internet access.  It prints the handshake time (DNS + TCP + TLS +
WebSocket upgrade) of a few fresh sockets, the time to the first audio on an already open
socket, whether a second request on the same socket is answered, and when the service closes
an idle socket (waiting at most ``--max-idle-s``).  Exit status 0 when it could measure, 1 if
the service could not be reached.  The same code runs against the local stand-in in the tests.
The sockets are opened and spoken to by the warm transport's own exchanges
(:func:`voice.tts.edge_protocol.open_socket`, :func:`voice.tts.edge_protocol.request_audio`), so the
handshake time is the transport's ``setup_ms`` (the ``speech.config`` write included).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from edge_tts import communicate

from voice.tts.edge_protocol import WarmTransportError, escape_text, open_socket, request_audio

PROG = "python -m benchmarks.edge_probe"
DEFAULT_VOICE = "en-US-AriaNeural"
TEXT = "Hello, this is a connection probe."
REQUEST_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ProbeResult:
    """What the probe found (None: not measured)."""

    url: str
    handshakes_ms: list[float]
    first_audio_ms: float | None  # SSML sent on an open socket -> first audio bytes
    reuse: bool | None  # a second request on the same socket after turn.end was answered
    reuse_detail: str
    idle_closed_after_s: float | None  # the service closed an idle socket after this long
    idle_waited_s: float  # how long the idle socket was watched


async def _request(ws: aiohttp.ClientWebSocketResponse, voice: str) -> float:
    """Send one sentence and read it to ``turn.end``; returns ms to the first audio bytes."""
    sent = time.perf_counter()
    first: float | None = None
    async with asyncio.timeout(REQUEST_TIMEOUT_S):
        async for _audio in request_audio(ws, ws.receive, escape_text(TEXT), voice):
            if first is None:
                first = (time.perf_counter() - sent) * 1000.0
    if first is None:  # request_audio raises first when no audio came; kept for the type checker
        raise WarmTransportError("the service answered without audio")
    return first


async def _open(session: aiohttp.ClientSession) -> tuple[aiohttp.ClientWebSocketResponse, float]:
    """A socket opened and configured as the warm transport opens its spares, and how long that took."""
    started = time.perf_counter()
    ws = await open_socket(session)
    return ws, (time.perf_counter() - started) * 1000.0


async def probe(voice: str = DEFAULT_VOICE, samples: int = 3, max_idle_s: float = 300.0) -> ProbeResult:
    """Measure the service at ``edge_tts.communicate.WSS_URL`` (the real one unless replaced)."""
    url = communicate.WSS_URL.split("?", 1)[0]
    handshakes: list[float] = []
    async with aiohttp.ClientSession(trust_env=True) as session:
        for _ in range(samples):
            ws, ms = await _open(session)
            handshakes.append(round(ms, 1))
            await ws.close()
        ws, _ = await _open(session)
        try:
            first_audio = round(await _request(ws, voice), 1)
            await asyncio.sleep(0.2)  # let a service that closes after turn.end do so
            try:
                await _request(ws, voice)
                reuse, detail = True, "a second request on the same socket was answered"
            except (WarmTransportError, aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
                reuse, detail = False, f"a second request on the same socket failed: {exc or type(exc).__name__}"
        finally:
            await ws.close()
        ws, _ = await _open(session)
        started = time.perf_counter()
        closed_after: float | None = None
        try:
            async with asyncio.timeout(max_idle_s):
                message = await ws.receive()
                closed_after = round(time.perf_counter() - started, 1)
                if message.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    closed_after = None  # something other than a close: not an idle limit
        except TimeoutError:
            pass
        finally:
            await ws.close()
        waited = round(time.perf_counter() - started, 1)
    return ProbeResult(url, handshakes, first_audio, reuse, detail, closed_after, waited)


def report(result: ProbeResult) -> str:
    """The findings as a few lines of text, with what they mean for the settings."""
    hs = result.handshakes_ms
    lines = [
        f"service: {result.url}",
        f"handshake (DNS + TCP + TLS + WebSocket upgrade), {len(hs)} fresh sockets: "
        + ", ".join(f"{ms:.0f}" for ms in hs)
        + (f" ms (median {statistics.median(hs):.0f} ms)" if hs else ""),
        f"first audio on an already open socket: {result.first_audio_ms:.0f} ms"
        if result.first_audio_ms is not None
        else "first audio: not measured",
        f"reuse after turn.end: {'yes' if result.reuse else 'no'} ({result.reuse_detail})",
    ]
    if result.idle_closed_after_s is None:
        lines.append(f"idle limit: the service kept an idle socket open for the {result.idle_waited_s:.0f} s watched")
    else:
        lines.append(f"idle limit: the service closed an idle socket after {result.idle_closed_after_s:.1f} s")
        if result.idle_closed_after_s <= 15.0:
            lines.append(
                f"-> set EDGE_TTS_MAX_IDLE below {result.idle_closed_after_s:.0f} s "
                "(the default 15 s is longer than this limit)"
            )
    if result.reuse is False:
        lines.append("-> every sentence takes a fresh spare (the handshake still stays off the path)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Probe the real service and print what it does; 1 if it cannot be reached."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--voice", default=DEFAULT_VOICE, help=f"edge-tts voice (default {DEFAULT_VOICE})")
    parser.add_argument("--samples", type=int, default=3, help="fresh handshakes to time (default 3)")
    parser.add_argument(
        "--max-idle-s", type=float, default=300.0, help="longest wait for the service to drop an idle socket"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.samples <= 20 or not 1 <= args.max_idle_s <= 3600:
        parser.error("--samples must be 1-20 and --max-idle-s 1-3600")
    try:
        result = asyncio.run(probe(args.voice, args.samples, args.max_idle_s))
    except KeyboardInterrupt:
        return 130
    except (WarmTransportError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        print(f"edge-tts service not reachable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
