"""Security: where the API key goes (only the Authorization header), where the app listens
(loopback by default), what one tab can see of another (nothing), how much audio a client
can make the server hold (bounded), and which files are left behind (none).

Real parts throughout: loopback aiohttp.web LLM servers that record every request, the
shared Whisper and Piper, a dedicated embedded llama.cpp server for the temp-file checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

import app
from llm import EmbeddedLLMServer, EmbeddedServerError, Secret, free_loopback_port
from tests.llm_servers import LLMServer, echo, reply, status
from tests.loopback_session import (
    FAST_TIMEOUTS,
    FakeRequest,
    MeasuringTranscriber,
    drain,
    listener,
    loopback_session,
    notices,
    outcome,
    page_text,
    typed_turn,
)
from tests.speech import resample, synthesize, trimmed
from voice import player_messages
from voice.events import SessionEvent, TurnDone
from voice.headless import run_spoken_turn
from voice.llm_endpoint import LLMEndpoint
from voice.runtime import RuntimeLoader, VoiceRuntime
from voice.session import VoiceSession
from voice.settings import Settings, load_settings
from voice.tts.voices import EDGE_VOICES, VoiceCatalog, VoiceRefused
from web.callbacks import PageCallbacks
from web.page import build_page
from web.view import PageView

KEY = "sk-SECURITY-canary-7c1e5a9b3d"
QUESTION = "What is the capital of France?"


@pytest.fixture
def server(server: LLMServer) -> LLMServer:
    """The shared loopback server, quoting the user (``echo``) unless a test scripts it."""
    server.default = echo()
    return server


def loopback_app(voice_runtime: Any, base_url: str, key: str = "") -> PageCallbacks:
    """The real WarmVoiceApp over the shared models, talking to a loopback LLM."""
    settings = voice_runtime.settings.replace(openai_api_key=Secret(key), **FAST_TIMEOUTS)
    endpoint = LLMEndpoint(base_url=base_url, model="test-model", api_key=Secret(key), reason="test")
    runtime = VoiceRuntime(settings, endpoint, voice_runtime.transcriber)
    return PageCallbacks(settings, RuntimeLoader.loaded(settings, runtime))


@contextlib.asynccontextmanager
async def open_tab(web: PageCallbacks, tab: str) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Start the tab's session and collect every page update its event pump renders."""
    request = FakeRequest(tab)
    [s async for s in web.start("prewarmed", 0, web.settings.system_prompt, 500, True, request)]
    outputs: list[tuple[Any, ...]] = []

    async def read() -> None:
        async for out in web.pump(request):
            outputs.append(out)

    reader = asyncio.create_task(read(), name=f"pump-{tab}")
    try:
        yield outputs
    finally:
        await web.stop(request)
        async with asyncio.timeout(10):
            await reader


async def rendered_until(outputs: list, predicate, timeout_s: float = 90.0) -> tuple[Any, ...]:
    async with asyncio.timeout(timeout_s):
        while True:
            for out in outputs:
                if predicate(out):
                    return out
            await asyncio.sleep(0.05)


def turns_done(out: tuple[Any, ...], count: int) -> bool:
    rows = out[4]
    return len(rows) >= count and all(row[-1] not in ("running", "") for row in rows)


# --------------------------------------------------------------------------- the API key


@pytest.mark.slow
async def test_api_key_travels_only_in_the_authorization_header(
    voice_runtime, server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    # Session level: typed and spoken turns, a failing turn, every event and the whole session's state.
    server.script(reply("Fine, thanks."), reply("Sure."))
    async with loopback_session(voice_runtime, server.base_url, key=KEY) as s:
        await s.wait_warm()
        events: list[SessionEvent] = []
        events += await typed_turn(s, "How are you?")
        speech = synthesize(QUESTION)
        spoken = await run_spoken_turn(s, speech.samples, speech.sample_rate, realtime=False)
        assert spoken is not None and spoken.latency.outcome == "ok"
        events += drain(s)  # the spoken turn's events (the headless run listened on its own)
        server.script(status(401, f"Incorrect API key provided: {KEY}"))  # a provider quoting the key
        events += await typed_turn(s, "And now?")
        seen += [
            repr(events),
            repr(vars(s)),
            repr(s.latencies),
            repr(s.settings),
            repr(s.endpoint),
            repr(s.reply.conversation),
        ]
        view = PageView(s)
        for event in events:
            view.apply(event)
        seen.append(page_text(view.render(chart=True)))
        assert any("rejected" in n for n in notices(events, "error")), "the failing turn really ran"
    # App level: a tab of the real page callbacks.
    web = loopback_app(voice_runtime, server.base_url, key=KEY)
    try:
        async with open_tab(web, "tab-key") as outputs:
            assert await web.type_turn("Hello from the page", FakeRequest("tab-key")) == ""
            await rendered_until(outputs, lambda o: turns_done(o, 1))
        seen += [page_text(out) for out in outputs]
    finally:
        await web.aclose()
    seen.append(caplog.text)
    seen += [repr(record.__dict__) for record in caplog.records]

    leaks = [text[:200] for text in seen if KEY in text]
    assert not leaks, leaks
    # On the wire: in every request, exactly once, as the Bearer token, and nowhere else.
    assert len(server.requests) >= 5
    for request in server.requests:
        assert request.headers.get("Authorization") == f"Bearer {KEY}"
        others = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        assert KEY not in json.dumps(others) and KEY.encode() not in request.body
        assert KEY not in request.path


async def test_credentials_in_the_endpoint_url_are_not_shown(voice_runtime) -> None:
    """A base URL with user:password (a proxy's basic auth) is shown on the page without them:
    the page of a public deployment is seen by every visitor."""
    settings = voice_runtime.settings
    endpoint = LLMEndpoint(
        base_url="http://user:pa55word-canary@127.0.0.1:9/v1", model="m", api_key=Secret(""), reason="test"
    )
    session = VoiceSession(settings, endpoint, transcriber=voice_runtime.transcriber, tts=voice_runtime.new_tts())
    facts = page_text(PageView(session).render(chart=False))
    assert "pa55word-canary" not in facts and "127.0.0.1:9" in facts


# --------------------------------------------------------------------------- where it listens


def test_default_bind_is_loopback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert Settings().host == "127.0.0.1"
    assert load_settings({}, environ={}, dotenv_path=None).host == "127.0.0.1"
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    assert launch_kwargs(monkeypatch, [])["server_name"] == "127.0.0.1"
    assert "reachable from other machines" not in caplog.text
    assert launch_kwargs(monkeypatch, ["--host", "0.0.0.0"])["server_name"] == "0.0.0.0"
    assert "Serving on 0.0.0.0: reachable from other machines" in caplog.text


def launch_kwargs(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> dict[str, Any]:
    """What app.main passes to Blocks.launch, without starting a server or loading models.

    create_app is replaced by a recorder: serving a page here would open a real port, which
    is exactly what this test must not do.
    """
    recorded: dict[str, Any] = {}

    class Recorder:
        loader = type("Loader", (), {"runtime": None})()

        def launch(self, **kwargs: Any) -> None:
            recorded.update(kwargs)

    recorder = Recorder()
    monkeypatch.setattr(app, "create_app", lambda settings: (recorder, recorder))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert app.main(argv) == 0
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)  # main() installs the app's log handler
        root.setLevel(level)
    return recorded


# --------------------------------------------------------------------------- tabs


@pytest.mark.slow
async def test_tabs_never_see_each_other(voice_runtime, server: LLMServer) -> None:
    """Two tabs at once, one typing a codeword, the other speaking: each page, history and
    latency table holds its own turns only."""
    web = loopback_app(voice_runtime, server.base_url)
    speech = synthesize(QUESTION)
    chunk = int(speech.sample_rate * 0.1)
    audio = (np.concatenate([speech.samples, np.zeros(speech.sample_rate * 2, np.float32)]) * 32767).astype(np.int16)
    try:
        async with open_tab(web, "tab-a") as page_a, open_tab(web, "tab-b") as page_b:
            tab_a, tab_b = FakeRequest("tab-a"), FakeRequest("tab-b")

            async def speak_b() -> None:
                for start in range(0, len(audio), chunk):
                    await web.hear((speech.sample_rate, audio[start : start + chunk]), tab_b)

            await asyncio.gather(web.type_turn("My codeword is ALPHA-ONE.", tab_a), speak_b())
            await rendered_until(page_a, lambda o: turns_done(o, 1))
            await rendered_until(page_b, lambda o: turns_done(o, 1))
            await web.type_turn("My codeword is BRAVO-TWO.", tab_b)
            await rendered_until(page_b, lambda o: turns_done(o, 2))
            registry = await web.registry()
            session_a, session_b = registry.get("tab-a"), registry.get("tab-b")
            assert session_a is not None and session_b is not None and session_a is not session_b
            history_a, history_b = repr(session_a.reply.conversation), repr(session_b.reply.conversation)
            latencies_a, latencies_b = list(session_a.latencies), list(session_b.latencies)
            assert session_a.client is not session_b.client
            # Another tab's hash reaches nothing: there is no session to type into.
            with pytest.raises(Exception, match="Start speaking"):
                await web.type_turn("let me in", FakeRequest("tab-c"))
    finally:
        await web.aclose()
    text_a = "\n".join(page_text(o) for o in page_a)
    text_b = "\n".join(page_text(o) for o in page_b)
    assert "ALPHA-ONE" in text_a and "BRAVO" not in text_a and "france" not in text_a.lower()
    assert "BRAVO-TWO" in text_b and "france" in text_b.lower() and "ALPHA" not in text_b
    assert "ALPHA" in history_a and "BRAVO" not in history_a and "france" not in history_a.lower()
    assert "BRAVO" in history_b and "ALPHA" not in history_b
    assert [lat.source for lat in latencies_a] == ["text"]
    assert [lat.source for lat in latencies_b] == ["voice", "text"]
    assert max(len(o[4]) for o in page_a) == 1, "tab A's table only ever shows its own turn"


# --------------------------------------------------------------------------- bounded audio


@pytest.mark.slow
async def test_one_huge_audio_chunk_is_cut_to_max_turn_seconds(voice_runtime, server: LLMServer) -> None:
    """A client that sends ten minutes in a single chunk still gets at most max_turn_seconds
    per turn transcribed, and the endpointer keeps at most that much."""
    server.default = reply("Okay.")
    cap_s = voice_runtime.settings.max_turn_seconds
    at_16k = resample(trimmed(synthesize("Talking on and on about nothing in particular")), 22050, 16000)
    recording = np.tile(at_16k, int(600 * 16000 / len(at_16k)) + 1)
    whisper = MeasuringTranscriber(voice_runtime.transcriber)
    async with loopback_session(voice_runtime, server.base_url, transcriber=whisper) as s:
        waiter = asyncio.create_task(_until_answered(s))
        await s.feed_audio(recording, 16000)
        buffered = s.turn_detector.endpointer.buffered_samples  # the bound under test is the endpointer's
        await s.feed_audio(np.zeros(16000 * 2, np.float32), 16000)
        events = await waiter
    assert buffered <= (cap_s + 1) * 16000
    assert whisper.seconds and max(whisper.seconds) <= cap_s + 1.0
    capped = [n for n in notices(events, "warning") if n.startswith("Recording capped")]
    assert len(capped) >= 9
    assert outcome(events).outcome in ("ok", "no_speech")


async def _until_answered(session: Any) -> list[SessionEvent]:
    events: list[SessionEvent] = []
    async with asyncio.timeout(120):
        while True:
            events.append(await listener(session).get())
            last = events[-1]
            if isinstance(last, TurnDone) and last.latency.outcome != "interrupted":
                return events


def test_page_inputs_are_bounded(voice_runtime) -> None:
    """The browser can stream the microphone for at most a session's length, type at most
    100 kB (the session then sends 2,000 characters) and set a prompt of at most 4,000."""
    web = PageCallbacks(voice_runtime.settings, RuntimeLoader(voice_runtime.settings))
    config = build_page(web).get_config_file()
    components = {c["id"]: c for c in config["components"]}
    by_elem = {c["props"].get("elem_id"): c for c in config["components"]}
    assert by_elem["typed"]["props"]["max_length"] == 100_000
    prompt = next(c for c in config["components"] if c["props"].get("label") == "System prompt")
    assert prompt["props"]["max_length"] == 4000
    # The player's playback report: the server ignores anything longer (Gradio only limits it in the page).
    assert by_elem["playback-report"]["props"]["max_length"] == player_messages.MAX_REPORT_CHARS
    assert player_messages.playback_reports("[" + " " * player_messages.MAX_REPORT_CHARS + "]", "s") == []
    mic_id = by_elem["mic"]["id"]
    streams = [d for d in config["dependencies"] if any(t[0] == mic_id and t[1] == "stream" for t in d["targets"])]
    assert streams and all(d["time_limit"] == int(voice_runtime.settings.session_max_s) for d in streams)
    assert components  # the page was really built


# --------------------------------------------------------------------------- the voice box


def test_voice_catalog_takes_names_from_the_page_and_paths_only_from_settings(tmp_path: Path) -> None:
    """The page picks a name; a configured Piper file is offered by its name and resolved to
    the server's path; any .onnx path or unknown name from the page is refused."""
    edge = VoiceCatalog.from_settings(load_settings({"tts_voice": "en-GB-RyanNeural"}, environ={}, dotenv_path=None))
    assert edge.names[0] == "en-GB-RyanNeural" and set(EDGE_VOICES) <= set(edge.names)
    assert edge.resolve("en-US-GuyNeural") == "en-US-GuyNeural"

    configured = str(tmp_path / "my-voice.onnx")
    piper = VoiceCatalog.from_settings(load_settings({"tts_voice": configured}, environ={}, dotenv_path=None))
    assert "my-voice" in piper.names and configured not in piper.names
    assert piper.name_of(configured) == "my-voice" and piper.resolve("my-voice") == configured
    # Even the server's own path is refused when the page sends it: a path never comes from the page.
    for path in (configured, "/etc/passwd.onnx", "../../secret.ONNX"):
        with pytest.raises(VoiceRefused, match="refused: a Piper voice file can only be set in the server's settings"):
            piper.resolve(path)
    with pytest.raises(VoiceRefused, match=r"unknown voice 'x{80}…': choose one of en-US-AriaNeural"):
        piper.resolve("x" * 10_000)


@pytest.mark.slow
async def test_a_voice_path_from_the_page_is_refused_and_never_opened(
    voice_runtime, server: LLMServer, tmp_path: Path
) -> None:
    """app.py's voice-box callback with a path: a warning names the rule, the session keeps its
    engine and voice (no file is opened), and a name from the list still works."""
    trap = tmp_path / "trap.onnx"
    trap.write_bytes(b"not a voice")  # were it opened, Piper would fail on it
    web = loopback_app(voice_runtime, server.base_url)
    request = FakeRequest("voice-tab")
    async with open_tab(web, "voice-tab"):
        session = (await web.registry()).get("voice-tab")
        assert session is not None
        engine, voice = session.speech.tts, session.settings.tts_voice
        with pytest.warns(UserWarning, match="refused: a Piper voice file can only be set in the server's settings"):
            await web.set_voice(str(trap), request)
        assert session.speech.tts is engine and session.settings.tts_voice == voice
        with pytest.raises(VoiceRefused):
            await session.configure(voice=str(trap))
        assert session.speech.tts is engine

        await web.set_voice("en-US-GuyNeural", request)
        assert session.settings.tts_voice == "en-US-GuyNeural" and session.speech.tts is not engine
    config = build_page(web).get_config_file()
    box = next(c for c in config["components"] if c["props"].get("label") == "Voice")
    assert box["props"]["allow_custom_value"] is False
    assert [choice[1] for choice in box["props"]["choices"]] == session.voices.names


# --------------------------------------------------------------------------- temporary files


def test_embedded_server_leaves_no_file_while_running_or_after_stop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Its log is an anonymous temporary file: nothing to delete, nothing to leak."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # only this test's files land here
    server = EmbeddedLLMServer(n_threads=1)
    try:
        server.start()
        assert list(tmp_path.iterdir()) == []
        assert "Uvicorn running" in server._log_tail(4000), "the log is still written and readable"
    finally:
        server.stop()
    assert list(tmp_path.iterdir()) == []
    server.stop()  # idempotent


def test_failed_embedded_start_leaves_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    server = EmbeddedLLMServer(model_path=bogus, n_threads=1, start_timeout_s=60)
    with pytest.raises(EmbeddedServerError, match="exited during start-up") as info:
        server.start()
    assert "not-a-model.gguf" in str(info.value), "the error quotes the server's own log"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-model.gguf"]
    assert not server.is_running()


def test_embedded_server_killed_with_its_parent_leaves_no_file(tmp_path: Path) -> None:
    """SIGKILL runs no clean-up at all: the server dies with its parent, and no file remains."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from llm.embedded_server import EmbeddedLLMServer
        srv = EmbeddedLLMServer(n_threads=1)
        srv.start()
        print(srv.pid, flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait(timeout=20)
    with contextlib.suppress(psutil.NoSuchProcess):
        child.wait(timeout=20)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["", "sk-embedded-canary-42"])
def test_embedded_server_ignores_the_apps_environment_and_hides_its_key(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """HOST/PORT/API_KEY meant for the app (a PaaS sets HOST and PORT) must not move, expose or
    lock the embedded server, and a key it requires is not on its command line (any local user
    can list that), only in its private environment."""
    elsewhere = free_loopback_port()
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", str(elsewhere))
    monkeypatch.setenv("API_KEY", "some-other-services-key")
    server = EmbeddedLLMServer(n_threads=1, api_key=Secret(key))
    try:
        server.start()
        assert server.pid is not None and server.port != elsewhere
        child = psutil.Process(server.pid)
        listening = {c.laddr for c in child.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        assert listening and all(addr.ip == "127.0.0.1" and addr.port == server.port for addr in listening)
        assert not key or key not in " ".join(child.cmdline())
        request = urllib.request.Request(f"{server.base_url}/models")
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        if key:
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(f"{server.base_url}/models", timeout=10)
            assert info.value.code == 401
    finally:
        server.stop()
