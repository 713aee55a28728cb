"""llama.cpp's prompt cache: the prompt's start stays byte-identical from turn to turn, and the
embedded server's own log shows the hit (tokens taken from the cache, tokens evaluated)."""

from __future__ import annotations

import itertools
import json
import urllib.request

import pytest

from benchmarks.prompt_cache import QUESTIONS as BENCHMARK_QUESTIONS
from llm import PromptCacheReport, parse_prompt_cache_log
from llm.embedded_server import MODEL_ALIAS, EmbeddedLLMServer
from voice.conversation import Conversation
from voice.prompting import SMALL_MODEL
from voice.settings import DEFAULT_SYSTEM_PROMPT

# Lines as llama-cpp-python 0.3's server writes them (copied from a run, the long ones cut), between its noise.
HIT_LOG = """\
INFO:     127.0.0.1:38482 - "POST /v1/chat/completions HTTP/1.1" 200 OK
Llama.generate: 187 prefix-match hit, remaining 13 prompt tokens to eval
llama_graph_n_input_tensors: input tensor 'attn_inp_k_idxs' [i64, ne = {1, 1, 1, 1}] is used by node
llama_perf_context_print:        load time =       0.39 ms
llama_perf_context_print: prompt eval time =      72.69 ms /    13 tokens (    5.59 ms per token,   178.84 tokens
llama_perf_context_print:        eval time =      49.11 ms /     7 runs   (    7.02 ms per token,   142.53 tokens
llama_perf_context_print:       total time =     141.11 ms /    20 tokens
"""
MISS_LOG = """\
llama_perf_context_print: prompt eval time =     210.50 ms /   201 tokens (    1.05 ms per token,   954.87 tokens
llama_perf_context_print:        eval time =      41.36 ms /     6 runs   (    6.89 ms per token,   145.09 tokens
"""
QUESTIONS = BENCHMARK_QUESTIONS[:6]  # the benchmark's turns, up to the first block drop and one past it


def test_a_hit_line_and_the_timings_make_one_report() -> None:
    assert parse_prompt_cache_log(HIT_LOG) == [PromptCacheReport(187, 13)]
    assert parse_prompt_cache_log(HIT_LOG)[0].hit
    assert parse_prompt_cache_log(HIT_LOG)[0].describe() == "187 cached + 13 evaluated"


def test_timings_without_a_hit_line_are_a_miss() -> None:
    (report,) = parse_prompt_cache_log(MISS_LOG)
    assert report == PromptCacheReport(0, 201) and not report.hit
    assert PromptCacheReport(150, 40, completed=False).describe() == "150 cached + 40 evaluated (cut off)"


def test_a_completion_cut_off_before_its_timings_is_still_reported() -> None:
    cut = "Llama.generate: 150 prefix-match hit, remaining 40 prompt tokens to eval\n"
    assert parse_prompt_cache_log(cut + HIT_LOG + MISS_LOG + cut) == [
        PromptCacheReport(150, 40, completed=False),
        PromptCacheReport(187, 13),
        PromptCacheReport(0, 201),
        PromptCacheReport(150, 40, completed=False),  # still running when the log was read
    ]


def test_a_whole_cached_prompt_and_noise() -> None:
    whole = "Llama.generate: full prompt already cached, skipping reset\n" + MISS_LOG.replace("201", "0")
    (report,) = parse_prompt_cache_log(whole)
    assert report.reused_tokens is None and report.evaluated_tokens == 0 and report.hit
    assert parse_prompt_cache_log('INFO:     "GET /v1/models HTTP/1.1" 200 OK\nllama_kv_cache: size = 45 MiB\n') == []


def _turns(conv: Conversation, replies: list[str]) -> list[str]:
    """The JSON of each turn's request messages, the replies added as the session adds them."""
    sent = []
    for question, reply in zip(QUESTIONS, replies, strict=True):
        # The preemptive request (messages_with, during the pause) is the turn's very request.
        early = conv.messages_with(question)
        conv.add_user(question)
        assert conv.messages() == early
        sent.append(json.dumps(conv.messages()))
        conv.add_assistant(reply)
    return sent


def test_every_request_starts_with_the_same_bytes() -> None:
    conv = Conversation(DEFAULT_SYSTEM_PROMPT, style=SMALL_MODEL)
    prefix = json.dumps(conv.prefix())[:-1]  # without the closing bracket: more messages follow
    # Replies that do not echo each other (an echo would hide its exchanges: voice.prompting).
    replies = ["Paris.", "Eight legs.", "Blue, mostly.", "William Shakespeare did.", "A banana.", "Honey."]
    sent = _turns(conv, replies)
    assert all(s.startswith(prefix + ", ") for s in sent)
    # Between two block drops a request only appends to the one before: its whole prompt is cached.
    appended = [len(after) > len(before) for before, after in itertools.pairwise(sent)]
    assert appended == [True, True, True, False, True]  # 0, 1, 2, 3 earlier exchanges, then 1, 2
    for before, after in itertools.pairwise(sent):
        if len(after) > len(before):
            assert after.startswith(before[:-1] + ", ")


def _complete(server: EmbeddedLLMServer, messages: list[dict[str, str]]) -> str:
    body = {"model": MODEL_ALIAS, "max_tokens": 24, "temperature": 0, "stop": ["\n"], "messages": messages}
    url, headers = f"{server.base_url}/chat/completions", {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:  # loopback only
        return str(json.load(response)["choices"][0]["message"]["content"]).strip()


@pytest.mark.slow
def test_the_server_log_shows_the_prefix_cache_holding_from_turn_to_turn() -> None:
    conv = Conversation(DEFAULT_SYSTEM_PROMPT, style=SMALL_MODEL)
    with EmbeddedLLMServer() as server:
        server.prime(conv.prefix())  # as the app does at start-up
        reports: list[PromptCacheReport] = []
        lengths: list[int] = []
        for question in QUESTIONS:
            conv.add_user(question)
            messages = conv.messages()
            mark = server.log_position()
            reply = _complete(server, messages)
            (report,) = server.prompt_cache_since(mark)
            reports.append(report)
            lengths.append(len(messages))
            conv.add_assistant(reply or "I am not sure.")
        # A changed first line (a time stamp in the system prompt, say) leaves nothing to reuse
        # but the chat template's first tokens.
        mark = server.log_position()
        _complete(server, [{"role": "system", "content": "It is 10:42. " + DEFAULT_SYSTEM_PROMPT}, *messages[1:]])
        (changed,) = server.prompt_cache_since(mark)
    first = reports[0]
    assert first.reused_tokens is not None and first.reused_tokens > 100  # system prompt + examples, from prime()
    for n in range(1, len(reports)):
        before, now = reports[n - 1], reports[n]
        assert now.reused_tokens is not None and now.completed
        if lengths[n] > lengths[n - 1]:  # only appended: the whole previous prompt was cached
            assert before.reused_tokens is not None
            assert now.reused_tokens >= before.reused_tokens + before.evaluated_tokens
        else:  # the history was dropped in a block: the system prompt and examples still were
            assert now.reused_tokens >= first.reused_tokens
    assert any(lengths[n] < lengths[n - 1] for n in range(1, len(lengths)))  # a block drop happened
    assert changed.reused_tokens is not None and changed.reused_tokens < 10
    assert changed.evaluated_tokens > first.reused_tokens


def test_the_changed_prefix_differs_only_in_its_first_line() -> None:
    from benchmarks.prompt_cache import changed_prefix

    messages = Conversation("Be brief.", style=SMALL_MODEL).messages_with("Hi")
    a, b = changed_prefix(messages, "0-1"), changed_prefix(messages, "0-2")
    assert a[1:] == b[1:] == messages[1:] and a[0] != b[0]
    assert a[0]["content"].endswith("Be brief.") and a[0]["role"] == "system"


def test_prompt_cache_bench_refuses_an_unbounded_run(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.prompt_cache import main

    for runs in ("0", "21"):
        with pytest.raises(SystemExit) as exc:
            main(["--runs", runs])
        assert exc.value.code == 2
    assert "--runs must be between 1 and 20" in capsys.readouterr().err


@pytest.mark.slow
def test_prompt_cache_bench_measures_both_variants(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.prompt_cache import main

    assert main(["--runs", "1", "--json", str(tmp_path / "pc.json"), "--markdown", str(tmp_path / "pc.md")]) == 0
    report = json.loads((tmp_path / "pc.json").read_text())
    markdown = (tmp_path / "pc.md").read_text()
    assert markdown == capsys.readouterr().out
    assert "Machine probe: CPU AVX2" in markdown and "load average" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(report["turns"]) == len(BENCHMARK_QUESTIONS)
    seen = [t["seen_exchanges"] for t in report["turns"]]
    assert seen[:4] == [0, 1, 2, 3] and max(seen) == SMALL_MODEL.max_exchanges and seen[4] < 3  # then a block drop
    for turn in report["turns"]:
        (warm,), (changed,) = turn["cache"]["warm"], turn["cache"]["changed"]
        assert len(turn["first_token_ms"]["warm"]) == len(turn["first_token_ms"]["changed"]) == 1
        # The warm prefix is found in the cache; the changed one only up to its changed first line.
        assert warm["reused_tokens"] > 100 > changed["reused_tokens"]
        assert changed["evaluated_tokens"] > warm["evaluated_tokens"]
    assert all(report["replies"]) and report["machine"]["probe"]["whisper_ms"] > 0


def test_the_panel_shows_the_turns_prompt_cache_once_known() -> None:
    from voice.latency import TurnLatency
    from voice.panel import current_turn_html

    lat = TurnLatency(turn=2, speech_end_at=10.0)
    assert "prompt-cache" not in current_turn_html(lat)  # a remote endpoint: nothing to show
    lat = TurnLatency(
        turn=2, speech_end_at=10.0, extras={"prompt_cached_tokens": 207.0, "prompt_evaluated_tokens": 19.0}
    )
    assert "<span data-fact='prompt-cache'>207 tokens from the cache + 19 evaluated</span>" in current_turn_html(lat)


@pytest.mark.slow
async def test_a_sessions_turns_carry_the_prompt_cache_measured_by_the_server(voice_runtime) -> None:
    from voice.headless import run_typed_turn

    session = voice_runtime.new_session("prompt-cache")
    await session.start()
    try:
        first = (await run_typed_turn(session, "What is the capital of France?")).latency
        second = (await run_typed_turn(session, "How many legs does a spider have?")).latency
    finally:
        await session.stop()
    assert first.outcome == second.outcome == "ok"
    # What the first turn finds cached depends on the server's last request (another test's, with
    # another system prompt, or this prompt already): measured, whatever it is.  The second finds
    # at least the system prompt and examples its first turn left there.
    assert first.extras["prompt_cached_tokens"] >= 0 and second.extras["prompt_cached_tokens"] > 100
    # The second request appends to the first one's prompt and reply, which llama.cpp still holds.
    assert second.extras["prompt_cached_tokens"] > first.extras["prompt_cached_tokens"]
