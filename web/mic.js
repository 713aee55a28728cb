// WarmVoice's microphone path: the page captures the microphone itself and streams 20 ms frames of
// 16-bit PCM over one WebSocket to the app (web/mic_socket.py), each frame headed by when its last
// sample was captured and when it was sent, on this page's clock (performance.now()).  One socket,
// one way: a frame reaches the server half a round trip after it leaves the page, where Gradio's
// streaming microphone needs two requests per 100 ms chunk (an upload, then the queue request).
// When the socket cannot open (an old browser, a proxy without WebSockets) or fails, Gradio's
// streaming microphone carries the audio instead: start()'s fallback presses its record button.
window.warmvoiceMic = (() => {
  const RATE = 16000;  // the endpointer's rate: the AudioContext resamples the microphone to it
  const FRAME_MS = 20;
  const HEADER = 16;  // captured_ms, sent_ms: two little-endian float64
  const WINDOW = 100;  // frames (2 s) the capture clock is taken from, as web/uplink.js does
  // Waiting for "Start speaking" to open the session (the models may still be loading): tries
  // 300 ms apart at first, backing off to 2 s, for at most 3 minutes.
  const RETRY_MS = 300, RETRY_MAX_MS = 2000, RETRY_FOR_MS = 180000;
  const OPEN_TIMEOUT_MS = 5000;  // a socket not open by then (a proxy holding it) is given up
  const MAX_BUFFERED = 64 * 1024;  // bytes not yet sent: a frame past that is dropped, not delayed
  const state = { session: null, path: null, run: 0, socket: null, capture: null,
                  sent: 0, dropped: 0, refused: 0, closeCode: null, reason: "" };

  // The worklet cuts the audio thread's 128-sample blocks into frames and hands them over.
  const WORKLET = `class WarmvoiceFrames extends AudioWorkletProcessor {
    constructor(options) { super(); this.size = options.processorOptions.size; this.reset(); }
    reset() { this.frame = new Int16Array(this.size); this.filled = 0; }
    process(inputs) {
      const channel = inputs[0] && inputs[0][0];
      if (channel) {
        for (let i = 0; i < channel.length; i++) {
          const v = Math.max(-1, Math.min(1, channel[i]));
          this.frame[this.filled++] = v < 0 ? v * 32768 : v * 32767;
          if (this.filled === this.size) { this.port.postMessage(this.frame.buffer, [this.frame.buffer]); this.reset(); }
        }
      }
      return true;
    }
  }
  registerProcessor("warmvoice-frames", WarmvoiceFrames);`;

  // Gradio names the tab's session in every queue request; the socket's hello names it too.
  const originalFetch = window.fetch;
  window.fetch = function (input, init) {
    try {
      const url = typeof input === "string" ? input : (input && input.url) || "";
      if (init && init.method === "POST" && /\/queue\/join(\?|$)/.test(url) && typeof init.body === "string") {
        const hash = JSON.parse(init.body).session_hash;
        if (typeof hash === "string" && hash) state.session = hash;
      }
    } catch (e) { /* never in the way of Gradio's own request */ }
    return originalFetch.apply(this, arguments);
  };

  function socketUrl() {
    const root = (window.gradio_config && window.gradio_config.root) || location.origin + location.pathname;
    const url = new URL("warmvoice/mic", root.endsWith("/") ? root : root + "/");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  async function openCapture() {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    let ctx;
    try { ctx = new AudioContext({ sampleRate: RATE }); } catch (e) { ctx = new AudioContext(); }
    const capture = { stream, ctx, node: null, samples: 0, origins: [] };
    try {
      const module = URL.createObjectURL(new Blob([WORKLET], { type: "application/javascript" }));
      await ctx.audioWorklet.addModule(module);
      URL.revokeObjectURL(module);
      const size = Math.round((ctx.sampleRate * FRAME_MS) / 1000);
      const node = new AudioWorkletNode(ctx, "warmvoice-frames", { processorOptions: { size } });
      node.port.onmessage = (event) => frame(capture, event.data);
      // Pulled by the audio graph through a silent gain: nothing is heard.
      const mute = ctx.createGain();
      mute.gain.value = 0;
      ctx.createMediaStreamSource(stream).connect(node);
      node.connect(mute);
      mute.connect(ctx.destination);
      capture.node = node;
      if (ctx.state === "suspended") await ctx.resume();
    } catch (e) {
      release(capture);
      throw e;
    }
    return capture;
  }

  function release(capture) {
    if (!capture) return;
    try {
      if (capture.node) capture.node.port.onmessage = null;
      for (const track of capture.stream.getTracks()) track.stop();
      capture.ctx.close();
    } catch (e) { /* already released */ }
  }

  function frame(capture, buffer) {
    // Frame n's last sample was captured at t0 + (samples so far) / rate, where t0 is the smallest
    // (arrival - audio so far) of the recent frames: the least delayed hand-over from the audio thread.
    const now = performance.now();
    const pcm = new Int16Array(buffer);
    const perMs = capture.ctx.sampleRate / 1000;
    capture.samples += pcm.length;
    capture.origins.push(now - capture.samples / perMs);
    if (capture.origins.length > WINDOW) capture.origins.shift();
    const socket = state.socket;
    if (!socket || !socket.ready || socket.ws.readyState !== WebSocket.OPEN) return;  // no session yet
    if (socket.ws.bufferedAmount > MAX_BUFFERED) {
      state.dropped += 1;
      return;
    }
    const out = new ArrayBuffer(HEADER + pcm.byteLength);
    const view = new DataView(out);
    view.setFloat64(0, Math.min(...capture.origins) + capture.samples / perMs, true);
    view.setFloat64(8, performance.now(), true);
    new Int16Array(out, HEADER).set(pcm);
    socket.ws.send(out);
    state.sent += 1;
  }

  function giveUp(run, fallback, why) {
    if (run !== state.run) return;
    console.warn(`WarmVoice: microphone socket unavailable (${why}); using Gradio's streaming microphone`);
    state.reason = why;
    state.path = "gradio";
    state.run += 1;  // this attempt is over: its late events change nothing
    if (state.socket) state.socket.ws.close();
    state.socket = null;
    release(state.capture);
    state.capture = null;
    fallback();
  }

  function connect(run, started, fallback) {
    if (run !== state.run) return;
    if (!state.session) {  // the start's own queue request names the session in a moment
      setTimeout(() => connect(run, started, fallback), 50);
      return;
    }
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (e) {
      giveUp(run, fallback, String(e));
      return;
    }
    ws.binaryType = "arraybuffer";
    const socket = { ws, ready: false };
    state.socket = socket;
    const timer = setTimeout(() => { if (ws.readyState === WebSocket.CONNECTING) ws.close(); }, OPEN_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(timer);
      ws.send(JSON.stringify({ session: state.session, rate: state.capture.ctx.sampleRate }));
    };
    ws.onmessage = (event) => {
      try {
        if (JSON.parse(event.data).ready === true) {
          socket.ready = true;
          state.path = "websocket";
        }
      } catch (e) { /* not the server's answer */ }
    };
    ws.onclose = (event) => {
      clearTimeout(timer);
      state.closeCode = event.code;
      if (run !== state.run) return;  // stopped, or given up already
      if (state.socket === socket) state.socket = null;
      if (!socket.ready && event.code === 4404 && performance.now() - started < RETRY_FOR_MS) {
        const wait = Math.min(RETRY_MAX_MS, RETRY_MS * 1.5 ** state.refused);
        state.refused += 1;  // "Start speaking" has not opened the session yet
        setTimeout(() => connect(run, started, fallback), wait);
      } else if (socket.ready && event.code === 1000) {
        stop();  // the session ended (the server closed it)
      } else {
        giveUp(run, fallback, `socket closed with code ${event.code}`);
      }
    };
  }

  async function start(fallback) {
    stop();
    const run = state.run;
    state.refused = 0;
    if (!window.WebSocket || !window.AudioWorkletNode || !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
      giveUp(run, fallback, "this browser has no WebSocket or AudioWorklet");
      return;
    }
    let capture;
    try {
      capture = await openCapture();
    } catch (e) {
      giveUp(run, fallback, `no capture: ${e}`);
      return;
    }
    if (run !== state.run) {
      release(capture);
      return;
    }
    state.capture = capture;
    connect(run, performance.now(), fallback);
  }

  function stop() {
    state.run += 1;
    if (state.socket) state.socket.ws.close(1000, "stop");
    state.socket = null;
    release(state.capture);
    state.capture = null;
  }

  window.addEventListener("pagehide", stop);
  return { state, start, stop };
})();
