"""What the benchmarks share.

The strategy names, labels and colours of the connection and pipeline tables and charts; the
machine a run happened on and its Markdown lines; median (min–max) summaries and their cells;
the ``--rtt-ms`` option; the exact command line with any API key hidden; the embedded server
over TLS with a throw-away certificate; and the Ctrl-C / SIGTERM handling that lets a run clean
up (servers, proxies, temp files) before it exits.  Reports are built with
:class:`benchmarks.report.Table` and written by :func:`benchmarks.report.publish`.  Nothing here
measures anything.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import math
import os
import platform
import shlex
import signal
import ssl
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

# Writing a report lives in benchmarks.report; these names are the benchmarks' way in.
from benchmarks.report import Output as Output
from benchmarks.report import Table as Table
from benchmarks.report import progress as progress
from benchmarks.report import write_json_file as write_json_file
from llm import EmbeddedLLMServer, Secret, Strategy

Say = Callable[[str], None]

# The strategies (llm.STRATEGIES) in the reports' order, and how the reports name them.
STRATEGY_ORDER: tuple[Strategy, ...] = ("cold", "pooled", "prewarmed")
STRATEGY_LABELS = {
    "cold": "Before (cold)",
    "pooled": "Pooled, no warm-up",
    "prewarmed": "After (pre-warmed)",
}
STRATEGY_COLOURS = {"cold": "#c0392b", "pooled": "#e67e22", "prewarmed": "#27ae60"}
# Packages whose versions every report records (a benchmark may add its own).
MACHINE_PACKAGES = ("aiohttp", "llama_cpp_python", "uvicorn")
HIDDEN = "<hidden>"
INTERRUPTED_EXIT = 130  # what a shell reports for a process ended by Ctrl-C
# The CPU features that move the models' speed (Linux /proc/cpuinfo names), and how reports name them.
PROBED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
FLAG_LABELS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI"}
FLAG_LABELS["amx_int8"] = "AMX-INT8"
CPUINFO = Path("/proc/cpuinfo")
# The probe's fixed Whisper clip (benchmarks/machine_probe.py holds the rest of its workload).
WHISPER_CLIP_S = 3.0


@dataclass(frozen=True)
class MachineProbe:
    """CPU flags and the fixed workload's medians (ms)."""

    flags: tuple[str, ...]  # those of PROBED_FLAGS the CPU has
    whisper_ms: float  # Whisper tiny.en (int8, the app's settings) on a fixed 3 s clip
    piper_ms: float  # Piper (the bundled voice) on a fixed sentence, whole synthesis
    llm_ms: float | None  # LLM_TOKENS tokens from the embedded model (None: the server could not start)
    llm_tokens: int  # tokens the server reported generating
    runs: int

    def describe(self) -> str:
        """One Markdown-friendly line, for the header of a report."""
        flags = ", ".join(f"{FLAG_LABELS[f]} {'yes' if f in self.flags else 'no'}" for f in PROBED_FLAGS)
        llm = (
            f"{self.llm_tokens} tokens from the embedded model {self.llm_ms:.0f} ms"
            if self.llm_ms is not None
            else "embedded model unavailable"
        )
        return (
            f"CPU {flags}; Whisper tiny.en on a fixed {WHISPER_CLIP_S:g} s clip {self.whisper_ms:.0f} ms; "
            f"Piper on a fixed sentence {self.piper_ms:.0f} ms; {llm} (medians of {self.runs} after a warm-up)"
        )


# ---- the machine --------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineInfo:
    """Where the run happened, so a pasted table says what it was measured on."""

    cpu_model: str
    cpu_count: int
    python: str
    platform: str
    date: str  # ISO 8601, UTC
    versions: dict[str, str]
    # 1-minute load average when the run started and ended: other processes share the CPUs
    # with the model server, and its time to first token shows it.
    load_start: float | None
    load_end: float | None
    ram_bytes: int  # total physical memory
    # CPU flags and a fixed workload timed before the runs: tells a slow machine from a slow change
    probe: MachineProbe | None = None
    flags: tuple[str, ...] = ()  # those of PROBED_FLAGS the CPU has

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MachineInfo:
        """The machine as a run's ``--json`` saved it (its ``asdict``), to write that run's report again."""
        probe = data.get("probe")
        return cls(
            **{
                **data,
                "probe": None if probe is None else MachineProbe(**{**probe, "flags": tuple(probe["flags"])}),
                # Runs saved before MachineInfo had its flags: the probe read the same /proc/cpuinfo.
                "flags": tuple(data.get("flags") or (probe["flags"] if probe else ())),
            }
        )

    def markdown(self) -> str:
        """The report's "- Machine:" and "- Machine probe:" lines: one form for every benchmark."""
        flags = ", ".join(self.flags) or "no AVX2/AVX-512 flag read"
        load = " → ".join("unknown" if v is None else f"{v:.2f}" for v in (self.load_start, self.load_end))
        versions = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        return (
            f"- Machine: {self.cpu_model}, {self.cpu_count} CPUs ({flags}), {self.ram_bytes / 2**30:.1f} GiB RAM, "
            f"Python {self.python}, {self.platform}; load average (1 min) {load} from start to end"
            + (f"; {versions}" if versions else "")
            + f"\n- Machine probe: {self.probe.describe() if self.probe is not None else 'not run'}"
        )


def load_average() -> float | None:
    """The 1-minute load average, where the OS has one."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine_info(
    load_start: float | None, packages: Sequence[str] = MACHINE_PACKAGES, probe: MachineProbe | None = None
) -> MachineInfo:
    """CPU model and count, total RAM, Python, OS, the date, the load now and at ``load_start``,
    and the installed versions of ``packages`` (those not installed are left out)."""
    model = _cpuinfo_field("model name") or platform.processor() or platform.machine()
    versions = {}
    for dist in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return MachineInfo(
        cpu_model=model,
        cpu_count=os.cpu_count() or 0,
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.release()}",
        date=datetime.now(UTC).replace(microsecond=0).isoformat(),
        versions=versions,
        load_start=load_start,
        load_end=load_average(),
        ram_bytes=psutil.virtual_memory().total,
        probe=probe,
        flags=cpu_flags(),
    )


def _cpuinfo_field(name: str, cpuinfo: Path = CPUINFO) -> str | None:
    """The first CPU's ``name`` line of /proc/cpuinfo (None where there is no such file or line)."""
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    return None


def cpu_flags(cpuinfo: Path = CPUINFO) -> tuple[str, ...]:
    """Which of :data:`PROBED_FLAGS` the CPU reports (empty where /proc/cpuinfo is missing)."""
    have = set((_cpuinfo_field("flags", cpuinfo) or "").split())
    return tuple(f for f in PROBED_FLAGS if f in have)


# ---- summaries and their Markdown ---------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Median and range of a set of values."""

    n: int
    median: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Summary:
        """Summarise the non-None values."""
        data = [v for v in values if v is not None]
        if not data:
            return cls(0, None, None, None)
        return cls(len(data), statistics.median(data), min(data), max(data))


def ratio_of(before: float | None, after: float | None) -> float | None:
    """``before / after``, or None when either is missing or ``after`` is not positive."""
    if before is None or after is None or after <= 0:
        return None
    return before / after


def format_cell(s: Summary, unit: str = " ms", digits: int = 0) -> str:
    """A table cell: "median (min–max)", just the median when there is no range, "—" when empty."""
    if s.median is None or s.low is None or s.high is None:
        return "—"
    med = f"{s.median:.{digits}f}{unit}"
    if s.n == 1 or s.low == s.high:
        return med
    return f"{med} ({s.low:.{digits}f}–{s.high:.{digits}f})"


def format_improvement(before: Summary, after: Summary, *, count: bool = False) -> str:
    """The Improvement column, compared on medians: "3.4× faster / −440 ms" (times) or
    "6.0× fewer / −5" (``count``); "—" when either side is empty."""
    if before.median is None or after.median is None:
        return "—"
    diff = after.median - before.median
    sign = "−" if diff < 0 else "+"
    delta = f"{sign}{abs(diff):.0f}" + ("" if count else " ms")
    ratio = ratio_of(before.median, after.median)
    if ratio is None:
        return delta
    if count:
        word = f"{ratio:.1f}× fewer" if ratio >= 1 else f"{1 / ratio:.1f}× more"
    else:
        word = f"{ratio:.1f}× faster" if ratio >= 1 else f"{1 / ratio:.1f}× slower"
    return f"{word} / {delta}"


# ---- the command line ---------------------------------------------------------------------


def parse_rtt_list(text: str) -> tuple[float, ...]:
    """An argparse ``type`` for ``--rtt-ms``: comma-separated milliseconds, finite and >= 0."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated milliseconds, got {text!r}") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError("RTTs must be finite numbers >= 0")
    return values


def hide_api_key(argv: Sequence[str]) -> list[str]:
    """``argv`` with the value of any ``--api-key`` (both spellings) replaced by ``<hidden>``."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append(HIDDEN)
            hide_next = False
        elif arg == "--api-key":
            shown.append(arg)
            hide_next = True
        elif arg.startswith("--api-key="):
            shown.append(f"--api-key={HIDDEN}")
        else:
            shown.append(arg)
    return shown


def command_line(prog: str, argv: Sequence[str]) -> str:
    """The exact command as a shell would take it: ``prog`` (e.g. "python -m benchmarks.connection") and the
    quoted arguments, with any API key replaced by ``<hidden>``."""
    return shlex.join([*shlex.split(prog), *hide_api_key(argv)])


def parse_command_line(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, list[str]]:
    """``argv`` (None: this process's arguments) parsed by ``parser``, and kept as a list for the
    command line the report shows."""
    kept = list(sys.argv[1:] if argv is None else argv)
    return parser.parse_args(kept), kept


# ---- the embedded server over TLS -------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost, written to a temp dir."""

    cert_path: Path
    key_path: Path
    client_context: ssl.SSLContext


@contextlib.contextmanager
def throwaway_tls() -> Iterator[TlsFiles]:
    """Create the certificate with ``trustme``; the directory is removed on exit."""
    import trustme  # only needed when the embedded server runs with TLS

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    with tempfile.TemporaryDirectory(prefix="warmvoice-bench-tls-") as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        leaf.private_key_pem.write_to_path(str(key_path))
        # The chain, so a client that trusts only the CA can verify the leaf.
        cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        context = ssl.create_default_context()
        ca.configure_trust(context)
        yield TlsFiles(cert_path, key_path, context)


def bench_server(
    tls: TlsFiles | None, api_key: Secret | None = None, n_threads: int | None = None
) -> EmbeddedLLMServer:
    """The embedded server as the benchmarks run it: HTTPS with the throw-away certificate
    (unless ``tls`` is None), requiring ``api_key`` if one is given, on ``n_threads`` threads
    (None: the server's own default)."""
    return EmbeddedLLMServer(
        n_threads=n_threads,
        api_key=api_key,
        ssl_certfile=tls.cert_path if tls else None,
        ssl_keyfile=tls.key_path if tls else None,
        client_ssl=tls.client_context if tls else None,
    )


# ---- interruption ---------------------------------------------------------------------------


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt like Ctrl-C, so ``finally`` blocks and
    context managers clean up (the default would exit on the spot); restored on exit."""
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_interruptible(body: Callable[[], int], say: Say = progress) -> int:
    """Run ``body`` and return its exit status; on Ctrl-C or SIGTERM say "interrupted" and return
    130 once everything inside ``body`` has unwound."""
    try:
        with sigterm_unwinds():
            return body()
    except KeyboardInterrupt:
        say("interrupted")
        return INTERRUPTED_EXIT
