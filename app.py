"""WarmVoice: a voice agent that answers faster than you expect, and shows why.

``python app.py`` serves the Gradio page on http://127.0.0.1:7860.  The page lives in
:mod:`web` (layout, callbacks, view) over :mod:`voice`; this file parses the flags, starts the
model loading in the background, and serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import gradio as gr

from llm import configure_logging, hide_in_logs
from voice import panel
from voice.cli import add_settings_flags, settings_from_args
from voice.native_memory import limit_malloc_arenas
from voice.runtime import RuntimeLoader
from voice.settings import Settings, SettingsError
from web.callbacks import PageCallbacks
from web.mic_socket import mic_socket_route
from web.page import PLAYER_HEAD, build_page

log = logging.getLogger("warmvoice")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags override the environment and .env (see the README's configuration table)."""
    p = argparse.ArgumentParser(description="WarmVoice: a fast voice agent with a live latency panel.")
    p.add_argument("--host", help="bind address (default 127.0.0.1; a Space uses 0.0.0.0)")
    p.add_argument("--port", type=int, help="port (default 7860)")
    add_settings_flags(p)
    p.add_argument("--local-audio", action="store_true", help="use this machine's microphone and speaker")
    return p.parse_args(argv)


def app_settings(args: argparse.Namespace) -> Settings:
    """Environment + .env + flags -> validated settings."""
    return settings_from_args(args, host=args.host, port=args.port, local_audio=args.local_audio or None)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def create_app(settings: Settings) -> tuple[gr.Blocks, PageCallbacks]:
    """The Gradio app and its callbacks object; starts loading the models in the background."""
    hide_in_logs(settings.openai_api_key)
    loader = RuntimeLoader(settings)
    loader.start()
    mic, speaker = None, None
    if settings.local_audio:
        from voice.local_audio import LocalAudioError, LocalMic, LocalSpeaker

        try:
            mic, speaker = LocalMic(), LocalSpeaker()
            log.info("Local audio: this machine's microphone and speaker carry the conversation")
        except LocalAudioError as exc:
            log.warning("%s; the browser microphone and player keep working", exc)
    app = PageCallbacks(settings, loader, local_mic=mic, local_speaker=speaker)
    demo = build_page(app)
    demo.queue(default_concurrency_limit=settings.max_sessions)
    return demo, app


def main(argv: list[str] | None = None) -> int:
    """Run the app until Ctrl-C; returns the exit code."""
    args = parse_args(argv)
    try:
        settings = app_settings(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    limit_malloc_arenas()  # before Gradio's threads start: glibc fixes the limit early
    demo, app = create_app(settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("Serving on %s: reachable from other machines", settings.host)
    # A Space (or any container) stops the app with SIGTERM: shut down as on Ctrl-C, so the
    # embedded server is stopped by us rather than only killed along with us.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            css=panel.PANEL_CSS,
            head=PLAYER_HEAD,
            show_error=False,
            # Client-side rendering whatever GRADIO_SSR_MODE a Space sets: SSR needs Node 24+
            # and puts a Node proxy in front of the page, which the player was never tested with.
            ssr_mode=False,
            # The page's own microphone path (web/mic_socket.py), on the page's origin and port:
            # FastAPI's routes= puts it ahead of Gradio's.
            app_kwargs={"routes": [mic_socket_route(app)]},
        )
    except KeyboardInterrupt:
        pass
    finally:
        # Sessions' sockets die with the process; the child server must be stopped explicitly.
        if app.loader.runtime is not None:
            app.loader.runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
