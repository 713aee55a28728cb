"""Text-to-speech engines: Piper for real, edge-tts against a local stand-in, the fallback.

Piper runs for real with the bundled ``en_US-joe-medium`` voice.  edge-tts runs its real
code (``Communicate``, aiohttp, TLS, its protocol parser) but talks to
``benchmarks/edge_standin.py``, a LOCAL STAND-IN of Microsoft's WebSocket service on 127.0.0.1
with a trustme certificate: the real service is unreachable here, so it is the one thing
mocked.  The only test that uses the real service URL checks that being offline fails fast.
Elapsed-time assertions are behaviour bounds (a timeout must hold), not speed goals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator

import edge_tts.communicate
import numpy as np
import pytest

from benchmarks.edge_standin import EdgeStandin, SilentTcpServer, encode_mp3, tone
from voice.tts.edge import CircuitBreaker, EdgeTTS, EdgeTTSError
from voice.tts.engine import (
    MAX_TEXT_CHARS,
    OUTPUT_SAMPLE_RATE,
    AudioChunk,
    EngineUnavailable,
    FallbackEvent,
    FallbackTTS,
    TTSError,
    bound_text,
    prefetch,
)
from voice.tts.factory import make_tts
from voice.tts.mp3_decoder import Mp3StreamDecoder
from voice.tts.piper import PiperTTS, bundled_voice_path, load_voice, sanitize_for_speech

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ARIA = "Microsoft Server Speech Text to Speech Voice (en-US, AriaNeural)"


# --- helpers and fixtures --------------------------------------------------------------


async def collect(stream: AsyncIterator[AudioChunk]) -> list[AudioChunk]:
    """Every chunk of ``stream``, closing it properly."""
    async with contextlib.aclosing(stream) as chunks:  # type: ignore[type-var]
        return [chunk async for chunk in chunks]


def joined(chunks: list[AudioChunk]) -> np.ndarray:
    return np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, dtype=np.float32)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def assert_common_format(chunks: list[AudioChunk]) -> None:
    for chunk in chunks:
        assert chunk.sample_rate == OUTPUT_SAMPLE_RATE == 24000
        assert chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1
        assert chunk.samples.size > 0
        assert float(np.max(np.abs(chunk.samples))) <= 1.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    return PiperTTS()


# --- Piper ------------------------------------------------------------------------------


async def test_piper_speaks_a_sentence_at_the_common_rate(piper: PiperTTS) -> None:
    chunks = await collect(piper.synthesize("Hello there, this is the offline voice speaking."))
    assert_common_format(chunks)
    audio = joined(chunks)
    assert rms(audio) > 0.02  # speech, not silence
    assert 1.5 < len(audio) / OUTPUT_SAMPLE_RATE < 6.0  # a sentence of ~10 words
    assert {c.engine for c in chunks} == {"piper"}
    assert piper.last_call is not None and piper.last_call.sentences == 1


async def test_piper_emits_each_sentence_as_soon_as_it_exists(piper: PiperTTS) -> None:
    text = "The first sentence is short. Here is the second one. A third follows. And the fourth ends it."
    chunks = await collect(piper.synthesize(text))
    assert len(chunks) == 4  # one chunk per sentence, not one for the whole text
    stats = piper.last_call
    assert stats is not None and stats.first_chunk_ms is not None
    assert stats.first_chunk_ms < stats.total_ms

    # Take the first sentence of a long text and stop: the rest is never synthesized,
    # which proves the first chunk was handed over before the whole text was done.
    many = " ".join(f"This is sentence number {i}." for i in range(30))
    async with contextlib.aclosing(piper.synthesize(many)) as stream:
        first = await anext(stream)
    assert first.samples.size > 0
    stats = piper.last_call
    assert stats is not None and stats.stopped_early
    assert 1 <= stats.sentences < 30


@pytest.mark.parametrize(
    ("text", "speaks"),
    [
        ("Hi 😀 there 👍🏽, nice to meet you!", True),
        ("Café, naïve, résumé.", True),
        ("Hello שלום world.", True),
        ("The 👨‍👩‍👧 family emoji has zero-width joiners.", True),
        ("שלום עולם", False),  # right-to-left script the English voice cannot say
        ("مرحبا بالعالم", False),
        ("日本語のテキスト", False),
        ("😀👍🏽🎉", False),
        ("", False),
        ("   \n\t ", False),
        ("!!! ... ???", False),
        ("\u200f\u202e\x00\x07", False),
    ],
)
async def test_piper_unicode_has_a_clear_outcome(piper: PiperTTS, text: str, speaks: bool) -> None:
    chunks = await collect(piper.synthesize(text))
    if speaks:
        assert_common_format(chunks)
        assert rms(joined(chunks)) > 0.02
    else:
        assert chunks == []


def test_sanitize_for_speech() -> None:
    assert sanitize_for_speech("Hi 😀 there 👍🏽!", latin_only=True) == "Hi there !"
    assert sanitize_for_speech("Hello שלום world", latin_only=True) == "Hello world"
    assert sanitize_for_speech("שלום", latin_only=True) == ""
    # Piper would read [[ ... ]] as raw phonemes; the brackets go.
    assert sanitize_for_speech("say [[ h ə ]] now", latin_only=True) == "say h ə now"
    assert sanitize_for_speech("a\u200db\u202ec\x00d", latin_only=True) == "a b c d"
    assert sanitize_for_speech("ﬁne café", latin_only=True) == "fine café"  # NFKC
    # A voice for another script keeps its letters and combining marks.
    assert sanitize_for_speech("नमस्ते 😀", latin_only=False) == "नमस्ते"
    assert sanitize_for_speech("?!", latin_only=False) == ""


def test_bound_text() -> None:
    assert bound_text("short") == "short"
    words = "word " * 20_000
    cut = bound_text(words)
    assert len(cut) <= MAX_TEXT_CHARS and cut.endswith("word") and " wor " not in cut + " "
    assert bound_text("x" * 5000) == "x" * MAX_TEXT_CHARS  # no space: a hard cut


async def test_piper_100kb_text_is_bounded(piper: PiperTTS) -> None:
    text = "This text goes on and on. " * 4000  # 104 kB
    async with asyncio.timeout(120):
        chunks = await collect(piper.synthesize(text))
    stats = piper.last_call
    assert stats is not None and not stats.stopped_early
    assert stats.text_chars <= MAX_TEXT_CHARS
    assert 0 < stats.sentences <= MAX_TEXT_CHARS // len("This text goes on and on. ") + 1
    assert_common_format(chunks)


async def test_piper_voice_is_loaded_once_and_shared() -> None:
    path = bundled_voice_path()
    assert path.name == "en_US-joe-medium.onnx" and path.with_suffix(".onnx.json").is_file()
    loaded: list[object] = []
    threads = [threading.Thread(target=lambda: loaded.append(load_voice(path))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(loaded) == 4 and all(voice is loaded[0] for voice in loaded)
    assert await PiperTTS()._voice() is await PiperTTS(path)._voice() is loaded[0]


def test_piper_runs_on_its_threads_without_spinning() -> None:
    """Each thread count has its own voice; a positive one is onnxruntime's intra-op pool of that
    size, idle threads sleeping (they would spin against the LLM server's thread otherwise)."""
    path = bundled_voice_path()
    one, default = load_voice(path, 1), load_voice(path, 0)
    assert one is not default and load_voice(path) is one  # 1 thread is the default
    options = one.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert default.session.get_session_options().intra_op_num_threads == 0  # onnxruntime decides
    assert PiperTTS(threads=0).threads == 0 and make_tts("piper", "en-US-AriaNeural", 3.0).threads == 1  # type: ignore[attr-defined]


async def test_piper_warm(piper: PiperTTS) -> None:
    await piper.warm()  # loads the voice and synthesizes once; must not raise
    await piper.aclose()


async def test_piper_bad_model_raises_tts_error(tmp_path: os.PathLike[str]) -> None:
    missing = PiperTTS("/nonexistent/voice.onnx")
    with pytest.raises(TTSError, match="not found"):
        await missing.warm()
    with pytest.raises(TTSError, match="not found"):
        await collect(missing.synthesize("Hello."))

    bogus = os.path.join(tmp_path, "bogus.onnx")
    with open(bogus, "wb") as f:
        f.write(b"not an onnx model")
    with open(bogus + ".json", "w", encoding="utf-8") as f:
        f.write('{"audio": {"sample_rate": 22050}}')
    with pytest.raises(TTSError, match="could not load"):
        await collect(PiperTTS(bogus).synthesize("Hello."))


# --- MP3 decoding -----------------------------------------------------------------------


def test_mp3_decoder_is_incremental_and_resamples(tone_mp3: bytes) -> None:
    decoder = Mp3StreamDecoder(OUTPUT_SAMPLE_RATE)
    pieces = [decoder.feed(tone_mp3[i : i + 200]) for i in range(0, len(tone_mp3), 200)]
    pieces.append(decoder.flush())
    assert sum(1 for p in pieces if p.size) > 5  # audio came out while bytes were arriving
    audio = np.concatenate(pieces)
    assert 0.95 < len(audio) / OUTPUT_SAMPLE_RATE < 1.15  # 1 s plus encoder padding
    assert abs(dominant_hz(audio, OUTPUT_SAMPLE_RATE) - 440) < 5

    # A 16 kHz stream with a junk ID3-like prefix: junk skipped, rate converted to 24 kHz.
    other = Mp3StreamDecoder(OUTPUT_SAMPLE_RATE)
    mp3_16k = encode_mp3(tone(300.0, 1.0, rate=16000), rate=16000, bitrate=32000)
    audio = np.concatenate([other.feed(b"ID3\x04\x00garbage" + mp3_16k), other.flush()])
    assert 0.95 < len(audio) / OUTPUT_SAMPLE_RATE < 1.2
    assert abs(dominant_hz(audio, OUTPUT_SAMPLE_RATE) - 300) < 5


# --- edge-tts against the local stand-in ---------------------------------------------


async def test_edge_streams_decoded_audio_from_the_service(standin: EdgeStandin, tone_mp3: bytes) -> None:
    edge = EdgeTTS("en-US-AriaNeural", timeout_s=3.0)
    text = "Hello from the stand-in & friends."
    chunks = await collect(edge.synthesize(text))

    assert_common_format(chunks)
    assert len(chunks) > 3  # decoded frame by frame as the 1 kB messages arrived
    audio = joined(chunks)
    assert 0.95 < len(audio) / OUTPUT_SAMPLE_RATE < 1.15
    assert rms(audio) > 0.2  # the 0.5-amplitude tone, not silence
    assert abs(dominant_hz(audio, OUTPUT_SAMPLE_RATE) - 440) < 5
    assert {c.engine for c in chunks} == {"edge"}

    [request] = standin.requests
    assert request.voice == ARIA
    assert request.text == "Hello from the stand-in &amp; friends."
    assert '"outputFormat":"audio-24khz-48kbitrate-mono-mp3"' in request.config

    stats = edge.last_call
    assert stats is not None and stats.completed and stats.error is None
    assert stats.audio_bytes == len(tone_mp3)
    assert stats.connect_ms is not None and stats.first_audio_ms is not None and stats.first_chunk_ms is not None
    assert 0 < stats.connect_ms <= stats.first_audio_ms <= stats.first_chunk_ms <= stats.total_ms
    assert edge.last_first_audio_ms == stats.first_audio_ms and edge.last_connect_ms == stats.connect_ms
    assert not edge.breaker.is_open


@pytest.mark.parametrize("mode", ["fail_before_audio", "reject"])
async def test_edge_failure_before_audio_raises_and_opens_breaker(standin: EdgeStandin, mode: str) -> None:
    standin.mode = mode  # type: ignore[assignment]
    edge = EdgeTTS(timeout_s=3.0)
    with pytest.raises(EdgeTTSError):
        await collect(edge.synthesize("Nobody will hear this."))
    assert edge.breaker.is_open
    stats = edge.last_call
    assert stats is not None and not stats.completed and stats.error and stats.first_audio_ms is None


async def test_edge_dropped_stream_is_an_error_not_truncated_audio(standin: EdgeStandin) -> None:
    standin.mode = "drop_mid_stream"
    edge = EdgeTTS(timeout_s=3.0)
    got: list[AudioChunk] = []
    with pytest.raises(EdgeTTSError, match=r"turn\.end"):
        async with contextlib.aclosing(edge.synthesize("This sentence gets cut off.")) as stream:
            async for chunk in stream:
                got.append(chunk)
    assert got  # some audio came before the drop
    assert edge.breaker.is_open


async def test_edge_silent_service_times_out(standin: EdgeStandin) -> None:
    standin.mode = "stall"
    edge = EdgeTTS(timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(EdgeTTSError, match="no audio within"):
        await collect(edge.synthesize("Hello?"))
    assert time.monotonic() - started < 0.5 + 1.0
    assert standin.requests  # it did connect and ask; the service just never answered


async def test_edge_stream_stalling_after_audio_times_out(standin: EdgeStandin) -> None:
    standin.mode = "stall_mid_stream"
    edge = EdgeTTS(timeout_s=0.5)
    got: list[AudioChunk] = []
    started = time.monotonic()
    with pytest.raises(EdgeTTSError, match="stalled"):
        async with contextlib.aclosing(edge.synthesize("Half of this arrives.")) as stream:
            async for chunk in stream:
                got.append(chunk)
    assert got and time.monotonic() - started < 0.5 + 1.0
    assert edge.breaker.is_open


async def test_edge_hanging_tls_handshake_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    async with SilentTcpServer() as silent:
        monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"wss://127.0.0.1:{silent.port}/edge/v1?x=1")
        edge = EdgeTTS(timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(EdgeTTSError, match="no audio within"):
            await collect(edge.synthesize("Hello?"))
        assert time.monotonic() - started < 0.5 + 1.0
        assert silent.connections == 1
        assert edge.last_call is not None and edge.last_call.connect_ms is None  # TLS never finished


async def test_edge_closed_port_fails_within_timeout(unreachable_edge: None) -> None:
    edge = EdgeTTS(timeout_s=3.0)
    started = time.monotonic()
    with pytest.raises(EdgeTTSError, match="failed"):
        await collect(edge.synthesize("Hello?"))
    assert time.monotonic() - started < 3.0 + 1.0


async def test_edge_real_service_fails_fast_offline() -> None:
    """The real default URL (no stand-in): offline, it must fail within timeout + 1 s."""
    assert edge_tts.communicate.WSS_URL.startswith("wss://speech.platform.bing.com/")
    edge = EdgeTTS(timeout_s=3.0)
    started = time.monotonic()
    with pytest.raises(TTSError) as failure:
        await collect(edge.synthesize("Is anybody out there?"))
    assert time.monotonic() - started < 3.0 + 1.0
    assert "SSLContext object" not in str(failure.value)  # a reason fit to show a user


async def test_edge_circuit_breaker_skips_then_retries(standin: EdgeStandin) -> None:
    clock = FakeClock()
    edge = EdgeTTS(timeout_s=3.0, cooldown_s=60.0, clock=clock)
    standin.mode = "fail_before_audio"
    with pytest.raises(EdgeTTSError):
        await collect(edge.synthesize("First try."))
    assert standin.connections == 1

    standin.mode = "ok"
    clock.now += 59.0
    with pytest.raises(EngineUnavailable, match="skipped"):
        await collect(edge.synthesize("Still cooling down."))
    assert standin.connections == 1  # refused without touching the network

    clock.now += 2.0  # cool-down over: one attempt goes through, and it succeeds
    assert rms(joined(await collect(edge.synthesize("Back again.")))) > 0.2
    assert standin.connections == 2
    assert not edge.breaker.is_open and edge.breaker.trips == 1


async def test_edge_caller_stopping_early_is_not_a_failure(standin: EdgeStandin) -> None:
    standin.pace_s = 0.02
    edge = EdgeTTS(timeout_s=3.0)
    async with contextlib.aclosing(edge.synthesize("Interrupted by barge-in.")) as stream:
        await anext(stream)
    stats = edge.last_call
    assert stats is not None and not stats.completed and stats.error is None
    assert not edge.breaker.is_open


def test_edge_rejects_an_invalid_voice() -> None:
    with pytest.raises(TTSError, match="voice"):
        EdgeTTS("not a voice")


# --- fallback ---------------------------------------------------------------------------


async def test_fallback_uses_edge_when_it_works(standin: EdgeStandin, piper: PiperTTS) -> None:
    tts = FallbackTTS(EdgeTTS(timeout_s=3.0), piper)
    chunks = await collect(tts.synthesize("All is well."))
    assert chunks and {c.engine for c in chunks} == {"edge"}
    assert tts.last_engine == "edge" and tts.fallbacks == 0 and not tts.events


async def test_fallback_piper_speaks_when_edge_fails_before_audio(standin: EdgeStandin, piper: PiperTTS) -> None:
    standin.mode = "fail_before_audio"
    seen: list[FallbackEvent] = []
    tts = FallbackTTS(EdgeTTS(timeout_s=3.0), piper, on_fallback=seen.append)
    chunks = await collect(tts.synthesize("Piper says this sentence."))
    assert_common_format(chunks)
    assert {c.engine for c in chunks} == {"piper"} and rms(joined(chunks)) > 0.02
    assert tts.last_engine == "piper" and tts.fallbacks == 1
    assert [e.stage for e in seen] == ["before_audio"] and seen[0].primary == "edge"

    # The rest of the turn skips edge (breaker open): no new connection, Piper at once.
    chunks = await collect(tts.synthesize("And this one too."))
    assert {c.engine for c in chunks} == {"piper"}
    assert standin.connections == 1
    assert [e.stage for e in tts.events] == ["before_audio", "skipped"] and tts.fallbacks == 2


async def test_fallback_mid_stream_drop_respeaks_with_piper(standin: EdgeStandin, piper: PiperTTS) -> None:
    standin.mode = "drop_mid_stream"
    tts = FallbackTTS(EdgeTTS(timeout_s=3.0), piper)
    sentence = "This sentence starts on edge and finishes on Piper."
    chunks = await collect(tts.synthesize(sentence))
    engines = [c.engine for c in chunks]
    first_piper = engines.index("piper")
    assert first_piper > 0 and set(engines[:first_piper]) == {"edge"} and set(engines[first_piper:]) == {"piper"}
    piper_audio = joined(chunks[first_piper:])
    assert len(piper_audio) / OUTPUT_SAMPLE_RATE > 2.0  # the whole sentence again, not a fragment
    assert tts.events[-1].stage == "mid_stream" and "turn.end" in tts.events[-1].reason
    assert tts.last_engine == "piper"

    chunks = await collect(tts.synthesize("The rest of the turn."))
    assert {c.engine for c in chunks} == {"piper"}
    assert standin.connections == 1 and tts.events[-1].stage == "skipped"


async def test_fallback_unreachable_edge_falls_back_within_timeout(unreachable_edge: None, piper: PiperTTS) -> None:
    tts = FallbackTTS(EdgeTTS(timeout_s=3.0), piper)
    started = time.monotonic()
    async with contextlib.aclosing(tts.synthesize("Offline, but still talking.")) as stream:
        first = await anext(stream)
    assert time.monotonic() - started < 3.0 + 1.0
    assert first.engine == "piper" and tts.events[-1].stage == "before_audio"


async def test_fallback_raises_tts_error_when_piper_fails_too(unreachable_edge: None) -> None:
    tts = FallbackTTS(EdgeTTS(timeout_s=3.0), PiperTTS("/nonexistent/voice.onnx"))
    with pytest.raises(TTSError, match="Piper voice not found"):
        await collect(tts.synthesize("Nobody can say this."))
    assert tts.fallbacks == 1


async def test_fallback_warm_survives_unreachable_edge(unreachable_edge: None, piper: PiperTTS) -> None:
    tts = FallbackTTS(EdgeTTS(timeout_s=3.0), piper)
    await tts.warm()
    assert [e.stage for e in tts.events] == ["warm"]
    started = time.monotonic()
    chunks = await collect(tts.synthesize("Turn one goes straight to Piper."))
    assert {c.engine for c in chunks} == {"piper"} and tts.events[-1].stage == "skipped"
    assert time.monotonic() - started < 3.0 + 1.0
    await tts.aclose()

    with pytest.raises(TTSError):
        await FallbackTTS(EdgeTTS(timeout_s=3.0), PiperTTS("/nonexistent/voice.onnx")).warm()


async def test_factory_engines_share_what_warm_up_learned(unreachable_edge: None) -> None:
    """The runtime warms a throwaway engine; the sessions' engines (given the runtime's breaker)
    must not retry edge."""
    breaker = CircuitBreaker()
    warmed = make_tts("auto", "en-US-AriaNeural", 3.0, breaker=breaker)
    await warmed.warm()
    await warmed.aclose()
    session_tts = make_tts("auto", "en-US-AriaNeural", 3.0, breaker=breaker)
    assert isinstance(session_tts, FallbackTTS)
    async with contextlib.aclosing(session_tts.synthesize("First turn.")) as stream:
        first = await anext(stream)
    assert first.engine == "piper" and session_tts.events[-1].stage == "skipped"
    # An engine built without the shared breaker has its own, closed one: it would try edge.
    own = make_tts("auto", "en-US-AriaNeural", 3.0)
    assert isinstance(own, FallbackTTS) and isinstance(own.primary, EdgeTTS) and not own.primary.breaker.is_open


# --- prefetch ---------------------------------------------------------------------------


async def test_prefetch_overlaps_the_next_sentence(standin: EdgeStandin) -> None:
    standin.pace_s = 0.02  # ~0.15 s per sentence, so the overlap is observable
    edge = EdgeTTS(timeout_s=3.0)
    first = prefetch(edge, "Sentence one.")
    second = prefetch(edge, "Sentence two.")
    async with first, second:
        one = [c async for c in first.chunks()]
        # Sentence two was requested while sentence one was still being read.
        assert {r.text for r in standin.requests} == {"Sentence one.", "Sentence two."}
        two = [c async for c in second.chunks()]
        with pytest.raises(RuntimeError):
            await anext(second.chunks())
    assert rms(joined(one)) > 0.2 and rms(joined(two)) > 0.2
    assert standin.connections == 2 and len(edge.calls) == 2


async def test_prefetch_close_cancels_and_errors_propagate(standin: EdgeStandin) -> None:
    standin.pace_s = 0.05
    edge = EdgeTTS(timeout_s=3.0)
    pending = prefetch(edge, "Never played.")
    await asyncio.sleep(0)
    await pending.aclose()  # barge-in: cancelled, nothing left running
    assert pending.done

    standin.mode = "fail_before_audio"
    async with prefetch(EdgeTTS(timeout_s=3.0), "Fails.") as failing:
        with pytest.raises(EdgeTTSError):
            async for _ in failing.chunks():
                pass


# --- factory ----------------------------------------------------------------------------


def test_make_tts_builds_what_settings_ask_for() -> None:
    piper = make_tts("piper", "en-US-AriaNeural", 3.0)
    assert isinstance(piper, PiperTTS) and piper.model_path == bundled_voice_path()

    local = make_tts("piper", "/voices/en_GB-alan-low.onnx", 3.0)
    assert isinstance(local, PiperTTS) and str(local.model_path) == "/voices/en_GB-alan-low.onnx"

    edge = make_tts("edge", "en-US-GuyNeural", 1.5)
    assert isinstance(edge, EdgeTTS) and edge.voice == "en-US-GuyNeural" and edge.timeout_s == 1.5

    auto = make_tts("auto", "en-US-AriaNeural", 2.0)
    assert isinstance(auto, FallbackTTS)
    assert isinstance(auto.primary, EdgeTTS) and auto.primary.timeout_s == 2.0
    assert isinstance(auto.fallback, PiperTTS) and auto.fallback.model_path == bundled_voice_path()

    # Reachability is the host's: the breaker handed in is the one every engine uses.
    shared = CircuitBreaker(5.0)
    assert make_tts("edge", "en-US-AriaNeural", 3.0, breaker=shared).breaker is shared
    assert edge.breaker is not auto.primary.breaker  # none handed in: each its own

    assert isinstance(make_tts("auto", "/voices/mine.onnx", 3.0), PiperTTS)
    with pytest.raises(TTSError):
        make_tts("edge", "/voices/mine.onnx", 3.0)
    with pytest.raises(TTSError):
        make_tts("espeak", "en-US-AriaNeural", 3.0)
    with pytest.raises(TTSError):
        make_tts("auto", "Aria please", 3.0)
