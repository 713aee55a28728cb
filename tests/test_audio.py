"""voice.audio: any input format to 16 kHz mono float32, streaming, WAV helpers."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from voice.audio import (
    SAMPLE_RATE,
    StreamingConverter,
    convert,
    float_to_int16,
    read_wav,
    to_mono_16k,
    write_wav,
)


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def spectrum(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and magnitudes of a Hann-windowed FFT, normalised so a sine of amplitude A peaks at ~A."""
    win = np.hanning(len(x))
    mags = np.abs(np.fft.rfft(x * win)) / (win.sum() / 2)
    return np.fft.rfftfreq(len(x), 1 / rate), mags


def peak_hz(x: np.ndarray, rate: int) -> float:
    freqs, mags = spectrum(x, rate)
    return float(freqs[np.argmax(mags)])


def magnitude_at(x: np.ndarray, rate: int, hz: float, width_hz: float = 20.0) -> float:
    freqs, mags = spectrum(x, rate)
    band = np.abs(freqs - hz) <= width_hz
    return float(mags[band].max())


# -- one-shot conversion ----------------------------------------------------------------


def test_gradio_48k_int16_stereo_becomes_16k_mono_float() -> None:
    left = tone(440, 1.0, 48000, 0.5)
    stereo = np.stack([left, left], axis=1)
    pcm = np.round(stereo * 32767).astype(np.int16)  # exactly what gr.Audio(streaming) delivers
    assert pcm.shape == (48000, 2)

    out = to_mono_16k(pcm, 48000)

    assert out.dtype == np.float32
    assert out.ndim == 1
    assert len(out) == 16000
    assert np.abs(out).max() <= 1.0
    assert peak_hz(out, SAMPLE_RATE) == pytest.approx(440, abs=2)
    # int16 scaling: a 0.5 sine stays a 0.5 sine.
    assert magnitude_at(out, SAMPLE_RATE, 440) == pytest.approx(0.5, abs=0.02)


def test_44k1_stereo_downmix_averages_channels() -> None:
    left = tone(1000, 1.0, 44100, 0.8)
    right = np.zeros_like(left)
    out = to_mono_16k(np.stack([left, right], axis=1), 44100)

    assert len(out) == 16000
    assert peak_hz(out, SAMPLE_RATE) == pytest.approx(1000, abs=2)
    assert magnitude_at(out, SAMPLE_RATE, 1000) == pytest.approx(0.4, abs=0.02)


def test_8k_int16_mono_upsampled() -> None:
    pcm = np.round(tone(300, 2.0, 8000, 0.25) * 32767).astype(np.int16)
    out = to_mono_16k(pcm, 8000)

    assert len(out) == 32000
    assert peak_hz(out, SAMPLE_RATE) == pytest.approx(300, abs=2)
    # Upsampling must not invent content above the old 4 kHz Nyquist.
    freqs, mags = spectrum(out, SAMPLE_RATE)
    assert mags[freqs > 4200].max() < 1e-3


def test_float32_16k_passes_through_unchanged() -> None:
    x = tone(700, 0.5, 16000, 0.3)
    out = to_mono_16k(x, 16000)
    np.testing.assert_array_equal(out, x)
    assert out is not x  # the caller's buffer is never aliased into our pipeline


def test_float64_and_column_vector_accepted() -> None:
    x = tone(500, 0.25, 16000).astype(np.float64)[:, np.newaxis]
    out = to_mono_16k(x, 16000)
    assert out.dtype == np.float32 and out.shape == (4000,)


def test_int32_and_uint8_scaling() -> None:
    full = np.array([-(2**31), 0, 2**31 - 1], dtype=np.int32)
    np.testing.assert_allclose(to_mono_16k(full, 16000), [-1.0, 0.0, 1.0], atol=1e-6)
    u8 = np.array([0, 128, 255], dtype=np.uint8)
    np.testing.assert_allclose(to_mono_16k(u8, 16000), [-1.0, 0.0, 127 / 128], atol=1e-6)


@pytest.mark.parametrize("rate", [48000, 44100, 22050])
def test_tone_frequency_preserved(rate: int) -> None:
    out = to_mono_16k(tone(3000, 1.0, rate), rate)
    assert peak_hz(out, SAMPLE_RATE) == pytest.approx(3000, abs=2)


def test_content_above_8khz_is_filtered_not_aliased() -> None:
    # 12 kHz cannot exist at 16 kHz.  Naive decimation (or interpolation without a
    # low-pass filter) folds it down to 16 - 12 = 4 kHz at full strength.
    x = tone(1000, 1.0, 48000, 0.3) + tone(12000, 1.0, 48000, 0.3)
    out = to_mono_16k(x, 48000)

    assert magnitude_at(out, SAMPLE_RATE, 1000) == pytest.approx(0.3, abs=0.02)
    assert magnitude_at(out, SAMPLE_RATE, 4000, width_hz=50) < 0.003
    naive = x[::3]
    assert magnitude_at(naive, SAMPLE_RATE, 4000, width_hz=50) > 0.2  # the check can see aliasing


def test_nan_and_inf_become_zero_and_are_counted() -> None:
    x = tone(440, 0.5, 48000)
    x[100] = np.nan
    x[2000] = np.inf
    x[3000] = -np.inf
    result = convert(x, 48000)

    assert result.nonfinite == 3
    assert np.isfinite(result.audio).all()
    assert np.abs(result.audio).max() <= 1.0

    clean = convert(tone(440, 0.5, 48000), 48000)
    assert clean.nonfinite == 0


def test_out_of_range_float_is_clipped_and_counted() -> None:
    x = np.array([0.5, 1.5, -3.0, 0.0, 1.0], dtype=np.float32)
    result = convert(x, 16000)
    np.testing.assert_array_equal(result.audio, [0.5, 1.0, -1.0, 0.0, 1.0])
    assert result.clipped == 2

    loud = convert(tone(440, 0.5, 48000, amplitude=4.0), 48000)
    assert loud.clipped > 0
    assert np.abs(loud.audio).max() <= 1.0


@pytest.mark.parametrize(
    ("shape", "dtype", "rate"),
    [((0,), np.float32, 16000), ((0, 2), np.int16, 48000), ((0,), np.int16, 8000), ((0, 1), np.float64, 44100)],
)
def test_zero_length_is_fine(shape: tuple[int, ...], dtype: type, rate: int) -> None:
    out = to_mono_16k(np.zeros(shape, dtype=dtype), rate)
    assert out.shape == (0,)
    assert out.dtype == np.float32
    streamed = StreamingConverter(rate).process(np.zeros(shape, dtype=dtype)).audio
    assert streamed.shape == (0,) and streamed.dtype == np.float32


def test_bad_shapes_and_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="channels"):
        to_mono_16k(np.zeros((2, 48000), dtype=np.int16), 48000)  # channels-first by mistake
    with pytest.raises(ValueError):
        to_mono_16k(np.zeros((4, 4, 4), dtype=np.float32), 16000)
    with pytest.raises(ValueError):
        to_mono_16k(np.zeros(10, dtype=np.float32), 0)
    with pytest.raises(TypeError):
        to_mono_16k(np.zeros(10, dtype=np.complex64), 16000)


# -- streaming --------------------------------------------------------------------------


def _stream(x: np.ndarray, rate: int, sizes: list[int]) -> np.ndarray:
    conv = StreamingConverter(rate)
    parts, pos, i = [], 0, 0
    while pos < len(x):
        size = sizes[i % len(sizes)]
        parts.append(conv.process(x[pos : pos + size]).audio)
        pos += size
        i += 1
    parts.append(conv.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("rate", [48000, 44100, 8000])
@pytest.mark.parametrize("sizes", [[480], [160], [4800], [1, 0, 333, 2047, 0, 17]])
def test_streaming_equals_one_shot(rate: int, sizes: list[int]) -> None:
    rng = np.random.default_rng(rate)
    x = tone(440, 1.2, rate, 0.3) + rng.standard_normal(round(1.2 * rate)).astype(np.float32) * 0.05
    stereo = np.round(np.stack([x, 0.5 * x], axis=1) * 32767).astype(np.int16)

    streamed = _stream(stereo, rate, sizes)
    one_shot = to_mono_16k(stereo, rate)

    assert abs(len(streamed) - len(one_shot)) <= 1
    n = min(len(streamed), len(one_shot))
    np.testing.assert_allclose(streamed[:n], one_shot[:n], atol=1e-4)


def test_streaming_has_no_seams_at_chunk_boundaries() -> None:
    # Converting each chunk on its own (a fresh resampler per chunk) leaves edge
    # transients at every boundary; the stream must match a clean tone there.
    rate, size = 48000, 960
    x = tone(440, 1.0, rate, 0.5)
    streamed = _stream(x, rate, [size])
    reference = tone(440, 1.0, SAMPLE_RATE, 0.5)
    body = slice(1000, 15000)  # away from the very start and end of the signal
    assert np.abs(streamed[body] - reference[body]).max() < 2e-3
    per_chunk = np.concatenate([to_mono_16k(x[i : i + size], rate) for i in range(0, len(x), size)])
    assert np.abs(per_chunk[body] - reference[body]).max() > 2e-2  # the check can see seams


def test_streaming_counts_nonfinite_per_chunk_and_in_total() -> None:
    conv = StreamingConverter(48000)
    bad = tone(440, 0.1, 48000)
    bad[:5] = np.nan
    first = conv.process(bad)
    assert first.nonfinite == 5 and conv.nonfinite_samples == 5
    assert np.isfinite(first.audio).all()
    second = conv.process(tone(440, 0.1, 48000))
    assert second.nonfinite == 0 and conv.nonfinite_samples == 5


def test_streaming_reports_resampler_delay() -> None:
    conv = StreamingConverter(48000)
    out = conv.process(tone(440, 0.2, 48000)).audio
    assert conv.delay_samples > 0  # HQ filter look-ahead: output lags input slightly
    assert len(out) + conv.delay_samples == pytest.approx(3200, abs=1)
    passthrough = StreamingConverter(16000)
    passthrough.process(tone(440, 0.2, 16000))
    assert passthrough.delay_samples == 0


def test_flush_returns_the_tail_and_allows_a_new_stream() -> None:
    conv = StreamingConverter(44100)
    out = conv.process(tone(440, 0.5, 44100)).audio
    tail = conv.flush()
    assert len(out) + len(tail) == 8000
    again = conv.process(tone(440, 0.5, 44100)).audio
    assert len(again) + len(conv.flush()) == 8000


# -- int16 and WAV ----------------------------------------------------------------------


def test_float_to_int16_clips_and_zeroes_nonfinite() -> None:
    x = np.array([0.0, 1.0, -1.0, 2.0, -2.0, np.nan, np.inf, 0.5], dtype=np.float32)
    out = float_to_int16(x)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, [0, 32767, -32767, 32767, -32767, 0, 0, 16384])


def test_wav_round_trip_float_stereo(tmp_path: Path) -> None:
    x = np.stack([tone(440, 0.3, 44100, 0.7), tone(880, 0.3, 44100, 0.2)], axis=1)
    path = tmp_path / "stereo.wav"
    write_wav(path, x, 44100)

    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 44100)
    back, rate = read_wav(path)
    assert rate == 44100
    assert back.shape == x.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, x, atol=1.5 / 32768)


def test_wav_round_trip_int16_mono_is_exact(tmp_path: Path) -> None:
    pcm = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    path = tmp_path / "mono.wav"
    write_wav(path, pcm, 16000)
    back, rate = read_wav(path)
    assert rate == 16000 and back.shape == (6,)
    np.testing.assert_array_equal(np.round(back * 32768).astype(np.int32), pcm.astype(np.int32))


@pytest.mark.parametrize(
    ("width", "payload", "expected"),
    [
        (1, bytes([0, 128, 255]), [-1.0, 0.0, 127 / 128]),
        (3, bytes([0x00, 0x00, 0x80, 0x00, 0x00, 0x40, 0xFF, 0xFF, 0xFF]), [-1.0, 0.5, -1 / 2**23]),
        (4, np.array([-(2**31), 2**30], dtype="<i4").tobytes(), [-1.0, 0.5]),
    ],
)
def test_read_wav_other_widths(tmp_path: Path, width: int, payload: bytes, expected: list[float]) -> None:
    path = tmp_path / f"w{width}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(8000)
        w.writeframes(payload)
    back, rate = read_wav(path)
    assert rate == 8000
    np.testing.assert_allclose(back, expected, atol=1e-6)
