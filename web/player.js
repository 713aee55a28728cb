// WarmVoice's reply player: plays PCM chunks the moment they arrive, gap-free, with Web Audio.
// Gradio's streamed <audio> output buffers about two seconds before it starts (HLS); for a
// latency demo that would hide everything the server saves, so reply audio comes here instead.
window.warmvoice = (() => {
  const state = { ctx: null, next: 0, sources: [], seen: new Set(), session: null,
                  chunks: 0, scheduledSeconds: 0, flushes: 0, firstStartedAt: null };

  function ensure() {
    // Called from the "Start speaking" click: browsers only let a user gesture start audio.
    if (!state.ctx) state.ctx = new AudioContext();
    if (state.ctx.state === "suspended") state.ctx.resume();
    return state.ctx;
  }

  function flush() {
    for (const source of state.sources) {
      try { source.stop(); } catch (e) { /* already ended */ }
    }
    state.sources = [];
    state.next = 0;
    state.flushes += 1;
  }

  function decode(ctx, chunk) {
    const bytes = Uint8Array.from(atob(chunk.pcm), (c) => c.charCodeAt(0));
    const pcm = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
    const buffer = ctx.createBuffer(1, pcm.length, chunk.rate);
    const out = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
    return buffer;
  }

  function play(payload) {
    if (!payload) return;
    const message = JSON.parse(payload);
    if (message.session !== state.session) {
      state.session = message.session;
      state.seen = new Set();
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
    }
  }

  return { state, ensure, flush, play };
})();
