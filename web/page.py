"""The page: where each component sits and which callback each browser event runs.

The callbacks themselves are :class:`web.callbacks.PageCallbacks`; the reply player and the
page's half of the pings are ``web/player.js``, loaded into the page's head.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from llm import STRATEGY_LABELS
from voice import panel
from voice.browser_link import MAX_PONG_CHARS
from voice.llm_endpoint import model_caveat
from voice.player_messages import MAX_REPORT_CHARS
from voice.recognizer import ENGINE_LABELS
from voice.tts import VoiceCatalog
from voice.turns import TURN_DETECTOR_LABELS
from web.callbacks import PageCallbacks

STRATEGY_CHOICES = [(label, key) for key, label in STRATEGY_LABELS.items()]
TURN_DETECTOR_CHOICES = [(label, key) for key, label in TURN_DETECTOR_LABELS.items()]
STT_ENGINE_CHOICES = [(label, key) for key, label in ENGINE_LABELS.items()]
# One click on "Start speaking" starts the session (Python), the browser capture and the reply
# player (browsers only start audio from a user gesture).  The capture is the page's own
# (web/mic.js: 20 ms frames over one WebSocket, web/mic_socket.py); when its socket cannot open,
# the fallback presses the record button of Gradio's streaming microphone.
# Gradio 6's streaming recorder loads its WAV encoder (two modules and a worker) after the page
# has rendered; a record press before that finds no recorder class, throws in a promise and
# leaves the component showing "recording" while nothing is ever sent (seen in the browser
# test under CPU load, about 1 s after the page loaded).  So the press waits until the page
# is RECORDER_READY_MS old; a person clicking later than that waits for nothing.
RECORDER_READY_MS = 3000
START_MIC_JS = f"""(...args) => {{ window.warmvoice && window.warmvoice.ensure();
  const press = (tries) => {{ const b = document.querySelector('#mic button.record-button');
    if (b) b.click(); else if (tries > 0) setTimeout(() => press(tries - 1), 100); }};
  const gradioMic = () => setTimeout(() => press(30), Math.max(0, {RECORDER_READY_MS} - performance.now()));
  if (window.warmvoiceMic) window.warmvoiceMic.start(gradioMic); else gradioMic();
  return args; }}"""
STOP_MIC_JS = """(...args) => { window.warmvoiceMic && window.warmvoiceMic.stop();
  document.querySelector('#mic button.stop-button')?.click(); return args; }"""


# The reply player (and the page's half of the pings), the fallback microphone's capture clock,
# and the page's own microphone path.
PLAYER_HEAD = "".join(
    f"<script>{(Path(__file__).parent / name).read_text()}</script>" for name in ("player.js", "uplink.js", "mic.js")
)


def build_page(app: PageCallbacks) -> gr.Blocks:
    """The page: its components, and which of ``app``'s callbacks each event runs."""
    s = app.settings
    with gr.Blocks(title="WarmVoice") as demo:
        gr.Markdown(
            "# WarmVoice\nA voice agent that answers out loud fast, and shows where every millisecond "
            "went. Click **Start speaking**, ask a question, pause: the reply starts as soon as its "
            "first sentence exists. The connection to the LLM is pre-warmed while you talk."
        )
        with gr.Row(equal_height=True):
            start = gr.Button("Start speaking", variant="primary", size="lg", elem_id="start-speaking", scale=3)
            stop = gr.Button("Stop", variant="stop", size="lg", elem_id="stop", scale=1)
        status = gr.Markdown("Click **Start speaking** to begin.", elem_id="status")
        with gr.Row():
            with gr.Column(scale=3):
                caveat = model_caveat(s)
                gr.Markdown(caveat or "", visible=caveat is not None, elem_id="model-caveat")
                chat = gr.Chatbot(label="Conversation", elem_id="chat", height=360)
                with gr.Row():
                    typed = gr.Textbox(
                        placeholder="…or type a turn and press Enter",
                        show_label=False,
                        scale=4,
                        elem_id="typed",
                        max_length=100_000,
                    )
                    send = gr.Button("Send", scale=1, elem_id="send")
                mic = gr.Audio(
                    sources=["microphone"],
                    streaming=True,
                    type="numpy",
                    label="Microphone",
                    elem_id="mic",
                    waveform_options=gr.WaveformOptions(show_recording_waveform=False),
                )
                # Reply audio goes to web/player.js (Web Audio), not a streamed gr.Audio: see there.
                reply = gr.Textbox(visible=False, elem_id="reply-audio")
                # The player clicks this (hidden) button when a turn's audio starts playing;
                # its report travels in the hidden text box.
                played = gr.Button("playing", elem_id="playback-started", elem_classes=["wv-hidden"])
                played_report = gr.Textbox(visible=False, elem_id="playback-report", max_length=MAX_REPORT_CHARS)
                # The same way back for the answers to the server's pings (voice/browser_link.py).
                pong = gr.Button("pong", elem_id="pong", elem_classes=["wv-hidden"])
                pong_report = gr.Textbox(visible=False, elem_id="pong-report", max_length=MAX_PONG_CHARS)
            with gr.Column(scale=2):
                current = gr.HTML(panel.current_turn_html(None), elem_id="current-turn")
                facts = gr.Markdown("", elem_id="facts")
        with gr.Accordion("All turns", open=True):
            table = gr.Dataframe(headers=panel.TURN_COLUMNS, value=[], interactive=False, elem_id="turns", wrap=True)
            chart = gr.Plot(label="Where the time went (ms after your speech ended)", elem_id="chart")
        with gr.Accordion("A/B and settings", open=True):
            with gr.Row():
                strategy = gr.Radio(
                    STRATEGY_CHOICES, value=s.connection_strategy, label="Connection strategy", elem_id="strategy"
                )
                rtt = gr.Slider(
                    0,
                    1000,
                    value=s.emulated_rtt_ms,
                    step=10,
                    elem_id="rtt",
                    label="Emulated network distance (extra round-trip ms)",
                )
            with gr.Row():
                silence = gr.Slider(
                    200,
                    2000,
                    value=s.end_of_turn_silence_ms,
                    step=50,
                    label="Silence that ends a turn (silence-only and word-list detectors, ms)",
                    elem_id="silence",
                )
                detector = gr.Dropdown(
                    TURN_DETECTOR_CHOICES, value=s.turn_detector, label="End-of-turn detector", elem_id="detector"
                )
                stt = gr.Dropdown(STT_ENGINE_CHOICES, value=s.stt_engine, label="Speech recognizer", elem_id="stt")
                barge = gr.Checkbox(value=s.barge_in, label="Barge-in (interrupt the reply by speaking)")
                voices = VoiceCatalog.from_settings(s)
                voice = gr.Dropdown(
                    voices.names,
                    value=voices.name_of(s.tts_voice),
                    label="Voice",
                    interactive=s.tts_engine != "piper",
                )
            prompt = gr.Textbox(value=s.system_prompt, label="System prompt", lines=2, max_length=4000)

        controls = [strategy, rtt, prompt, silence, barge]
        outputs = [status, chat, reply, current, table, chart, facts]
        limit = s.max_sessions
        started = start.click(app.start, controls, status, js=START_MIC_JS, concurrency_limit=limit, api_name="start")
        # "multiple": Stop then Start again must get its pump even while the old one is still
        # winding down (Gradio's default, "once", silently dropped the new one).
        started.then(app.set_turn_detector, detector, None, api_visibility="private", show_progress="hidden")
        started.then(app.set_stt_engine, stt, None, api_visibility="private", show_progress="hidden")
        started.then(
            app.pump,
            None,
            outputs,
            concurrency_limit=limit,
            api_name="events",
            show_progress="hidden",
            trigger_mode="multiple",
        )
        mic.stream(
            app.hear_stream,
            mic,
            None,
            stream_every=0.1,
            time_limit=int(s.session_max_s),
            concurrency_limit=limit,
            api_visibility="private",
            show_progress="hidden",
        )
        stop.click(app.stop, None, status, js=STOP_MIC_JS, api_name="stop")
        reply.change(None, reply, None, js="(payload) => { window.warmvoice && window.warmvoice.play(payload); }")
        played.click(
            app.playback_started,
            played_report,
            None,
            api_visibility="private",
            show_progress="hidden",
            js="() => window.warmvoice ? window.warmvoice.takeReports() : '[]'",
            concurrency_limit=limit,
            trigger_mode="always_last",
        )
        pong.click(
            app.pong,
            pong_report,
            None,
            api_visibility="private",
            show_progress="hidden",
            js="() => window.warmvoice ? window.warmvoice.takePongs() : '[]'",
            concurrency_limit=limit,
            trigger_mode="always_last",
        )
        for trigger in (send.click, typed.submit):
            trigger(app.type_turn, typed, typed, concurrency_limit=limit, api_visibility="private")
        for change in (strategy.change, rtt.change, prompt.change, silence.change, barge.change):
            change(app.configure, controls, None, api_visibility="private", show_progress="hidden")
        voice.change(app.set_voice, voice, None, api_visibility="private")
        detector.change(app.set_turn_detector, detector, None, api_visibility="private", show_progress="hidden")
        stt.change(app.set_stt_engine, stt, None, api_visibility="private", show_progress="hidden")
        demo.unload(app.unload)
    return demo
