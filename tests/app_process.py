"""The app as a real subprocess, for the browser and Space tests: start it with its output in a
log file, wait until it serves its page and has loaded its models, stop it with a signal.

A process that ignores the signal is killed after the grace period, so no test leaves one behind;
:attr:`AppProcess.stopped_on_signal` says whether it had to be.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_CHARS = 3000  # how much of the log a failure message quotes


def answers(url: str) -> bool:
    """True if ``url`` answers HTTP 200 within two seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], sig: signal.Signals, timeout_s: float) -> bool:
    """Send ``sig`` and wait up to ``timeout_s``; kill it if it is still running then.

    True if it ended on the signal, False if it had to be killed.
    """
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    return True


@dataclass
class AppProcess:
    """``app.py`` running in a subprocess on ``port`` (loopback reaches it whatever it binds)."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    stopped_on_signal: bool | None = None  # set once stopped: False if it had to be killed

    @property
    def url(self) -> str:
        """The page."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the app printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``check`` until it holds; fail the test if the app exits or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"app exited (code {self.proc.returncode}) while waiting for {what}: {self.log()[-LOG_TAIL_CHARS:]}"
                )
            if check():
                return
            time.sleep(0.25)
        pytest.fail(f"timed out waiting for {what}: {self.log()[-LOG_TAIL_CHARS:]}")

    def wait_until_ready(self, page_timeout_s: float, ready_timeout_s: float) -> None:
        """Wait for the page to be served, then for the app's "Ready in" (models loaded)."""
        self.wait_for(lambda: answers(self.url), page_timeout_s, "the page")
        self.wait_for(lambda: "Ready in" in self.log(), ready_timeout_s, "the models to load")


@contextlib.contextmanager
def running_app(
    app_args: Sequence[str],
    *,
    port: int,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path = ROOT,
    stop_signal: signal.Signals = signal.SIGINT,
    stop_timeout_s: float = 20.0,
) -> Iterator[AppProcess]:
    """``python <app_args>`` in ``cwd`` with ``env``; stopped on exit with ``stop_signal`` (Ctrl-C
    unless told otherwise), killed if it has not ended ``stop_timeout_s`` later."""
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, *app_args], cwd=cwd, env=dict(env), stdout=log_file, stderr=subprocess.STDOUT
        )
        app = AppProcess(proc, port, log_path)
        try:
            yield app
        finally:
            app.stopped_on_signal = stop_process(proc, stop_signal, stop_timeout_s)
