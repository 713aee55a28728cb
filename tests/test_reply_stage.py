"""The reply stage on its own: text in, sentences out, from a real loopback OpenAI-compatible
server (connections counted server-side).  No audio anywhere: the stage does not need any."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest

from llm import Secret
from tests.llm_servers import LLMServer, reply, status
from voice.events import AssistantSaid, Notice, SessionEvent
from voice.latency import TurnLatency
from voice.llm_endpoint import LLMEndpoint
from voice.prompting import NOT_CAUGHT, SMALL_MODEL
from voice.reply import ReplyStage
from voice.settings import Settings
from voice.timing import TurnOpened, TurnRecorder

TWO_SENTENCES = "Paris is the capital of France. It lies on the Seine."
QUESTION = "What is the capital of France?"


@pytest.fixture
def server(server: LLMServer) -> LLMServer:
    """The shared loopback server, answering TWO_SENTENCES unless a test scripts it."""
    server.default = reply(TWO_SENTENCES)
    return server


@contextlib.asynccontextmanager
async def opened_stage(
    server: LLMServer, events: list[SessionEvent], **settings: object
) -> AsyncIterator[tuple[ReplyStage, TurnRecorder]]:
    """A reply stage talking to ``server``, opened (and warmed, when pre-warmed), with the recorder
    of its timing; closed on exit."""
    endpoint = LLMEndpoint(base_url=server.base_url, model="test-model", api_key=Secret("sk-test"), reason="test")
    recorder = TurnRecorder(events.append)
    stage = ReplyStage(
        Settings().replace(**settings), endpoint, emit=events.append, timing=recorder.record, clock=time.perf_counter
    )
    await stage.open()
    try:
        await stage.wait_warm()
        yield stage, recorder
    finally:
        await stage.close()


async def _reply(stage: ReplyStage, recorder: TurnRecorder, text: str) -> tuple[str | None, TurnLatency, list[str]]:
    """Turn 1 (typed now) answered by the stage: its error, its record, its sentences."""
    recorder.record(TurnOpened(1, "text", time.perf_counter()))
    got: list[str] = []
    error = await stage.run(1, text, got.append)
    lat = recorder.get(1)
    assert lat is not None
    return error, lat, got


async def test_the_reply_streams_sentences_over_the_warm_connection(server: LLMServer) -> None:
    events: list[SessionEvent] = []
    async with opened_stage(server, events, connection_strategy="prewarmed") as (stage, recorder):
        assert stage.warmup is not None and stage.warmup.ok
        error, lat, got = await _reply(stage, recorder, QUESTION)
        stage.remember(got)
    assert got == ["Paris is the capital of France.", "It lies on the Seine."]
    assert [e.text for e in events if isinstance(e, AssistantSaid)] == got
    assert error is None and lat.sentences == 2 and lat.outcome == "running"  # the turn runner decides the outcome
    assert lat.request_sent_ms is not None and lat.first_token_ms is not None and lat.first_sentence_ms is not None
    assert lat.request_sent_ms <= lat.first_token_ms <= lat.first_sentence_ms
    assert lat.reused_connection is True and server.connections == 1  # the warm-up's connection
    assert [m["role"] for m in stage.conversation.turns] == ["user", "assistant"]
    assert stage.state == "closed" and stage.client is None


async def test_a_rejected_key_ends_the_turn_as_an_error_said_once(server: LLMServer) -> None:
    server.script(status(401, "Incorrect API key provided"))
    events: list[SessionEvent] = []
    async with opened_stage(server, events, connection_strategy="pooled") as (stage, recorder):
        error, _, got = await _reply(stage, recorder, "Hello?")
    assert got == [] and "401" in (error or "")
    errors = [e for e in events if isinstance(e, Notice) and e.level == "error"]
    assert len(errors) == 1 and "sk-test" not in errors[0].text
    assert len(server.chat_requests()) == 1  # a 401 is not retried


@pytest.mark.parametrize("early", [QUESTION, "What is the capital"])
async def test_a_preempted_request_is_adopted_only_for_the_same_words(server: LLMServer, early: str) -> None:
    async with opened_stage(server, [], connection_strategy="prewarmed", preemptive_generation=True) as (
        stage,
        recorder,
    ):
        stage.preempt(early)  # the pause's early transcript
        _, lat, got = await _reply(stage, recorder, QUESTION)
    assert got == ["Paris is the capital of France.", "It lies on the Seine."]
    asked = [json.loads(r.body)["messages"][-1]["content"] for r in server.chat_requests()]
    stats = stage.preemptive.stats
    if early == QUESTION:  # the very request: adopted, no second one
        assert asked == [QUESTION] and lat.extras.get("preemptive") == 1.0 and stats.adopted == 1
    else:  # the user went on after the pause: that request is dropped, the turn's own one answers
        assert asked[-1] == QUESTION and "preemptive" not in lat.extras and stats.wasted == 1


async def test_reconnect_applies_a_new_distance_with_a_new_pool(server: LLMServer) -> None:
    async with opened_stage(server, [], connection_strategy="pooled") as (stage, recorder):
        first = stage.client
        stage.settings = stage.settings.replace(emulated_rtt_ms=40.0)
        await stage.reconnect()
        assert stage.client is not None and stage.client is not first
        error, lat, got = await _reply(stage, recorder, "Hello?")
    assert got and error is None
    assert server.connections == 1  # one connection, opened by the new pool
    # Through the delaying proxy: the answer cannot come back sooner than one emulated round trip.
    assert lat.first_token_ms is not None and lat.request_sent_ms is not None
    assert lat.first_token_ms - lat.request_sent_ms >= 40.0


# -- a reply that copies an answer the model was shown (issue #23) --------------------------------

COPY = "There are seven days in a week."  # the answer of one of the small model's examples
MISHEARD = "What do these make?"


async def _copied_turn(server: LLMServer, mode: str) -> tuple[list[str], TurnLatency, list[list[dict]]]:
    events: list[SessionEvent] = []
    async with opened_stage(server, events, connection_strategy="pooled", copied_reply=mode) as (stage, recorder):
        stage.conversation.style = SMALL_MODEL  # what the embedded model gets
        _, lat, got = await _reply(stage, recorder, MISHEARD)
    requests = [json.loads(r.body)["messages"] for r in server.chat_requests()]
    assert [e.text for e in events if isinstance(e, AssistantSaid)] == got, "nothing else reached the page"
    return got, lat, requests


async def test_a_copied_first_sentence_is_never_said_and_the_model_is_asked_again(server: LLMServer) -> None:
    server.script(reply(f"{COPY} It is a week."), reply("I am not sure what you mean."))
    got, lat, requests = await _copied_turn(server, "ask-again")
    assert got == ["I am not sure what you mean."]
    assert lat.extras["copied_replies"] == 1.0 and lat.extras["asked_again"] == 1.0
    first, again = requests
    examples = len(SMALL_MODEL.examples)
    assert len(first) == len(again) + examples, "asked again without the examples"
    assert again[-1] == {"role": "user", "content": MISHEARD}


async def test_a_second_copy_or_the_not_caught_setting_says_it_did_not_catch_that(server: LLMServer) -> None:
    server.script(reply(COPY), reply(COPY))
    got, lat, requests = await _copied_turn(server, "ask-again")
    assert got == [NOT_CAUGHT] and lat.extras["copied_replies"] == 2.0 and len(requests) == 2
    server.script(reply(COPY))
    before = len(server.chat_requests())
    got, lat, _ = await _copied_turn(server, "not-caught")
    assert got == [NOT_CAUGHT] and len(server.chat_requests()) == before + 1


async def test_off_speaks_the_copy_and_a_new_answer_passes(server: LLMServer) -> None:
    server.script(reply(COPY))
    got, lat, _ = await _copied_turn(server, "off")
    assert got == [COPY] and "copied_replies" not in lat.extras
    server.script(reply("Bees make honey and wax."))
    got, lat, _ = await _copied_turn(server, "ask-again")
    assert got == ["Bees make honey and wax."] and "copied_replies" not in lat.extras
