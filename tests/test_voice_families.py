"""benchmarks.voice_families: every family speaks, at 16 kHz, for about as long as speech takes,
and the families sound different (real Piper, espeak-ng and sox, audio made here)."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks import voice_families
from benchmarks.voice_families import (
    FAMILIES,
    HELD_OUT_FAMILIES,
    TUNING_FAMILIES,
    VoiceFamily,
    family,
    render,
    select,
    speech,
)

TEXT = "Where are you from?"


def _spectrum(audio: np.ndarray) -> np.ndarray:
    """The average magnitude spectrum (512-sample frames), normalised: what the voice sounds like,
    whatever its level."""
    frames = audio[: len(audio) // 512 * 512].reshape(-1, 512)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)).mean(axis=0)
    return spectrum / np.linalg.norm(spectrum)


def test_the_split_is_declared_and_covers_every_kind_on_both_sides() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names))
    assert set(TUNING_FAMILIES).isdisjoint(HELD_OUT_FAMILIES)
    assert (
        {f.kind for f in HELD_OUT_FAMILIES} == {f.kind for f in TUNING_FAMILIES} == {"piper", "espeak", "sox", "noise"}
    )
    assert len([f for f in FAMILIES if f.kind == "espeak"]) >= 3
    assert {f.snr_db for f in FAMILIES if f.kind == "noise"} == {20.0, 10.0}
    assert select("tuning,espeak-klatt") == (*TUNING_FAMILIES, family("espeak-klatt"))
    assert select("all") == FAMILIES
    with pytest.raises(ValueError, match="unknown voice family 'nobody'"):
        select("tuning,nobody")


@pytest.mark.parametrize("voice", FAMILIES, ids=lambda f: f.name)
def test_every_family_speaks_the_text_at_16_khz(voice: VoiceFamily) -> None:
    audio = render(TEXT, voice, pad_s=0.2)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Four syllables at 16 kHz: between about half a second and two and a half (0.4 s of padding).
    seconds = len(audio) / 16_000
    assert 0.8 < seconds < 3.0, seconds
    assert float(np.sqrt(np.mean(audio**2))) > 0.02, "silent"
    assert float(np.max(np.abs(audio))) <= 1.0
    noise_only = audio[: int(0.15 * 16_000)]  # the padding: silence, or the family's noise
    if voice.snr_db is None:
        assert not np.any(noise_only)
    else:
        assert np.any(noise_only) and float(np.sqrt(np.mean(noise_only**2))) > 1e-3


def test_the_families_sound_different() -> None:
    """No two families give the same audio; the voices (not their transformations) differ in
    their spectrum, and a sox or noise family differs from the voice it was made from."""
    clean = {f.name: np.asarray(speech(TEXT, f)) for f in FAMILIES}
    for (a, x), (b, y) in itertools.combinations(clean.items(), 2):
        if family(a).kind == "noise" and family(a).base == family(b):
            continue  # a noise family's clean speech is its base's; the noise is what differs
        if family(b).kind == "noise" and family(b).base == family(a):
            continue
        same_length = len(x) == len(y) and np.allclose(x, y, atol=1e-3)
        assert not same_length, f"{a} and {b} render the same audio"
    espeak = [f for f in FAMILIES if f.kind == "espeak"]
    for one, other in itertools.combinations(espeak, 2):
        similarity = float(_spectrum(clean[one.name]) @ _spectrum(clean[other.name]))
        assert similarity < 0.995, f"{one.name} and {other.name} have the same spectrum ({similarity:.4f})"
    # Rates: a slower Piper family speaks longer, and a tempo change stretches its base.
    assert len(clean["piper-1.2"]) > len(clean["piper-1.0"]) > len(clean["piper-0.85"])
    tempo = family("sox-tempo-f2")
    assert len(clean[tempo.name]) > 1.1 * len(clean[str(tempo.param("base"))])
    noisy = render(TEXT, family("noise-20db"))
    assert not np.allclose(noisy, clean["piper-1.0"], atol=1e-3)


def test_noise_is_mixed_at_the_stated_snr() -> None:
    base = np.asarray(speech(TEXT, family("piper-1.0")))
    for name in ("noise-20db", "noise-10db-m3"):
        voice = family(name)
        clean = np.asarray(speech(TEXT, voice))
        noisy = render(TEXT, voice)
        voiced = np.abs(clean) > voice_families.ENERGY_THRESHOLD
        signal = float(np.sqrt(np.mean(clean[voiced] ** 2)))
        noise = float(np.sqrt(np.mean((noisy - clean) ** 2)))
        assert 20 * np.log10(signal / noise) == pytest.approx(voice.snr_db, abs=1.0)
    assert len(base) > 0


def test_rendering_leaves_no_temporary_files_and_rejects_empty_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's own temporary directory
    voice_families.pink_noise.cache_clear()  # so the noise is made (and cleaned up) here too
    render("Set a timer for ten minutes.", family("sox-tempo-f2"))
    render("Set a timer for ten minutes.", family("noise-10db-m3"))
    assert tempfile.gettempdir() == str(tmp_path)
    assert not list(tmp_path.iterdir()), "temporary files left behind"
    with pytest.raises(ValueError, match="empty"):
        render("  ", family("espeak-en-us"))
