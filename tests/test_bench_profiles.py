"""The pure parts of the CPU benchmarks of issue #14: how py-spy samples are sorted into a turn's
stages (benchmarks.cpu_profile) and which environment forces a CPU kernel set
(benchmarks.stt_compute).  Both tools run for minutes; these parts decide what they report."""

from __future__ import annotations

from pathlib import Path

from benchmarks.cpu_profile import OTHER, classify, summarize, table
from benchmarks.stt_compute import isa_env

APP = 'process 11:"python -m benchmarks.pipeline --strategies prewarmed"'
SERVER = 'process 12:"python -m llama_cpp.server --model m.gguf --ssl_keyfile k.pem"'
PROBE_SERVER = 'process 13:"python -m llama_cpp.server --model m.gguf --port 1"'


def test_samples_go_to_the_stage_that_ran_them() -> None:
    turn = "_run_turn (voice/session.py:1)"
    assert classify(f"{APP};{turn};Transcriber.transcribe (voice/transcribe.py:182);x (ctranslate2.so) 7") == (
        "Whisper (CTranslate2)",
        7,
    )
    assert classify(f"{APP};_produce (voice/tts/piper.py:290);run (onnxruntime/capi/x.py:1) 3")[0].startswith("Piper")
    assert classify(f"{APP};Endpointer.feed (voice/turns/endpointing.py:235);run (onnxruntime/x.py:1) 2")[0].startswith(
        "Silero"
    )
    gen = f"{SERVER};Llama.generate (llama_cpp/llama.py:977);llama_decode (libllama.so) 5"
    assert classify(gen) == ("LLM server (llama.cpp) generating", 5)
    # The probe's own server (plain HTTP) and the server's imports are not a turn.
    assert classify(f"{PROBE_SERVER};Llama.generate (llama_cpp/llama.py:977) 4")[0] == "not a turn: machine probe"
    assert classify(f"{SERVER};_find_and_load (<frozen importlib._bootstrap>:1176) 9")[0].startswith("not a turn")
    # Waiting is not computing, though py-spy sees the thread in native code.
    wait = f"{APP};Event.wait (threading.py:629);PyThread_acquire_lock_timed (libpython3.11.so.1.0);0x1 (libc.so.6) 6"
    assert classify(wait)[0].startswith("not a turn: waiting")
    assert classify(f"{APP};something (mod.py:1) 1") == (OTHER, 1)
    assert classify("not a sample line") is None


def test_the_table_leaves_out_what_is_not_a_turn(tmp_path: Path) -> None:
    raw = tmp_path / "samples.txt"
    raw.write_text(
        f"{SERVER};Llama.generate (llama_cpp/llama.py:977) 30\n"
        f"{APP};_produce (voice/tts/piper.py:290) 10\n"
        f"{APP};run_probe (benchmarks/machine_probe.py:118) 50\n",
        encoding="utf-8",
    )
    totals = summarize(raw)
    assert totals["LLM server (llama.cpp) generating"] == 30 and totals["not a turn: machine probe"] == 50
    md = table(totals, rate_hz=10)
    assert "| LLM server (llama.cpp) generating | 3.0 s | 75 % |" in md
    assert "| Piper (onnxruntime) | 1.0 s | 25 % |" in md
    assert "| (not a turn: machine probe, left out) | 5.0 s | — |" in md


def test_the_avx2_only_class_forces_both_ctranslate2_and_onednn() -> None:
    base = {"PATH": "/bin", "CT2_FORCE_CPU_ISA": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    assert isa_env("native", base) == {"PATH": "/bin"}  # no forcing left over from the caller
    both = isa_env("AVX2 (CTranslate2 and oneDNN)", base)
    assert both["CT2_FORCE_CPU_ISA"] == "AVX2" and both["ONEDNN_MAX_CPU_ISA"] == "AVX2" and both["PATH"] == "/bin"
    assert "ONEDNN_MAX_CPU_ISA" not in isa_env("AVX2 (CTranslate2 only)", base)
