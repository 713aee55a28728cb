"""``python -m benchmarks.prompt_cache``: the LLM's first token against the history's length,
llama.cpp's prefix cache warm or broken.

The embedded server (SmolLM2-135M, the app's thread count) answers one conversation of
:data:`QUESTIONS` asked the way the session asks them: the app's :class:`Conversation` with the
small-model style (system prompt, example exchanges, the last 1-3 exchanges dropped in blocks)
and its request settings (temperature 0 here, so every run says the same).  The replies are
made once, before anything is timed, and every run then sends the very same requests.

Two variants per run, in alternating order:

* ``warm``: as the app does.  The server is primed with the prefix (as at start-up), then the
  turns follow one another, so each request starts with the tokens of the one before;
* ``changed``: every request's system prompt starts with a line that differs from request to
  request (a time stamp in the prompt, say), so llama.cpp finds nothing but the chat template's
  first tokens in its cache.

Each request is streamed to its end with the app's pooled client (pre-warmed connection), and
its time from request to first token is the client's own stamp; the tokens llama.cpp took from
its cache and evaluated are read from the server's log (:mod:`llm.prompt_cache`).  Medians over
``--runs``.  Progress on stderr, the Markdown report on stdout; ``--json``/``--markdown`` write
files.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import (
    MachineInfo,
    Summary,
    Table,
    command_line,
    format_cell,
    load_average,
    machine_info,
    progress,
    write_json_file,
)
from benchmarks.machine_probe import run_probe
from benchmarks.report import publish
from llm import EMBEDDED_MODEL, EmbeddedLLMServer, PooledLLMClient, PromptCacheReport
from voice.conversation import Conversation
from voice.prompting import SMALL_MODEL
from voice.settings import DEFAULT_SYSTEM_PROMPT

PROG = "python -m benchmarks.prompt_cache"
REPORT = "prompt_cache"  # docs/measurements/prompt_cache.md
VARIANTS = ("warm", "changed")
# Seven turns: histories of 0-3 earlier exchanges, then past the cap of 3 (the block drop).
QUESTIONS = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky?",
    "Who wrote Hamlet?",
    "Name a fruit that is yellow.",
    "What do bees make?",
    "How many minutes are in an hour?",
)

REQUEST_TIMEOUT_S = 60.0


@dataclass
class TurnCell:
    """One turn of the conversation: what the model sees, and each variant's measurements."""

    turn: int  # 0-based: how many exchanges came before in the conversation
    seen_exchanges: int  # earlier exchanges in the request (the style's window)
    messages: int
    first_token_ms: dict[str, list[float]] = field(default_factory=dict)
    cache: dict[str, list[PromptCacheReport]] = field(default_factory=dict)


@dataclass
class PromptCacheRun:
    """The whole run: where, how, and every turn's samples."""

    command: str
    machine: MachineInfo
    runs: int
    server_threads: int
    turns: list[TurnCell]
    replies: list[str]
    wall_time_s: float


def changed_prefix(messages: list[dict[str, str]], tag: str) -> list[dict[str, str]]:
    """``messages`` with a first line that differs per request (``tag``) before the system prompt."""
    first, *rest = messages
    return [{**first, "content": f"Request {tag}. {first['content']}"}, *rest]


async def _ask(client: PooledLLMClient, messages: list[dict[str, str]]) -> tuple[str, float | None]:
    """Stream one reply to its end as the session does; (reply, ms from request to first token)."""
    parts = [
        p
        async for p in client.stream_tokens(
            messages, max_tokens=SMALL_MODEL.max_tokens, temperature=0.0, stop=SMALL_MODEL.stop
        )
    ]
    timing = client.last_request
    return "".join(parts).strip(), None if timing is None else timing.first_token_ms


async def _measure(server: EmbeddedLLMServer, runs: int) -> tuple[list[TurnCell], list[str]]:
    conv = Conversation(DEFAULT_SYSTEM_PROMPT, style=SMALL_MODEL)  # the app's, for the embedded model
    async with PooledLLMClient(server.base_url, model=EMBEDDED_MODEL, strategy="prewarmed") as client:
        await client.warm_up()
        # The conversation, once, untimed: its requests are then replayed identically in every run.
        await asyncio.to_thread(server.prime, conv.prefix())
        requests: list[list[dict[str, str]]] = []
        replies: list[str] = []
        for question in QUESTIONS:
            conv.add_user(question)
            requests.append(conv.messages())
            reply, _ = await asyncio.wait_for(_ask(client, requests[-1]), REQUEST_TIMEOUT_S)
            replies.append(reply)
            conv.add_assistant(reply)
        prefix = len(conv.prefix())
        cells = [TurnCell(n, (len(m) - prefix - 1) // 2, len(m)) for n, m in enumerate(requests)]
        for r in range(runs):
            for variant in VARIANTS if r % 2 == 0 else tuple(reversed(VARIANTS)):
                if variant == "warm":  # as the app does at start-up
                    await asyncio.to_thread(server.prime, conv.prefix())
                for cell, messages in zip(cells, requests, strict=True):
                    sent = messages if variant == "warm" else changed_prefix(messages, f"{r}-{cell.turn}")
                    mark = server.log_position()
                    _, ms = await asyncio.wait_for(_ask(client, sent), REQUEST_TIMEOUT_S)
                    reports = await asyncio.to_thread(server.prompt_cache_since, mark)
                    if ms is not None:
                        cell.first_token_ms.setdefault(variant, []).append(round(ms, 1))
                    if reports:
                        cell.cache.setdefault(variant, []).append(reports[-1])
                progress(f"run {r + 1}/{runs}, {variant}: done")
    return cells, replies


def _tokens(reports: list[PromptCacheReport]) -> str:
    """``"232 + 17"`` (cached + evaluated, medians), or "—" without a report."""
    if not reports:
        return "—"
    cached = Summary.of(r.reused_tokens for r in reports).median
    evaluated = Summary.of(r.evaluated_tokens for r in reports).median
    return f"{'all' if cached is None else f'{cached:.0f}'} + {evaluated:.0f}"


def render_markdown(run: PromptCacheRun) -> str:
    """The report: how it was run, then one row per turn (publish() adds the machine and probe)."""
    table = Table(
        [
            "Turn (earlier exchanges)",
            "Exchanges the model sees",
            "Kept prefix: tokens cached + evaluated",
            "Kept prefix: request → first token",
            "Changed prefix: tokens cached + evaluated",
            "Changed prefix: request → first token",
        ]
    )
    for c in run.turns:
        warm, changed = (Summary.of(c.first_token_ms.get(v, [])) for v in VARIANTS)
        table.add(
            c.turn,
            c.seen_exchanges,
            _tokens(c.cache.get("warm", [])),
            format_cell(warm),
            _tokens(c.cache.get("changed", [])),
            format_cell(changed),
        )
    lines = [
        "# LLM first token against history length, prefix cache kept or broken",
        "",
        f"- Wall time {run.wall_time_s:.0f} s; embedded SmolLM2-135M, "
        f"{run.server_threads} llama.cpp thread(s); the app's small-model prompting (system prompt, "
        f"{len(SMALL_MODEL.examples) // 2} example exchanges, the last 1–{SMALL_MODEL.max_exchanges} exchanges "
        "dropped in blocks), temperature 0, each reply streamed to its end",
        f"- Request → first token: the pooled client's stamp, median (min–max) of {run.runs} run(s). Tokens: "
        "taken from llama.cpp's cache + evaluated for the request, from the server's own log (medians).",
        "",
        table.markdown(),
    ]
    return "\n".join(lines) + "\n"


def write_json(run: PromptCacheRun, path: Path) -> None:
    """Every sample, the machine and the replies, as JSON."""
    write_json_file(dataclasses.asdict(run), path)


def main(argv: Sequence[str] | None = None) -> int:
    """Probe the machine, run both variants ``--runs`` times, print and write the report."""
    p = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="conversations per variant (default 5)")
    p.add_argument("--json", type=Path, help="write every sample as JSON here")
    p.add_argument("--markdown", type=Path, help="write the Markdown report here")
    args = p.parse_args(argv)
    if not 1 <= args.runs <= 20:
        p.error("--runs must be between 1 and 20")
    started = time.perf_counter()
    progress("Timing the machine probe...")
    probe = run_probe()
    load_start = load_average()
    with EmbeddedLLMServer() as server:
        cells, replies = asyncio.run(_measure(server, args.runs))
        threads = server.n_threads
    run = PromptCacheRun(
        command=command_line(PROG, sys.argv[1:] if argv is None else list(argv)),
        machine=machine_info(load_start, probe=probe),
        runs=args.runs,
        server_threads=threads,
        turns=cells,
        replies=replies,
        wall_time_s=round(time.perf_counter() - started, 1),
    )
    outputs = [(args.json, functools.partial(write_json, run))]
    publish(REPORT, render_markdown(run), run.command, run.machine, outputs=outputs, markdown_path=args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
