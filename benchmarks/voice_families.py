"""Voice families: one text rendered as 16 kHz mono speech by many different voices.

A benchmark built from one synthetic voice measures that voice (issue #22: Smart Turn was
tuned on the bundled Piper voice and did not transfer).  So measurement sets are rendered in
*families* of voices, and settings are chosen on some families and reported on others:

* ``piper``: the bundled Piper voice (``en_US-joe-medium``) at a ``length_scale`` (speaking
  rate) and a ``noise_scale`` / ``noise_w`` (0: deterministic, flat; Piper's own defaults
  0.667 / 0.8 vary the voice and the rhythm on every call, so such a family is not
  bit-reproducible from run to run);
* ``espeak``: an espeak-ng voice and variant (``-v en-gb+m3``) at a rate in words per minute;
* ``sox``: another family's speech through ``sox`` ``pitch`` (cents) or ``tempo`` (factor,
  pitch kept);
* ``noise``: another family's speech in steady pink noise (``sox synth pinknoise``, the same
  every run) at a signal-to-noise ratio, measured over the voiced samples.

:data:`TUNING_FAMILIES` and :data:`HELD_OUT_FAMILIES` were fixed when this module was written,
before anything was measured on them: any threshold or wait may be chosen on the tuning
families only, and the held-out ones are reported separately.  The tuning side holds the Piper
voice the earlier defaults were chosen on (three rates), one espeak voice, a pitch shift and
20 dB noise; the held-out side holds other espeak voices and variants (British, Scottish,
female, the Klatt synthesizer), Piper with its natural variation, a pitch shift down, a tempo
change and 10 dB noise on a held-out voice.

``render(text, family)`` is the whole pipeline.  Benchmarks that assemble several spoken parts
with pauses between them call :func:`speech` per part and :func:`add_noise` once on the whole
(the noise runs through the pauses, as a room's noise does).
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soxr

from voice.audio import SAMPLE_RATE

FamilyKind = Literal["piper", "espeak", "sox", "noise"]
ParamValue = str | float
ENERGY_THRESHOLD = 0.01  # about -40 dBFS: where speech starts and ends
SUBPROCESS_TIMEOUT_S = 60
NOISE_S = 120.0  # the pink noise made once per process; longer audio wraps around it


@dataclass(frozen=True)
class VoiceFamily:
    """A named way of turning text into speech: a voice, or a transformation of another family."""

    name: str
    kind: FamilyKind
    # Sorted (key, value) pairs, so a family is hashable (renderings are cached per family).
    params: tuple[tuple[str, ParamValue], ...]

    def param(self, key: str) -> Any:
        """The value of parameter ``key`` (KeyError names the family when it has none)."""
        for name, value in self.params:
            if name == key:
                return value
        raise KeyError(f"voice family {self.name!r} has no parameter {key!r}")

    @property
    def base(self) -> VoiceFamily | None:
        """The family a sox or noise family transforms (None for a voice of its own)."""
        return family(str(self.param("base"))) if self.kind in ("sox", "noise") else None

    @property
    def root(self) -> VoiceFamily:
        """The voice underneath every transformation."""
        base = self.base
        return self if base is None else base.root

    @property
    def snr_db(self) -> float | None:
        """The noise level, for a noise family (or one built on it); None: clean."""
        if self.kind == "noise":
            return float(self.param("snr_db"))
        base = self.base
        return None if base is None else base.snr_db


def _family(name: str, kind: FamilyKind, **params: ParamValue) -> VoiceFamily:
    return VoiceFamily(name, kind, tuple(sorted(params.items())))


# Decided before measuring anything (see the module docstring); do not move a family from one
# side to the other after seeing its numbers.
TUNING_FAMILIES: tuple[VoiceFamily, ...] = (
    _family("piper-1.0", "piper", length_scale=1.0, noise_scale=0.0, noise_w=0.0),
    _family("piper-0.85", "piper", length_scale=0.85, noise_scale=0.0, noise_w=0.0),
    _family("piper-1.2", "piper", length_scale=1.2, noise_scale=0.0, noise_w=0.0),
    _family("espeak-en-us", "espeak", voice="en-us", wpm=175.0),
    _family("sox-pitch-up", "sox", base="piper-1.0", effect="pitch", amount=300.0),
    _family("noise-20db", "noise", base="piper-1.0", snr_db=20.0),
)
HELD_OUT_FAMILIES: tuple[VoiceFamily, ...] = (
    _family("piper-varied", "piper", length_scale=1.1, noise_scale=0.667, noise_w=0.8),
    _family("espeak-en-gb-m3", "espeak", voice="en-gb+m3", wpm=160.0),
    _family("espeak-en-us-f2", "espeak", voice="en-us+f2", wpm=190.0),
    _family("espeak-en-scotland", "espeak", voice="en-gb-scotland", wpm=165.0),
    _family("espeak-klatt", "espeak", voice="en+klatt", wpm=175.0),
    _family("sox-pitch-down", "sox", base="piper-1.0", effect="pitch", amount=-400.0),
    _family("sox-tempo-f2", "sox", base="espeak-en-us-f2", effect="tempo", amount=0.85),
    _family("noise-10db-m3", "noise", base="espeak-en-gb-m3", snr_db=10.0),
)
FAMILIES: tuple[VoiceFamily, ...] = TUNING_FAMILIES + HELD_OUT_FAMILIES
FAMILY_SPLITS: dict[str, tuple[VoiceFamily, ...]] = {"tuning": TUNING_FAMILIES, "heldout": HELD_OUT_FAMILIES}


def piper_family(length_scale: float, noise_scale: float = 0.0, noise_w: float = 0.0) -> VoiceFamily:
    """The bundled Piper voice at these settings (the declared family when one has them)."""
    params = {"length_scale": length_scale, "noise_scale": noise_scale, "noise_w": noise_w}
    name = f"piper-{length_scale:g}" if not noise_scale and not noise_w else f"piper-{length_scale:g}-varied"
    for candidate in FAMILIES:
        if candidate.kind == "piper" and dict(candidate.params) == params:
            return candidate
    return _family(name, "piper", **params)


def family(name: str) -> VoiceFamily:
    """The family called ``name``; ValueError lists the names there are."""
    for candidate in FAMILIES:
        if candidate.name == name:
            return candidate
    raise ValueError(f"unknown voice family {name!r}; choose from {', '.join(f.name for f in FAMILIES)}")


def split_of(voice: VoiceFamily) -> str:
    """ "tuning" or "heldout": which side of the split ``voice`` is on."""
    return "tuning" if voice in TUNING_FAMILIES else "heldout"


def select(spec: str) -> tuple[VoiceFamily, ...]:
    """Families from a comma-separated list of names and split names ("tuning", "heldout", "all")."""
    chosen: list[VoiceFamily] = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        group = FAMILIES if token == "all" else FAMILY_SPLITS[token] if token in FAMILY_SPLITS else (family(token),)
        chosen.extend(f for f in group if f not in chosen)
    if not chosen:
        raise ValueError("no voice family chosen")
    return tuple(chosen)


# ---- rendering ------------------------------------------------------------------------------


def render(text: str, voice: VoiceFamily, *, pad_s: float = 0.0) -> np.ndarray:
    """``text`` spoken by ``voice``: 16 kHz mono float32, ``pad_s`` of silence (or the family's
    noise) on each side of the speech."""
    pad = np.zeros(int(pad_s * SAMPLE_RATE), np.float32)
    return add_noise(np.concatenate([pad, speech(text, voice), pad]), voice)


@functools.lru_cache(maxsize=1024)
def speech(text: str, voice: VoiceFamily) -> np.ndarray:
    """``text`` spoken by ``voice`` without its noise, trimmed to the speech (first to last
    sample above :data:`ENERGY_THRESHOLD`).  Cached: the array is shared, do not modify it."""
    if not text.strip():
        raise ValueError("nothing to say: the text is empty")
    if voice.kind == "piper":
        audio = piper_speech(text, voice)
    elif voice.kind == "espeak":
        audio = _espeak(text, str(voice.param("voice")), float(voice.param("wpm")))
    elif voice.kind == "sox":
        audio = _sox_effect(speech(text, _base(voice)), voice)
    else:  # noise is added to the whole, pauses included (add_noise)
        audio = speech(text, _base(voice))
    trimmed = trimmed_speech(audio, f"{voice.name}: {text!r}")
    trimmed.flags.writeable = False
    return trimmed


def transform(audio: np.ndarray, voice: VoiceFamily) -> np.ndarray:
    """``audio`` through every sox effect on the way from ``voice``'s root voice to ``voice``
    (none for a voice of its own or for noise)."""
    base = voice.base
    if base is not None:
        audio = transform(audio, base)
    return _sox_effect(audio, voice) if voice.kind == "sox" else audio


def _sox_effect(audio: np.ndarray, voice: VoiceFamily) -> np.ndarray:
    """``audio`` through ``voice``'s own sox effect."""
    effect, amount = str(voice.param("effect")), float(voice.param("amount"))
    if effect not in ("pitch", "tempo"):
        raise ValueError(f"voice family {voice.name!r}: unknown sox effect {effect!r}")
    with tempfile.TemporaryDirectory(prefix="warmvoice-voice-") as tmp:
        source, target = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        _write_wav(source, audio)
        # ``tempo -s``: the speech setting of sox's WSOLA; ``pitch`` keeps the duration.
        args = ["tempo", "-s", f"{amount:g}"] if effect == "tempo" else ["pitch", f"{amount:g}"]
        _run(["sox", str(source), str(target), *args])
        return _read_wav(target)


def add_noise(audio: np.ndarray, voice: VoiceFamily, offset: int = 0) -> np.ndarray:
    """``audio`` in ``voice``'s noise at its SNR (speech RMS over the voiced samples vs the noise's
    RMS), starting ``offset`` samples into the noise; a copy of ``audio`` for a clean family."""
    snr_db = voice.snr_db
    if snr_db is None:
        return np.array(audio, dtype=np.float32)
    return mix_noise(audio, snr_db, offset)


def mix_noise(audio: np.ndarray, snr_db: float, offset: int = 0) -> np.ndarray:
    """``audio`` with steady pink noise at ``snr_db`` over its voiced samples."""
    voiced = audio[np.abs(audio) > ENERGY_THRESHOLD]
    if not voiced.size:
        raise ValueError("no speech to set the noise level against")
    noise = pink_noise()
    start = offset % len(noise)
    span = np.resize(np.roll(noise, -start), len(audio))  # wraps around for audio longer than the noise
    noise_rms = float(np.sqrt(np.mean(voiced**2))) / (10 ** (snr_db / 20))
    return np.clip(audio + span * noise_rms, -1.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def pink_noise(seconds: float = NOISE_S) -> np.ndarray:
    """Steady pink noise from sox (``synth pinknoise``), 16 kHz mono, unit RMS; the same every run
    (``-R``: sox seeds its generator), so two runs hear the same noise."""
    with tempfile.TemporaryDirectory(prefix="warmvoice-noise-") as tmp:
        path = Path(tmp) / "noise.wav"
        _run(
            [
                "sox",
                "-R",
                "-n",
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-b",
                "16",
                str(path),
                "synth",
                f"{seconds:.1f}",
                "pinknoise",
            ]
        )
        data = _read_wav(path)
    data = data / float(np.sqrt(np.mean(data**2)))
    data.flags.writeable = False
    return data


def trimmed_speech(audio: np.ndarray, what: str) -> np.ndarray:
    """16 kHz ``audio`` from its first to its last sample above the energy threshold, clipped to
    full scale (Piper, and resampling, overshoot it by a little; a WAV file could not)."""
    audio = np.asarray(audio, dtype=np.float32)
    loud = np.flatnonzero(np.abs(audio) > ENERGY_THRESHOLD)
    if not loud.size:
        raise RuntimeError(f"the speech of {what} is silent")
    return np.clip(audio[loud[0] : loud[-1] + 1], -1.0, 1.0)


# ---- the voices -----------------------------------------------------------------------------


def piper_config(voice: VoiceFamily) -> Any:
    """The ``piper.SynthesisConfig`` of a Piper family."""
    from piper import SynthesisConfig

    return SynthesisConfig(
        length_scale=float(voice.param("length_scale")),
        noise_scale=float(voice.param("noise_scale")),
        noise_w_scale=float(voice.param("noise_w")),
    )


def piper_speech(text: str, voice: VoiceFamily) -> np.ndarray:
    """``text`` from the bundled Piper voice with ``voice``'s settings, resampled to 16 kHz."""
    chunks = list(bundled_piper().synthesize(text, piper_config(voice)))
    if not chunks:
        raise RuntimeError(f"Piper produced no audio for {text!r}")
    native = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return soxr.resample(native, chunks[0].sample_rate, SAMPLE_RATE).astype(np.float32)


@functools.lru_cache(maxsize=1)
def bundled_piper() -> Any:
    """The bundled Piper voice, loaded once per process (the app's loader)."""
    from voice.tts import bundled_voice_path, load_voice

    return load_voice(bundled_voice_path())


def _espeak(text: str, voice: str, wpm: float) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="warmvoice-voice-") as tmp:
        path = Path(tmp) / "speech.wav"
        # "--": a text starting with "-" is words, not an option.
        _run(["espeak-ng", "-v", voice, "-s", f"{wpm:.0f}", "-w", str(path), "--", text])
        return _read_wav(path)


def _base(voice: VoiceFamily) -> VoiceFamily:
    base = voice.base
    if base is None:
        raise ValueError(f"voice family {voice.name!r} has no base voice")
    return base


def _run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=SUBPROCESS_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise RuntimeError(f"{command[0]} is not installed (Debian: apt-get install {command[0]})") from exc
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{command[0]} failed: {exc.stderr.decode(errors='replace').strip()}") from exc


def _write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.tobytes())


def _read_wav(path: Path) -> np.ndarray:
    """A 16-bit WAV as 16 kHz mono float32."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise RuntimeError(f"{path.name}: expected 16-bit samples, got {8 * wav.getsampwidth()}-bit")
        rate, channels = wav.getframerate(), wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE:
        data = soxr.resample(data, rate, SAMPLE_RATE)
    return np.asarray(data, dtype=np.float32)
