// WarmVoice's reply player: plays PCM chunks the moment they arrive, gap-free, with Web Audio.
// Gradio's streamed <audio> output buffers about two seconds before it starts (HLS); for a
// latency demo that would hide everything the server saves, so reply audio comes here instead.
// When a sentence's first chunk has really started (the audio clock passed its start time), the
// player tells the server: the first sentence's report stamps "playing in your browser" on the
// turn, and every report tells the server that sentence was heard (the history keeps only those).  A payload may
// also carry a ping from the server (voice/browser_link.py): it is answered at once through the
// same kind of event as the playback report, so the server measures the page <-> server trip.
window.warmvoice = (() => {
  const state = { ctx: null, next: 0, sources: [], seen: new Set(), session: null,
                  chunks: 0, scheduledSeconds: 0, flushes: 0, firstStartedAt: null,
                  confirmedTurns: new Set(), timers: [], reports: [], reported: 0,
                  pongs: [], pings: 0 };

  function ensure() {
    // Called from the "Start speaking" click: browsers only let a user gesture start audio.
    if (!state.ctx) state.ctx = new AudioContext();
    if (state.ctx.state === "suspended") state.ctx.resume();
    return state.ctx;
  }

  function clearTimers() {
    for (const timer of state.timers) clearTimeout(timer);
    state.timers = [];
  }

  function flush() {
    for (const source of state.sources) {
      try { source.stop(); } catch (e) { /* already ended */ }
    }
    state.sources = [];
    state.next = 0;
    state.flushes += 1;
    clearTimers();  // audio stopped before it started is not "playing"
  }

  function decode(ctx, chunk) {
    const bytes = Uint8Array.from(atob(chunk.pcm), (c) => c.charCodeAt(0));
    const pcm = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
    const buffer = ctx.createBuffer(1, pcm.length, chunk.rate);
    const out = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
    return buffer;
  }

  function confirmWhenPlaying(session, turn, sentence, at, receivedAt) {
    // A timer is only a wake-up: the report goes once the audio clock itself is past the start
    // (a suspended context or a late timer never reports early).
    const check = () => {
      if (session !== state.session) return;
      const ctx = state.ctx;
      const wait = ctx ? at - ctx.currentTime : 0.05;
      if (!ctx || ctx.state !== "running" || wait > 0) {
        state.timers.push(setTimeout(check, Math.max(5, wait * 1000)));
        return;
      }
      // player_ms: from this chunk's arrival in the page to the report, all in the browser.
      state.reports.push({ session, turn, sentence,
                           player_ms: Math.round(performance.now() - receivedAt) });
      const button = document.getElementById("playback-started");
      if (button) button.click();
    };
    check();
  }

  function takeReports() {
    // Called by Gradio just before the button's event goes to the server: its input value.
    const reports = JSON.stringify(state.reports);
    state.reported += state.reports.length;
    state.reports = [];
    return reports;
  }

  function takePongs() {
    // Called by Gradio just before the pong button's event goes to the server: its input value.
    // page_ms is how long each ping spent in this page, which the server takes out of the trip.
    const now = performance.now();
    // answered_ms (this page's clock) lets the server map the page's clock to its own (NTP-style).
    const pongs = state.pongs.map((p) => ({ session: p.session, ping: p.ping,
                                            page_ms: Math.round((now - p.receivedAt) * 10) / 10,
                                            answered_ms: Math.round(now * 10) / 10 }));
    state.pongs = [];
    return JSON.stringify(pongs);
  }

  function play(payload) {
    if (!payload) return;
    const receivedAt = performance.now();
    const message = JSON.parse(payload);
    if (message.session !== state.session) {
      state.session = message.session;
      state.seen = new Set();
      state.confirmedTurns = new Set();
      state.reports = [];
      state.pongs = [];
      clearTimers();
    }
    if (Number.isInteger(message.ping)) {
      // Answered before any audio is decoded: the trip measured is the channel's, not our work.
      state.pongs.push({ session: state.session, ping: message.ping, receivedAt });
      state.pings += 1;
      const pong = document.getElementById("pong");
      if (pong) pong.click();
    }
    if (message.flush) flush();
    for (const chunk of message.chunks || []) {
      if (state.seen.has(chunk.seq)) continue;
      state.seen.add(chunk.seq);
      const ctx = ensure();
      const buffer = decode(ctx, chunk);
      const source = ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(ctx.destination);
      const at = Math.max(ctx.currentTime + 0.01, state.next);
      source.start(at);
      state.next = at + buffer.duration;
      state.sources.push(source);
      source.onended = () => { state.sources = state.sources.filter((s) => s !== source); };
      state.chunks += 1;
      state.scheduledSeconds += buffer.duration;
      if (state.firstStartedAt === null) state.firstStartedAt = Date.now();
      const sentence = Number.isInteger(chunk.sentence) ? chunk.sentence : 0;
      const key = `${chunk.turn}:${sentence}`;
      if (chunk.turn !== undefined && !state.confirmedTurns.has(key)) {
        state.confirmedTurns.add(key);
        confirmWhenPlaying(state.session, chunk.turn, sentence, at, receivedAt);
      }
    }
  }

  return { state, ensure, flush, play, takeReports, takePongs };
})();
