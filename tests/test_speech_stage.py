"""The speech stage on its own: real Piper (and the real edge-tts engine, which cannot reach its
service here and fails), no LLM, no session.  A manual clock makes "what is playing" exact."""

from __future__ import annotations

import asyncio

from llm import ManualClock
from voice.events import AudioOut, Notice, SessionEvent
from voice.settings import Settings
from voice.speech import SpeechStage
from voice.timing import TurnOpened, TurnRecorder
from voice.tts import TTSEngine
from voice.tts.factory import make_tts, tts_for


def _stage(tts: TTSEngine, clock: ManualClock, events: list, *turns: int) -> tuple[SpeechStage, TurnRecorder]:
    """A speech stage reporting its timing to a recorder of its own, with ``turns`` opened (typed, now)."""
    recorder = TurnRecorder(events.append)
    for turn in turns:
        recorder.record(TurnOpened(turn, "text", clock.now()))
    return SpeechStage(tts, emit=events.append, timing=recorder.record, clock=clock.now), recorder


def _queue(*sentences: str) -> asyncio.Queue[str | None]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    for sentence in [*sentences, None]:
        queue.put_nowait(sentence)
    return queue


async def test_sentences_are_spoken_in_order_and_the_first_audio_is_stamped() -> None:
    clock, events = ManualClock(), []
    stage, recorder = _stage(tts_for(Settings(tts_engine="piper")), clock, events, 3)
    spoken: list[str] = []
    try:
        stage.new_reply()
        await stage.speak(3, _queue("Hello there.", "...", "How are you today?"), spoken)
    finally:
        await stage.tts.aclose()
    assert spoken == ["Hello there.", "...", "How are you today?"]  # the unspeakable one is kept as text
    audio = _audio(events)
    assert audio and all(e.turn == 3 for e in audio)
    lat = recorder.get(3)
    assert lat is not None and lat.first_audio_ms == 0.0 and lat.tts_engine == "piper"  # the manual clock stood still
    assert not [e for e in events if isinstance(e, Notice)]
    # Time stood still: everything sent is still to be heard, and it plays for as long as the audio lasts.
    seconds = sum(e.chunk.duration_s for e in audio)
    assert stage.speaking
    await clock.advance(seconds - 0.01)
    assert stage.speaking
    await clock.advance(0.02)
    assert not stage.speaking


async def test_a_cut_returns_the_sentence_playing_and_what_follows() -> None:
    clock, events = ManualClock(), []
    stage, _recorder = _stage(tts_for(Settings(tts_engine="piper")), clock, events, 1)
    first, second = "The first sentence is here.", "The second one follows it."
    try:
        stage.new_reply()
        await stage.speak(1, _queue(first, second), [])
    finally:
        await stage.tts.aclose()
    assert _audio(events)
    await clock.advance(0.1)  # the first sentence is playing
    assert stage.cut() == [first, second]
    assert not stage.speaking  # a cut stops what is playing


async def test_a_cut_after_the_first_sentence_was_heard_resumes_from_the_second() -> None:
    clock, events = ManualClock(), []
    stage, _recorder = _stage(tts_for(Settings(tts_engine="piper")), clock, events, 1)
    first, second = "One.", "And here is a much longer second sentence to hear."
    spoken: list[str] = []
    try:
        stage.new_reply()
        await stage.speak(1, _queue(first), spoken)
        first_ends = sum(e.chunk.duration_s for e in _audio(events))
        await stage.speak(1, _queue(second), spoken)  # same reply, more sentences
    finally:
        await stage.tts.aclose()
    await clock.advance(first_ends + 0.05)
    assert stage.cut() == [second]


async def test_a_failing_engine_is_said_once_and_the_reply_stays_text(unreachable_edge: None) -> None:
    # The real edge-tts engine pointed at a loopback port where nothing listens: it fails (fast) with
    # TTSError, and the test never reaches out to the real service even where there is internet.
    clock, events = ManualClock(), []
    stage, recorder = _stage(make_tts("edge", "en-US-AriaNeural", 1.0, edge_warm=False), clock, events, 1)
    spoken: list[str] = []
    try:
        await asyncio.wait_for(stage.speak(1, _queue("Hello.", "Still here.", "And here."), spoken), 30)
    finally:
        await stage.tts.aclose()
    failures = [e for e in events if isinstance(e, Notice) and e.level == "error"]
    assert len(failures) == 1 and "shown as text" in failures[0].text
    assert spoken == ["Hello.", "Still here.", "And here."]
    lat = recorder.get(1)
    assert lat is not None and lat.tts_engine == "none (failed)" and not _audio(events)


async def test_speak_again_says_the_cut_sentences_as_a_new_reply() -> None:
    clock, events = ManualClock(), []
    stage, _recorder = _stage(tts_for(Settings(tts_engine="piper")), clock, events, 2)
    spoken: list[str] = []
    try:
        await stage.speak_again(2, ["Where was I.", "Right, here."], spoken)
    finally:
        await stage.tts.aclose()
    assert _audio(events) and spoken == ["Where was I.", "Right, here."]
    assert stage.cut() == ["Where was I.", "Right, here."]


async def test_heard_is_what_started_playing_by_the_clock_or_by_the_page() -> None:
    first, second = "The first sentence is here.", "The second one follows it."
    clock, stage, events, spoken = await _spoken_reply(4, first, second)
    audio = _audio(events)
    assert spoken == [first, second] and {e.sentence for e in audio} == {0, 1}
    first_ends = sum(e.chunk.duration_s for e in audio if e.sentence == 0)
    # Time stood still: both went to playback, only the first has started.
    assert stage.heard() == ([first, second], [first])
    await clock.advance(first_ends + 0.01)
    assert stage.heard() == ([first, second], [first, second])
    # A page plays the audio: only the sentences its player reported count.
    stage.page_confirms = True
    assert stage.heard()[1] == []
    stage.confirm_playback(4, 0)
    stage.confirm_playback(3, 1)  # another turn's report: not this reply's
    assert stage.heard()[1] == [first]


async def _spoken_reply(turn: int, *sentences: str) -> tuple[ManualClock, SpeechStage, list[SessionEvent], list[str]]:
    """A reply of ``sentences`` spoken by Piper at a standing manual clock."""
    clock, events = ManualClock(), []
    stage, _recorder = _stage(tts_for(Settings(tts_engine="piper")), clock, events, turn)
    spoken: list[str] = []
    try:
        stage.new_reply()
        await stage.speak(turn, _queue(*sentences), spoken)
    finally:
        await stage.tts.aclose()
    return clock, stage, events, spoken


def _audio(events: list[SessionEvent]) -> list[AudioOut]:
    return [e for e in events if isinstance(e, AudioOut)]
