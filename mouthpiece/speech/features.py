"""Per-video-frame acoustic cues that do not depend on phone identity.

Analysis runs on a fine grid (5 ms hop) with windows CENTRED on each grid time, then the fine
frames whose centre lies in [k/fps, (k+1)/fps) are pooled into video frame k — so an event at
time t lands in frame floor(t * fps) at any fps, with no analysis delay.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mouthpiece.types import SAMPLE_RATE, AudioFeatures, Audio, InputError

HOP = 80  # samples (5 ms) between fine analysis frames
SPEC_WIN = 400  # samples (25 ms) Hann window for spectra and log-mel
N_FFT = 512
PITCH_WIN = 640  # samples (40 ms): two periods of a 50 Hz voice
PITCH_FFT = 1024  # ≥ PITCH_WIN + max lag, so the autocorrelation is not circular
MIN_LAG, MAX_LAG = SAMPLE_RATE // 400, SAMPLE_RATE // 70  # 400..70 Hz
N_MELS = 80
MEL_FLOOR = 1e-10
SILENCE_DBFS = -70.0  # below this a frame is silence whatever the clip's level
BLOCK = 1024  # fine frames (~5 s) analysed at a time: ~25 MB of spectra, whatever the length


@functools.lru_cache(maxsize=2)
def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT) -> np.ndarray:
    """(n_mels, n_fft//2+1) triangular filters on the HTK mel scale, 0..8 kHz, area-normalised."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))  # Hz
    bins = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)  # Hz
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((bins - lower) / (centre - lower),
                                     (upper - bins) / (upper - centre)))
    return (tri * (2.0 / (upper - lower))).astype(np.float32)


def _centred_frames(samples: np.ndarray, j0: int, j1: int, win: int) -> np.ndarray:
    """(j1 - j0, win) frames; frame j is centred on sample j*HOP (zero padding outside the
    audio). Only this block's samples are copied, never the whole clip."""
    first = j0 * HOP - win // 2  # sample under frame j0's first tap
    need = (j1 - j0 - 1) * HOP + win
    padded = np.zeros(need, np.float32)
    lo, hi = max(first, 0), min(first + need, len(samples))
    if hi > lo:
        padded[lo - first:hi - first] = samples[lo:hi]
    return sliding_window_view(padded, win)[::HOP]


def _fine_analysis(samples: np.ndarray, n_fine: int, frame_of: np.ndarray,
                   n_frames: int) -> dict[str, np.ndarray]:
    """Everything the cues need per fine frame, computed BLOCK frames at a time so memory stays
    flat in the audio's length (whole-clip spectra of 10 minutes took 3.5 GB):
    power (mean square), periodic, f1 / f2 band centroids (Hz), upper (power above 500 Hz),
    above_1k (share of power above 1 kHz) — each (J,) float32 — and mel (n_frames, 80), the
    mean mel power of the fine frames of each video frame (pooled block by block: the fine
    mel alone was 38 MB per 10 minutes)."""
    window = np.hanning(SPEC_WIN).astype(np.float32)
    window_energy = float(np.sum(window.astype(np.float64) ** 2)) * N_FFT / 2
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    filters = mel_filterbank().T  # (257, 80)
    out = {k: np.empty(n_fine, np.float32) for k in ("power", "periodic", "f1", "f2", "upper",
                                                      "above_1k")}
    mel_sum = np.zeros((n_frames, N_MELS))  # summed over each frame's fine frames
    for j0 in range(0, n_fine, BLOCK):
        j1 = min(j0 + BLOCK, n_fine)
        spectrum = np.fft.rfft(_centred_frames(samples, j0, j1, SPEC_WIN) * window, N_FFT,
                               axis=1)  # (b, 257)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)  # (b, 257)
        del spectrum
        total = power.sum(axis=1)
        out["power"][j0:j1] = total / window_energy
        out["periodic"][j0:j1] = _periodicity(_centred_frames(samples, j0, j1, PITCH_WIN))
        out["f1"][j0:j1] = _band_centroid(power, 200.0, 1000.0)
        out["f2"][j0:j1] = _band_centroid(power, 800.0, 3000.0)
        out["upper"][j0:j1] = power[:, freqs >= 500.0].sum(axis=1)
        out["above_1k"][j0:j1] = power[:, freqs >= 1000.0].sum(axis=1) / np.maximum(total, 1e-20)
        # frame_of is non-decreasing: each video frame's fine frames are one run
        runs = frame_of[j0:j1]
        starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
        mel_sum[runs[starts]] += np.add.reduceat((power @ filters).astype(np.float64), starts)
    counts = np.bincount(frame_of, minlength=n_frames)
    out["mel"] = mel_sum / np.maximum(counts, 1)[:, None]
    return out


def _periodicity(frames: np.ndarray) -> np.ndarray:
    """(J,) peak of the normalised autocorrelation over 70–400 Hz lags: ~1 voiced, ~0 noise."""
    x = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(x, PITCH_FFT, axis=1)
    acf = np.fft.irfft(spec.real**2 + spec.imag**2, PITCH_FFT, axis=1)[:, : MAX_LAG + 1]
    lags = np.arange(MIN_LAG, MAX_LAG + 1)
    overlap = (PITCH_WIN - lags) / PITCH_WIN  # unbiased estimate: fewer products at long lags
    norm = acf[:, MIN_LAG:] / (overlap * np.maximum(acf[:, :1], 1e-12))
    return np.clip(norm.max(axis=1), 0.0, 1.0)


def _band_centroid(power: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    """(J,) power-weighted mean frequency (Hz) within [lo_hz, hi_hz]."""
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    band = (freqs >= lo_hz) & (freqs <= hi_hz)
    p = power[:, band]
    return (p @ freqs[band]) / np.maximum(p.sum(axis=1), 1e-20)


def _ramp(x: np.ndarray, zero_at: float, one_at: float) -> np.ndarray:
    return np.clip((x - zero_at) / (one_at - zero_at), 0.0, 1.0)


def _pool(values: np.ndarray, frame_of: np.ndarray, n_frames: int, how: str = "mean",
          weights: np.ndarray | None = None) -> np.ndarray:
    """Fine-grid values (J, ...) → (n_frames, ...) by mean / weighted mean / max per frame."""
    if how == "max":
        out = np.zeros((n_frames,) + values.shape[1:], np.float64)
        np.maximum.at(out, frame_of, values)
        return out
    w = np.ones(len(values)) if weights is None else weights
    w_sum = np.bincount(frame_of, w, minlength=n_frames)
    if values.ndim == 1:
        return np.bincount(frame_of, values * w, minlength=n_frames) / np.maximum(w_sum, 1e-20)
    out = np.zeros((n_frames, values.shape[1]))
    np.add.at(out, frame_of, values * w[:, None])
    return out / np.maximum(w_sum, 1e-20)[:, None]


def frame_features(audio: Audio, fps: float, n_frames: int) -> AudioFeatures:
    """Acoustic cues per output video frame (see `AudioFeatures`): loudness, voiced, speech,
    open, round, spread, closure (all 0..1) and `mel` (n_frames, 80) natural-log mel power.

    Frame k covers [k/fps, (k+1)/fps); frames past the end of the audio read as silence.
    """
    from scipy.ndimage import maximum_filter1d, uniform_filter1d  # ~0.5 s import: not at load

    if fps <= 0 or n_frames < 0:
        raise InputError(f"fps must be > 0 and n_frames ≥ 0 (got fps={fps}, n_frames={n_frames})")
    if audio.sample_rate != SAMPLE_RATE:
        raise InputError(f"speech analysis needs {SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
    samples = np.asarray(audio.samples, np.float32).reshape(-1)  # (N,)
    span_s = n_frames / fps
    n_fine = int(np.ceil(span_s * SAMPLE_RATE / HOP))  # fine frames whose centre is < span_s
    if n_frames == 0 or n_fine == 0:
        empty = {k: np.zeros(0, np.float32) for k in _SERIES}
        return AudioFeatures(fps, empty, np.zeros((0, N_MELS), np.float32))
    centres_s = np.arange(n_fine) * (HOP / SAMPLE_RATE)  # seconds
    frame_of = np.minimum((centres_s * fps + 1e-9).astype(np.int64), n_frames - 1)  # (J,)

    fine = _fine_analysis(samples, n_fine, frame_of, n_frames)  # (J,) arrays, (T, 80) mel
    fine_power = fine["power"].astype(np.float64)
    periodic = fine["periodic"]
    fine_db = 10.0 * np.log10(fine_power + 1e-12)  # dBFS-ish (full-scale sine ≈ -3)

    # Loudness: 1 at this clip's speech level (90th percentile of active frames), 0 at 40 dB
    # below it or under the absolute silence floor.
    frame_db = 10.0 * np.log10(_pool(fine_power, frame_of, n_frames) + 1e-12)  # (T,)
    active = frame_db > max(frame_db.max() - 40.0, SILENCE_DBFS)
    ref_db = np.percentile(frame_db[active], 90) if active.any() else 0.0
    audible = frame_db > SILENCE_DBFS
    loudness = _ramp(frame_db, ref_db - 40.0, ref_db) * audible

    # Speech activity: energy well above this clip's noise floor, held over short gaps
    # (stop closures) so words are not chopped.
    noise_db = min(np.percentile(fine_db, 10), ref_db - 30.0)
    fine_speech = _ramp(fine_db, noise_db + 6.0, noise_db + 18.0) * (fine_db > SILENCE_DBFS)
    fine_speech = uniform_filter1d(maximum_filter1d(fine_speech, 31), 11)  # 155 ms hold
    speech = _pool(fine_speech, frame_of, n_frames)

    fine_voiced = _ramp(periodic, 0.35, 0.75) * _ramp(fine_db, noise_db + 10.0, noise_db + 20.0)
    voiced = _pool(fine_voiced, frame_of, n_frames)

    # Formant proxies from voiced frames: F1 ~ centroid of 200–1000 Hz (high for AA, low for
    # IY/UW), F2 ~ centroid of 800–3000 Hz (low for rounded back vowels, high for IY).
    vowel_weight = fine_voiced * fine_power
    f1 = _pool(fine["f1"], frame_of, n_frames, weights=vowel_weight)
    f2 = _pool(fine["f2"], frame_of, n_frames, weights=vowel_weight)
    vowelness = voiced * loudness
    open_ = _ramp(f1, 380.0, 700.0) * np.sqrt(vowelness)
    spread = _ramp(f2, 1500.0, 2100.0) * np.sqrt(vowelness)
    round_ = _ramp(f2, 1550.0, 1050.0) * (1.0 - 0.8 * _ramp(f1, 450.0, 750.0)) * np.sqrt(vowelness)

    closure = _pool(_closure_cue(fine_db, fine["upper"], fine["above_1k"], periodic, noise_db),
                    frame_of, n_frames, "max")
    closure *= speech

    mel = np.log(fine["mel"] + MEL_FLOOR)  # (T, 80)
    series = {
        "loudness": loudness, "voiced": voiced, "speech": speech, "open": open_,
        "round": round_, "spread": spread, "closure": closure,
    }
    series = {k: np.clip(v, 0.0, 1.0).astype(np.float32) for k, v in series.items()}
    return AudioFeatures(fps, series, mel.astype(np.float32))


_SERIES = ("loudness", "voiced", "speech", "open", "round", "spread", "closure")


def _closure_cue(fine_db: np.ndarray, upper_power: np.ndarray, share_above_1k: np.ndarray,
                 periodic: np.ndarray, noise_db: float) -> np.ndarray:
    """(J,) 0..1 evidence of lips closed at each fine frame.

    Stop closure: a short energy gap inside speech (loud on both sides within 150 ms).
    Nasal murmur (M): voiced, energy above 500 Hz far under the neighbouring vowels.
    """
    from scipy.ndimage import maximum_filter1d

    reach = 30  # fine frames = 150 ms
    left = maximum_filter1d(fine_db, reach + 1, origin=reach // 2)  # max over [j-reach, j]
    right = maximum_filter1d(fine_db, reach + 1, origin=-(reach // 2))  # max over [j, j+reach]
    context = np.minimum(left, right)  # both sides must be loud
    dip = context - fine_db  # dB
    in_speech = _ramp(context, noise_db + 20.0, noise_db + 30.0)
    stop = _ramp(dip, 15.0, 25.0) * in_speech

    # Nasal murmur: the wideband level barely drops (the F0 harmonic stays strong) but the
    # energy above 500 Hz falls well below the neighbouring vowels; M drops more than N/NG.
    upper_db = 10.0 * np.log10(upper_power + 1e-12)
    upper_context = np.minimum(maximum_filter1d(upper_db, reach + 1, origin=reach // 2),
                               maximum_filter1d(upper_db, reach + 1, origin=-(reach // 2)))
    nasal = (_ramp(upper_context - upper_db, 8.0, 16.0) * _ramp(periodic, 0.6, 0.85)
             * (1.0 - _ramp(share_above_1k, 0.01, 0.04)) * (1.0 - _ramp(dip, 10.0, 20.0))
             * in_speech)
    return np.maximum(stop, nasal)
