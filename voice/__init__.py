"""WarmVoice's voice layer: audio in, turns, speech out.  Uses ``llm`` through its public API."""
