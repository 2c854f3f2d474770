"""Audio augmentation so a model trained on synthetic voices hears real ones.

Two kinds: time-changing (speed perturbation, tempo) also rescale the phone timings and are
applied before the targets are built; time-preserving ones (pitch shift, vocal-tract length
perturbation, reverberation, band limits, noise, level) only change what the model hears.
Every function takes an explicit `np.random.Generator`, so a seed fixes the result.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mouthpiece.types import SAMPLE_RATE, PhonemeSegment


def scale_segments(segments: list[PhonemeSegment], factor: float) -> list[PhonemeSegment]:
    """Every time × factor."""
    return [replace(s, start_s=s.start_s * factor, end_s=s.end_s * factor) for s in segments]


def shift_segments(segments: list[PhonemeSegment], offset_s: float, end_s: float
                   ) -> list[PhonemeSegment]:
    """Times + offset_s, with silence added at the start and up to `end_s`."""
    from mouthpiece.speech.phones import cover_timeline

    moved = [replace(s, start_s=s.start_s + offset_s, end_s=s.end_s + offset_s) for s in segments]
    return cover_timeline(moved, end_s)


def resample_by(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` × faster (pitch, formants and tempo together; Kaldi-style speed
    perturbation); the result has len / factor samples."""
    from scipy.signal import resample_poly

    up = 1000
    down = int(round(up * factor))
    return resample_poly(samples, up, down).astype(np.float32)


def speed_perturb(samples, segments, factor: float):
    return resample_by(samples, factor), scale_segments(segments, 1.0 / factor)


def time_stretch(samples, segments, rate: float):
    """Tempo × rate, pitch kept (phase vocoder)."""
    import librosa

    out = librosa.effects.time_stretch(samples.astype(np.float32), rate=rate)
    return out.astype(np.float32), scale_segments(segments, 1.0 / rate)


def pitch_shift(samples: np.ndarray, semitones: float) -> np.ndarray:
    """Pitch (and formants) moved by `semitones`, timing kept."""
    import librosa

    return librosa.effects.pitch_shift(samples.astype(np.float32), sr=SAMPLE_RATE,
                                       n_steps=semitones).astype(np.float32)


def vocal_tract_length(samples: np.ndarray, alpha: float) -> np.ndarray:
    """VTLP: the spectral envelope stretched by `alpha` along frequency (formants × alpha),
    pitch harmonics' timing kept; magnitudes are warped, phases kept."""
    from scipy.signal import istft, stft

    _, _, spec = stft(samples, SAMPLE_RATE, nperseg=512, noverlap=384)
    bins = np.arange(spec.shape[0], dtype=np.float64)
    source = np.clip(bins / alpha, 0, bins[-1])  # output bin b reads input bin b / alpha
    mag = np.abs(spec)
    warped = np.stack([np.interp(source, bins, mag[:, t]) for t in range(mag.shape[1])], axis=1)
    _, out = istft(warped * np.exp(1j * np.angle(spec)), SAMPLE_RATE, nperseg=512, noverlap=384)
    return out[: len(samples)].astype(np.float32)


def room_impulse(rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """Synthetic room: direct path at t = 0 (no added delay) + exponentially decaying noise
    tail reaching -60 dB at rt60_s, with a 5–20 ms pre-delay before the tail."""
    n = int(rt60_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60_s)
    tail[: int(rng.uniform(0.005, 0.02) * SAMPLE_RATE)] = 0.0
    ratio = rng.uniform(0.3, 1.5)  # reverberant energy relative to direct
    tail *= np.sqrt(ratio / max(np.sum(tail**2), 1e-12))
    tail[0] = 1.0
    return tail


def reverberate(samples: np.ndarray, rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    from scipy.signal import fftconvolve

    wet = fftconvolve(samples, room_impulse(rng, rt60_s))[: len(samples)]
    return (wet * _rms(samples) / max(_rms(wet), 1e-9)).astype(np.float32)


def band_limit(samples: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """Telephone-like / cheap-microphone band pass."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, [low_hz, min(high_hz, 0.45 * SAMPLE_RATE)], btype="bandpass",
                 fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, samples).astype(np.float32)


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power ∝ 1 / f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    noise = np.fft.irfft(spec / f ** (exponent / 2.0), n)
    return noise / max(_rms(noise), 1e-12)


def add_noise(samples: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Noise at `snr_db` relative to the speech level (RMS of the louder half of 20 ms frames)."""
    noise = coloured_noise(rng, len(samples), rng.choice([0.0, 1.0, 2.0]))
    return (samples + noise * speech_rms(samples) * 10.0 ** (-snr_db / 20.0)).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def speech_rms(samples: np.ndarray) -> float:
    frame = SAMPLE_RATE // 50
    n = len(samples) // frame
    if n == 0:
        return _rms(samples)
    energy = np.mean(samples[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
    loud = np.sort(energy)[n // 2:]
    return float(np.sqrt(loud.mean())) if loud.size else 0.0


def set_level(samples: np.ndarray, dbfs: float) -> np.ndarray:
    """Speech level to `dbfs` (RMS of the louder half of frames), clipped to [-1, 1]."""
    gain = 10.0 ** (dbfs / 20.0) / max(speech_rms(samples), 1e-9)
    return np.clip(samples * gain, -1.0, 1.0).astype(np.float32)
