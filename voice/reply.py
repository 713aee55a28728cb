"""The reply stage: the user's words in, the assistant's sentences out, from the pooled LLM client.

One :class:`ReplyStage` per session owns what talks to the LLM: the session's own
:class:`~llm.PooledLLMClient` (pre-warmed in the background when it opens, so the TCP+TLS set-up
overlaps the user's first sentence), the delaying proxy that emulates distance, the conversation
history with its reply style, and the preemptive request sent during a pause
(:mod:`voice.preemptive`).  Each LLM stage is reported as a timing event (:mod:`voice.timing`)
the moment the client measures it.  It knows nothing about audio: sentences go to a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from llm import (
    EVENT_CONNECTED,
    EVENT_FIRST_TOKEN,
    EVENT_RETRY,
    EVENT_STATUS,
    STRATEGY_LABELS,
    AuthError,
    ConnectionState,
    EmbeddedLLMServer,
    LatencyProxy,
    LLMError,
    LLMEvent,
    PooledLLMClient,
    PoolLimits,
    PromptCacheReport,
    RequestTiming,
    SplitterConfig,
    Timeouts,
    WarmUpResult,
)
from voice.conversation import Conversation
from voice.events import AssistantSaid, Emit, Level, Notice, ReplyRecorded, Status
from voice.llm_endpoint import LLMEndpoint
from voice.preemptive import PreemptiveGeneration
from voice.prompting import NOT_CAUGHT, RunawayGuard, UncopiedReply, reply_style
from voice.settings import Settings
from voice.timing import (
    PromptCacheRead,
    ReplyCopied,
    RequestRetried,
    RequestSent,
    RequestTimed,
    SentenceReady,
    Timing,
)

log = logging.getLogger(__name__)


class ReplyStage:
    """LLM -> sentences for one session: client, proxy, history, preemptive requests.

    ``settings`` is the session's (which replaces it when the page changes one): the connection
    (strategy, emulated RTT, pool, timeouts) and the reply's shape.  A new connection setting
    takes effect at :meth:`reconnect`.  ``emit`` receives the stage's events, ``timing`` its timing.
    """

    def __init__(
        self, settings: Settings, endpoint: LLMEndpoint, *, emit: Emit, timing: Timing, clock: Callable[[], float]
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.conversation = Conversation(
            settings.system_prompt, settings.max_history_chars, style=reply_style(endpoint.is_embedded)
        )
        self.preemptive = PreemptiveGeneration()
        self.warmup: WarmUpResult | None = None
        self._emit = emit
        self._timing = timing
        # The turn whose reply is being asked for: the client's events of a chat request are its.
        self._turn: int | None = None
        self._retries_said = 0  # of that turn's request: the retries the user was told of
        self._clock = clock
        self._client: PooledLLMClient | None = None
        self._proxy: LatencyProxy | None = None
        self._warm_task: asyncio.Task[None] | None = None
        self._log_mark = 0  # the embedded server's log, read up to here (see _note_prompt_cache)
        self._cut_turn = 0  # the turn whose reply a barge-in cut last (a resumed reply belongs to it)

    @property
    def client(self) -> PooledLLMClient | None:
        """The pooled LLM client (None before :meth:`open` and after :meth:`close`)."""
        return self._client

    @property
    def state(self) -> ConnectionState:
        """cold / warming / warm / idle / closed, from the client."""
        return "closed" if self._client is None else self._client.state

    # ----------------------------------------------------------------- connection

    async def open(self) -> None:
        """Open the client (through the delaying proxy for an emulated distance) and, for the
        pre-warmed strategy, start its warm-up in the background."""
        settings = self.settings
        base_url = self.endpoint.base_url
        # With an emulated distance the sockets go through the delaying proxy, while the URL
        # (Host header, TLS name, certificate check) stays the real endpoint's.
        connect_to: tuple[str, int] | None = None
        if settings.emulated_rtt_ms > 0:
            parts = urlsplit(base_url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            self._proxy = LatencyProxy(parts.hostname or "127.0.0.1", port, rtt_ms=settings.emulated_rtt_ms)
            await self._proxy.start()
            connect_to = (self._proxy.host, self._proxy.port)
        style = self.conversation.style
        self._client = PooledLLMClient(
            base_url=base_url,
            api_key=self.endpoint.api_key,
            model=self.endpoint.model,
            strategy=settings.connection_strategy,
            pool=PoolLimits(limit=settings.pool_limit),
            timeouts=Timeouts(
                connect=settings.connect_timeout_s,
                first_byte=settings.first_byte_timeout_s,
                chunk=settings.chunk_timeout_s,
            ),
            connect_to=connect_to,
            ssl=self.endpoint.ssl,
            on_event=self._on_llm_event,
            temperature=settings.llm_temperature if settings.llm_temperature is not None else style.temperature,
            # Speech can start on the first clause: time to first audio grows with its length.
            splitter=SplitterConfig(first_max_words=settings.first_sentence_max_words),
        )
        self.warmup = None
        if self.endpoint.server is not None:
            self._log_mark = await asyncio.to_thread(self.endpoint.server.log_position)
        if settings.connection_strategy == "prewarmed":
            self._emit(Status("Pre-warming…", "warming"))
            self._warm_task = asyncio.create_task(self._warm(self._client), name="warm-up")
        else:
            label = STRATEGY_LABELS[settings.connection_strategy]
            self._emit(Status(f"Ready ({label}: no pre-warm)", self.state))

    async def close(self) -> None:
        """Cancel the warm-up, close the client and the proxy.  Idempotent."""
        await self.preemptive.aclose()
        if self._warm_task is not None and not self._warm_task.done():
            self._warm_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._warm_task
        self._warm_task = None
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            await proxy.stop()

    async def reconnect(self) -> None:
        """A new pool (and warm-up) under :attr:`settings`: turns under each connection setting
        are measured from the same start."""
        opened = self._client is not None
        await self.close()
        if opened:
            await self.open()

    async def wait_warm(self) -> WarmUpResult | None:
        """Wait for the background warm-up (if one runs) and return its result."""
        if self._warm_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._warm_task)
        return self.warmup

    async def _warm(self, client: PooledLLMClient) -> None:
        result = await client.warm_up()
        if client is not self._client:
            return
        self.warmup = result
        if result.ok:
            self._emit(Status(f"Connection ready in {result.ms:.0f} ms", client.state))
        else:
            level: Level = "error" if isinstance(result.failure, AuthError) else "warning"
            self._emit(Status(result.error or "warm-up failed", client.state, level))

    async def ensure_endpoint(self) -> str | None:
        """Restart the embedded server if it died (and reopen the pool to it).  None when the
        endpoint is up; else the turn's error (the user has been told)."""
        try:
            restarted = await self.endpoint.ensure_running()
        except Exception as exc:  # e.g. another program took its port: the next turn tries again
            log.error("The embedded LLM server could not be restarted: %s", exc)
            self._emit(
                Notice(
                    "The local LLM server stopped and could not be restarted; "
                    "it will be tried again on your next turn.",
                    "error",
                )
            )
            return "the local LLM server could not be restarted"
        if restarted:
            self._emit(Notice("The local LLM server had stopped; it was restarted.", "warning"))
            await self.reconnect()
        return None

    # ----------------------------------------------------------------- the reply

    def preempt(self, text: str, *, speak_ahead: bool = True) -> None:
        """Send the request for ``text`` (a pause's early transcript) now, before the turn is over;
        ``speak_ahead``: its first sentence may be synthesized before the turn is (PREEMPTIVE_TTS)."""
        client = self._client
        if not self.settings.preemptive_generation or client is None:
            return
        style = self.conversation.style
        messages = self.conversation.messages_with(text)
        self.preemptive.start(
            client, messages, text, max_tokens=style.max_tokens, stop=style.stop, speak_ahead=speak_ahead
        )

    async def run(self, turn: int, text: str, on_sentence: Callable[[str], None]) -> str | None:
        """Ask the LLM to answer ``text`` (turn ``turn``) and hand each sentence of the reply to
        ``on_sentence``; returns the turn's error, or None.

        The request sent during the pause is adopted when it asked exactly this; otherwise one
        request is sent now.  A rejected key or a failed request ends the turn as an error, said
        to the user; what was said before a failure stays said.
        """
        client = self._client
        assert client is not None, "the reply stage is not open"
        self.conversation.add_user(text)
        messages = self.conversation.messages()
        style = self.conversation.style
        # The very request, sent during the pause (same history, transcript and options), or None.
        early = self.preemptive.take(messages, max_tokens=style.max_tokens, stop=style.stop)
        self._turn, self._retries_said = turn, 0
        self._timing(RequestSent(turn, early.sent_at if early is not None else self._clock(), early is not None))
        stream = self._uncopied(
            turn,
            text,
            early.adopt()
            if early is not None
            else client.stream_sentences(messages, max_tokens=style.max_tokens, stop=style.stop),
        )
        error: str | None = None
        sentences = 0
        try:
            guard = RunawayGuard(style.max_sentences)
            async for sentence in stream:
                if not guard.accept(sentence):
                    continue  # a runaway reply: what was said so far is the answer
                at = self._clock()
                sentences += 1
                self._emit(AssistantSaid(turn, sentence))
                request = early.timing if early is not None else client.last_request
                self._timing(SentenceReady(turn, at, len(sentence), request))
                on_sentence(sentence)
        except AuthError as exc:
            error = str(exc)
            self._emit(Status("API key rejected", self.state, "error"))
            self._emit(Notice(str(exc), "error"))
        except LLMError as exc:
            error = str(exc)
            if sentences:
                self._emit(Notice(f"The reply was cut off: {exc}", "warning"))
            else:
                self._emit(Notice(f"The LLM did not answer: {exc}", "error"))
        finally:
            if self._turn == turn:  # a newer turn's request may already be under way
                self._turn = None
            request = early.timing if early is not None else client.last_request
            if request is not None:
                self._timing(RequestTimed(turn, request))
            if early is not None:
                await early.cancel()  # done already, or the turn was cut short: stop streaming
        await self._note_prompt_cache(turn)
        return error

    async def _uncopied(self, turn: int, text: str, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        """``stream``'s sentences, unless its first copies an answer the model was shown
        (:func:`voice.prompting.copied_answer`): that reply is dropped before a word of it is
        spoken, and COPIED_REPLY decides what comes instead: the model asked again without the
        examples (whose reply is checked the same way), or :data:`NOT_CAUGHT`."""
        conversation, mode = self.conversation, self.settings.copied_reply
        answered = conversation.answered()
        check = conversation.style.check_copies and mode != "off"
        copied = UncopiedReply(stream, text, answered if check else None)
        async for sentence in copied.sentences():
            yield sentence
        if not copied.copied:
            return
        self._timing(ReplyCopied(turn, 1, asked_again=False))
        log.info("Turn %d: the reply's first sentence copies an earlier answer; %s", turn, mode)
        if mode == "ask-again" and self._client is not None:
            retry = conversation.without_examples()
            style = conversation.style
            self._timing(ReplyCopied(turn, 1, asked_again=True))
            again = self._client.stream_sentences(retry.messages(), max_tokens=style.max_tokens, stop=style.stop)
            second = UncopiedReply(again, text, answered)
            async for sentence in second.sentences():
                yield sentence
            if not second.copied:
                return
            self._timing(ReplyCopied(turn, 2, asked_again=True))
        yield NOT_CAUGHT

    async def _note_prompt_cache(self, turn: int) -> None:
        """The embedded server only: what llama.cpp took from its prompt cache for this reply (the
        last completion it logged since the previous turn's reply), in the turn's extras as
        ``prompt_cached_tokens`` and ``prompt_evaluated_tokens``.  Read from its log, off the
        event loop.  With several sessions on one server, that completion may be another's."""
        server = self.endpoint.server
        if server is None:
            return
        start = self._log_mark
        self._log_mark, reports = await asyncio.to_thread(_log_since, server, start)
        if reports and reports[-1].reused_tokens is not None:
            self._timing(PromptCacheRead(turn, reports[-1].reused_tokens, reports[-1].evaluated_tokens))

    def withdraw(self, text: str) -> None:
        """Take the user's ``text`` back out of the history: the turn carried on into the next."""
        self.conversation.withdraw_user(text)

    def remember(self, said: list[str]) -> None:
        """What the assistant said in a turn (the sentences whose playback started), for the history."""
        self.conversation.record_reply(said)

    def remember_cut(self, turn: int, said: list[str], heard: list[str]) -> None:
        """Turn ``turn``'s reply went to playback as ``said`` and was cut: only ``heard`` stays in
        the history, marked interrupted, and the page is told."""
        text = self.conversation.cut_reply(said, heard)
        if text is not None:
            self._cut_turn = turn
            self._emit(ReplyRecorded(turn, text, interrupted=True))

    def remember_resumed(self, said: list[str], complete: bool) -> None:
        """The cut reply was spoken again (``said``; ``complete``: all of the rest of it)."""
        text = self.conversation.resume_reply(said, complete)
        if text is not None:
            self._emit(ReplyRecorded(self._cut_turn, text, interrupted=not complete))

    # ----------------------------------------------------------------- the client's stages

    def _on_llm_event(self, name: LLMEvent, payload: RequestTiming | WarmUpResult) -> None:
        """The client's stage callbacks: each LLM stage of the turn's request, the moment it is known."""
        turn = self._turn
        if turn is None or not isinstance(payload, RequestTiming) or payload.kind != "chat":
            return
        if name in (EVENT_STATUS, EVENT_FIRST_TOKEN, EVENT_CONNECTED):
            self._timing(RequestTimed(turn, payload))
        elif name == EVENT_RETRY:
            # A dead pooled connection is replayed at once on a fresh one (stale_retries, no back-off):
            # the user waits for nothing, so only real retries (payload.retries) are announced.
            if payload.retries > self._retries_said:
                self._retries_said = payload.retries
                why = payload.error or (f"HTTP {payload.status}" if payload.status else "connection failed")
                self._emit(Notice(f"LLM request failed ({why}); retrying…", "warning"))
            self._timing(RequestRetried(turn, payload.attempts, payload.retries))


def _log_since(server: EmbeddedLLMServer, start: int) -> tuple[int, list[PromptCacheReport]]:
    """(the log's end now, the prompt reports of the completions logged from ``start`` to it)."""
    end = server.log_position()
    return end, server.prompt_cache_since(start, end)
