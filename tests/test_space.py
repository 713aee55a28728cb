"""A Hugging Face Space runs what the repository says: the pinned Gradio, started the Space's way.

The pin test is fast (no models).  The start test launches ``app.py`` as the Space runtime
does and takes a model load (~1 min on 2 cores).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from llm.embedded_server import free_loopback_port

ROOT = Path(__file__).resolve().parent.parent
UPGRADE_HOW = (
    "Gradio's version lives in three places that must agree: README.md's front matter `sdk_version` "
    "(what a Space installs), requirements.txt's `gradio>=X.Y,<X.Y+1` (what pip installs) and the "
    "installed package (what this suite ran). To upgrade: pip install 'gradio==X.Y.Z', run the "
    "whole suite (the browser tests above all), then set `sdk_version: X.Y.Z` and the range "
    "`gradio>=X.Y,<X.(Y+1)` in one commit (README: 'Upgrading Gradio')."
)


def front_matter() -> dict[str, object]:
    """README.md's YAML header: the Space's configuration."""
    text = (ROOT / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with the Space's YAML front matter between --- lines"
    return yaml.safe_load(match.group(1))


def gradio_requirement() -> Requirement:
    """The ``gradio`` line of requirements.txt."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and Requirement(line).name.lower() == "gradio":
            return Requirement(line)
    raise AssertionError("requirements.txt has no gradio line")


def test_space_runs_the_gradio_this_suite_runs() -> None:
    header = front_matter()
    assert header.get("sdk") == "gradio" and header.get("app_file") == "app.py"
    pinned = str(header.get("sdk_version", ""))
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), f"sdk_version {pinned!r} is not X.Y.Z. {UPGRADE_HOW}"
    installed = importlib.metadata.version("gradio")
    assert installed == pinned, f"installed Gradio {installed} != README sdk_version {pinned}. {UPGRADE_HOW}"

    spec = gradio_requirement().specifier
    major, minor, patch = Version(pinned).release
    assert spec.contains(pinned), f"requirements.txt's {spec} does not admit sdk_version {pinned}. {UPGRADE_HOW}"
    # Exactly the tested X.Y line: its patch releases, nothing older or newer.
    assert spec.contains(f"{major}.{minor}.{patch + 7}"), f"{spec} should admit {major}.{minor}.x. {UPGRADE_HOW}"
    for other in (f"{major}.{minor + 1}.0", f"{major + 1}.0.0", f"{major}.{minor - 1}.99" if minor else "0.0.1"):
        assert not spec.contains(other), f"requirements.txt's {spec} admits untested Gradio {other}. {UPGRADE_HOW}"


# What the Space runtime gives a Gradio app, besides the variables it documents for every Space
# (SPACE_ID, SPACE_AUTHOR_NAME, SPACE_REPO_NAME, SPACE_TITLE, SPACE_HOST, CPU_CORES, MEMORY):
# SYSTEM=spaces (Gradio's own "am I on a Space" test), a public bind, the port, and settings a
# platform commonly adds (HOST, PORT, GRADIO_SSR_MODE) that must not move, expose or break anything.
SPACE_ENV = {
    "SYSTEM": "spaces",
    "SPACE_ID": "warmvoice-tests/WarmVoice",
    "SPACE_AUTHOR_NAME": "warmvoice-tests",
    "SPACE_REPO_NAME": "WarmVoice",
    "SPACE_TITLE": "WarmVoice",
    "SPACE_HOST": "warmvoice-tests-warmvoice.hf.space",
    "SPACE_CREATOR_USER_ID": "0123456789abcdef01234567",
    "CPU_CORES": "2",
    "MEMORY": "16Gi",
    "GRADIO_SERVER_NAME": "0.0.0.0",
    "HOST": "0.0.0.0",
    "GRADIO_SSR_MODE": "true",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
}
# Never inherited from the developer's shell: the Space starts with no key and no endpoint.
_NOT_ON_A_FRESH_SPACE = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_MODEL", "TTS_ENGINE", "GRADIO_SERVER_PORT")


@dataclass
class SpaceApp:
    """``app.py`` running as a Space runs it."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """The page, reached over loopback (the app binds 0.0.0.0)."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the app printed so far."""
        return self.log_path.read_text(errors="replace")


def _children(pid: int) -> set[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(check, timeout_s: float, what: str, app: SpaceApp) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if app.proc.poll() is not None:
            pytest.fail(f"app exited (code {app.proc.returncode}) while waiting for {what}: {app.log()[-3000:]}")
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}: {app.log()[-3000:]}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def space_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpaceApp]:
    """``python /repo/app.py`` from an empty working directory (no .env), the Space's environment,
    the port from the environment; stopped with SIGTERM as a Space restart stops it."""
    workdir = tmp_path_factory.mktemp("space-workdir")
    port = free_loopback_port()
    env = {k: v for k, v in os.environ.items() if k not in _NOT_ON_A_FRESH_SPACE}
    env.update(SPACE_ENV)
    env["GRADIO_SERVER_PORT"] = str(port)
    env["PORT"] = str(port)
    log_path = workdir / "app.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")], cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        app = SpaceApp(proc, port, log_path)
        children: set[int] = set()
        try:
            _wait_for(lambda: _answers(app.url), 120, "the page", app)
            _wait_for(lambda: "Ready in" in app.log(), 240, "the models and the embedded server", app)
            children = _children(proc.pid)
            assert children, "the embedded LLM server should run as the app's child process"
            yield app
        finally:
            children |= _children(proc.pid) if proc.poll() is None else set()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail(f"app ignored SIGTERM for 30 s: {app.log()[-2000:]}")
            deadline = time.monotonic() + 10
            while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
                time.sleep(0.1)
            orphans = [pid for pid in children if _alive(pid)]
            for pid in orphans:
                os.kill(pid, signal.SIGKILL)
            assert not orphans, f"child processes outlived the app: {orphans}"
    assert "Traceback" not in app.log(), app.log()[-3000:]


@pytest.mark.slow
def test_app_starts_as_a_space_starts_it(space_app: SpaceApp) -> None:
    with urllib.request.urlopen(space_app.url, timeout=10) as response:
        page = response.read().decode()
    assert "WarmVoice" in page and "warmvoice" in page, "the page and its player script are served"
    log = space_app.log()
    assert "Serving on 0.0.0.0: reachable from other machines" in log
    backend = re.search(r"LLM backend: (.+)", log)
    assert backend and "embedded" in backend.group(1).lower(), log[-3000:]

    # The embedded server stays on loopback, on a port of its own, whatever HOST/PORT say.
    started = re.search(r"Embedded LLM server ready in \d+ ms at (http://127\.0\.0\.1:(\d+)/v1)", log)
    assert started, log[-3000:]
    assert int(started.group(2)) != space_app.port
    with urllib.request.urlopen(f"{started.group(1)}/models", timeout=10) as response:
        assert response.status == 200 and b"smollm2" in response.read()
    assert not any(word in log for word in ("sk-", "Bearer")), "no key material in the log"
