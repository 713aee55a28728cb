// WarmVoice's microphone clock: when each chunk of microphone audio was captured, on this page's
// clock (performance.now()), sent with the chunk, so the server can start the panel at the end
// of speech as the page captured it rather than as its audio arrived (voice/uplink.py).
//
// Gradio's streaming microphone gives no capture times, so this watches its steps from the
// outside, adding one field to one of them:
//  1. the recorder's chunk (its "dataavailable" event): the chunk's last sample was captured by
//     then.  The event comes late by the recorder's timer and encoder, and by more under load, so
//     the capture time of a recording's sample n is taken as t0 + n / rate, where t0 is the
//     smallest (event time - audio so far) of the last 2 s of events: the least delayed one.
//     Only the recent ones: audio the page failed to capture (a starved CPU) moves t0 for good;
//  2. the chunk's upload (POST .../upload of "audio.wav"), whose answer names the file's path;
//  3. the request that hands that path to Gradio's queue (POST .../queue/join for a recording's
//     first chunk, .../stream/<event> for the others): the chunk's capture time goes into its
//     event data, which Gradio passes to the server's handler with that very chunk.
window.warmvoiceUplink = (() => {
  const KEY = "warmvoice_captured_ms", SENT_KEY = "warmvoice_sent_ms";  // voice/uplink.py reads them
  const WINDOW = 20;  // chunk events (100 ms each) the capture clock is taken from
  const state = { recorders: new WeakMap(), latest: null, uploads: new Map(), chunks: 0 };
  const originalFetch = window.fetch.bind(window);

  function observe(target, blob) {
    const now = performance.now();
    let recorder = state.recorders.get(target);
    if (!recorder) {
      // A recording's first chunk starts with the WAV header, which gives the rate and channels.
      recorder = { values: Math.max(0, blob.size - 44) / 2, perMs: null, origins: [], lastAt: now };
      state.recorders.set(target, recorder);
      blob.slice(0, 44).arrayBuffer().then((bytes) => {
        const view = new DataView(bytes);
        const perMs = (view.getUint16(22, true) * view.getUint32(24, true)) / 1000;
        if (perMs > 0) recorder.perMs = perMs;
      }).catch(() => {});
    } else {
      recorder.values += blob.size / 2;
      recorder.lastAt = now;
    }
    if (recorder.perMs) {
      recorder.origins.push(now - recorder.values / recorder.perMs);
      if (recorder.origins.length > WINDOW) recorder.origins.shift();
    }
    state.latest = recorder;
  }

  function capturedAt(recorder) {
    if (recorder.perMs && recorder.origins.length) return Math.min(...recorder.origins) + recorder.values / recorder.perMs;
    return recorder.lastAt;
  }

  const dispatch = EventTarget.prototype.dispatchEvent;
  EventTarget.prototype.dispatchEvent = function (event) {
    try {
      if (event && event.type === "dataavailable" && event.data instanceof Blob && /wav/.test(event.data.type)) {
        observe(this, event.data);
      }
    } catch (e) { /* never in the recorder's way */ }
    return dispatch.call(this, event);
  };

  function upload(input, init) {
    const files = init.body.getAll("files");
    const file = files.length === 1 ? files[0] : null;
    if (!(file instanceof File) || file.name !== "audio.wav" || !state.latest) return originalFetch(input, init);
    const chunk = { captured: capturedAt(state.latest) };
    // The answer is read before Gradio gets it, so the path is known when Gradio sends it on.
    return originalFetch(input, init).then(async (response) => {
      try {
        const paths = await response.clone().json();
        if (Array.isArray(paths) && typeof paths[0] === "string") {
          // Gradio names a file by its content: identical chunks (digital silence) share a path,
          // and the newest of them is the one about to be sent.
          state.uploads.delete(paths[0]);
          state.uploads.set(paths[0], chunk);
          if (state.uploads.size > 32) state.uploads.delete(state.uploads.keys().next().value);
        }
      } catch (e) { /* not an upload answer we know */ }
      return response;
    });
  }

  function send(input, init) {
    let found = null;
    for (const [path, chunk] of state.uploads) {
      if (init.body.includes(JSON.stringify(path))) found = [path, chunk];  // the newest that matches
    }
    if (!found) return originalFetch(input, init);
    const body = JSON.parse(init.body);
    // Gradio's own event data for a stream is the chunk's file description (or nothing): the
    // capture time is one more key beside it, which nothing else reads.
    const data = body && typeof body === "object" ? body.event_data : undefined;
    if (data == null || (typeof data === "object" && !Array.isArray(data))) {
      // Also when the chunk left: the part of its way up spent in this page (the chunk's wait,
      // its encoding and its upload's round trip), a duration on one clock.
      body.event_data = { ...(data || {}), [KEY]: Math.round(found[1].captured * 10) / 10,
                          [SENT_KEY]: Math.round(performance.now() * 10) / 10 };
      init = { ...init, body: JSON.stringify(body) };
      state.chunks += 1;
    }
    return originalFetch(input, init);
  }

  window.fetch = function (input, init) {
    try {
      const url = typeof input === "string" ? input : (input && input.url) || "";
      if (init && init.method === "POST") {
        if (/\/upload(\?|$)/.test(url) && init.body instanceof FormData) return upload(input, init);
        if (/\/queue\/join(\?|$)|\/stream\/[^/?]+$/.test(url) && typeof init.body === "string") {
          return send(input, init);
        }
      }
    } catch (e) { /* never in the way of Gradio's own request */ }
    return originalFetch(input, init);
  };

  return { state };
})();
