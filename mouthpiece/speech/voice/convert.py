"""Voice conversion with the WORLD vocoder: F0 mean/range mapping, formant frequency warping
(VTLN), long-term spectrum EQ, energy and speaking-rate transfer.

WORLD re-synthesises frame by frame at a fixed 5 ms hop, so timing is kept exactly (or scaled
by exactly `time_scale` when the speaking rate is changed) and the engine's phone timings stay
valid for lip-sync.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import idct

from mouthpiece.speech.voice.analysis import (
    CEPSTRUM_HZ, FRAME_S, Prosody, World, frame_levels_db, mean_log_aperiodicity,
    mean_log_envelope, mel_cepstra, prosody_of, pyworld_module, speech_mask, voiced_speech,
    world_analyze,
)
from mouthpiece.speech.voice.reference import ENVELOPE_HZ, VoiceProfile, envelope_on_grid

MAX_EQ_NEPER = 2.3  # ±10 dB of power (measured: ±5 dB gave 0.72 mean similarity, ±10 dB 0.75)
F0_RANGE_RATIO = (0.5, 2.0)  # bounds of the measured style/source ratio, before the strength
# The style clip's F0 range is measured on other words and some voices (flite, HTS) are far
# flatter than natural speech: full transfer made piper monotone (ratio 0.5): move half-way
# in log range, as for the speaking rate.
F0_RANGE_TRANSFER_STRENGTH = 0.5
LEVEL_RANGE_RATIO = (0.7, 1.4)
RATE_RANGE = (0.8, 1.25)  # speaking-rate multiplier bounds
# Rates measured on a 3–10 s clip of other words are noisy (±10 %), and full transfer cost
# pocketsphinx 7 WER points on 45 utterances (half-way: 5; see docs/speech.md): move half-way
# in log rate.
RATE_TRANSFER_STRENGTH = 0.5
RATE_DEAD_ZONE = 0.05  # smaller rate changes are left alone
KEEP_UNVOICED = True
UNVOICED_EQ = True
AP_MATCH = True
MAX_AP_SHIFT = 1.5  # natural log
KNN_STRENGTH = 0.3
KNN_K = 4
KNN_COEFFS = 24  # mel-cepstral coefficients 1…23: the envelope's shape, not its fine detail
KNN_SMOOTH_FRAMES = 5  # 25 ms moving average of the pull, so it cannot jitter frame to frame
MAX_KNN_NEPER = 2.3


@dataclass(frozen=True)
class ConversionPlan:
    """The settings applied to one utterance (also reported)."""

    f0_shift_semitones: float
    f0_range_ratio: float
    warp: float
    eq: np.ndarray | None  # (257,) log-power correction on ENVELOPE_HZ, or None
    gain_db: float
    level_range_ratio: float
    time_scale: float  # output duration / input duration
    eq_unvoiced: np.ndarray | None = None  # (257,) like `eq`, for unvoiced frames
    ap_shift: np.ndarray | None = None  # (257,) log-aperiodicity change of voiced frames
    knn: np.ndarray | None = None  # (M, 64) the target's voiced cepstra to pull frames toward

    def as_dict(self) -> dict:
        return {"f0_shift_semitones": round(self.f0_shift_semitones, 2),
                "f0_range_ratio": round(self.f0_range_ratio, 3), "warp": round(self.warp, 3),
                "eq": self.eq is not None, "gain_db": round(self.gain_db, 2),
                "level_range_ratio": round(self.level_range_ratio, 3),
                "time_scale": round(self.time_scale, 4)}


@dataclass
class Analysis:
    """WORLD parameters plus statistics of the synthesized (source) speech; envelopes and
    aperiodicity are (257,) on ENVELOPE_HZ."""

    world: World
    levels_db: np.ndarray
    prosody: Prosody
    envelope: np.ndarray
    unvoiced_envelope: np.ndarray
    aperiodicity: np.ndarray
    samples: np.ndarray  # (N,) the analysed signal


def analyze_source(samples: np.ndarray, rate: int) -> Analysis:
    world = world_analyze(samples, rate)
    levels = frame_levels_db(samples, rate)[: len(world.f0)]
    levels = np.pad(levels, (0, len(world.f0) - len(levels)), mode="edge")
    return Analysis(world, levels, prosody_of(world, levels),
                    envelope_on_grid(mean_log_envelope(world, levels), rate),
                    envelope_on_grid(mean_log_envelope(world, levels, voiced=False), rate),
                    envelope_on_grid(mean_log_aperiodicity(world, levels), rate),
                    np.asarray(samples, np.float32))


def warp_envelope(sp: np.ndarray, alpha: float) -> np.ndarray:
    """(T, F) envelope with formants moved by `alpha` (> 1: up, a shorter vocal tract):
    out(f) = in(f / alpha), interpolated in the log domain."""
    if abs(alpha - 1.0) < 1e-6:
        return sp
    n_bins = sp.shape[1]
    src = np.clip(np.arange(n_bins) / alpha, 0, n_bins - 1)  # fractional source bins
    lo = np.minimum(src.astype(int), n_bins - 2)
    frac = src - lo
    log_sp = np.log(sp + 1e-16)
    return np.exp(log_sp[:, lo] * (1 - frac) + log_sp[:, lo + 1] * frac)


def plan_conversion(
    source: Analysis, target: VoiceProfile | None, style: Prosody | None, warp: float,
    change_rate: bool = True, f0_offset: float = 0.0,
) -> ConversionPlan:
    """Settings that take `source` to the target speaker (mean F0, formants, spectrum) and
    to `style`'s prosody (F0 range, energy, rate). `style` defaults to the target's own."""
    src = source.prosody
    style = style or (target.prosody if target else None)
    shift = (target.prosody.logf0_mean - src.logf0_mean) * 12 + f0_offset if target else 0.0
    range_ratio = 1.0
    gain, level_ratio, time_scale = 0.0, 1.0, 1.0
    if style is not None:
        range_ratio = float(np.clip(style.logf0_std / max(src.logf0_std, 1e-3), *F0_RANGE_RATIO)
                            ** F0_RANGE_TRANSFER_STRENGTH)
        gain = style.level_db - src.level_db
        level_ratio = float(np.clip(style.level_std_db / max(src.level_std_db, 1e-3),
                                    *LEVEL_RANGE_RATIO))
        if change_rate:
            time_scale = 1.0 / speaking_rate_ratio(style, src.syllables_per_s)
    eq = eq_unvoiced = ap_shift = None
    if target is not None:
        eq = _eq_curve(target.envelope, _warp_grid(source.envelope, warp))
        if UNVOICED_EQ:
            eq_unvoiced = _eq_curve(target.unvoiced_envelope,
                                    _warp_grid(source.unvoiced_envelope, warp))
        if AP_MATCH:
            ap_shift = np.clip(target.aperiodicity - source.aperiodicity, -MAX_AP_SHIFT, MAX_AP_SHIFT)
    knn = target.voiced_cepstra if target is not None and KNN_STRENGTH else None
    return ConversionPlan(shift, range_ratio, warp if target else 1.0, eq, gain, level_ratio,
                          time_scale, eq_unvoiced, ap_shift, knn)


def _knn_envelope(sp: np.ndarray, source: Analysis, bank: np.ndarray) -> np.ndarray:
    """Pull each voiced frame's envelope shape (mel-cepstral coefficients 1…KNN_COEFFS-1)
    KNN_STRENGTH of the way toward the mean of its KNN_K nearest target frames; the pull is
    smoothed over KNN_SMOOTH_FRAMES so neighbouring frames, which may pick different
    neighbours, do not jitter. Level and fine detail are kept."""
    mask = voiced_speech(source.world, source.levels_db)
    if mask.sum() < 10 or len(bank) < KNN_K:
        return sp
    rate = source.world.rate
    cep = mel_cepstra(sp, rate)  # (T, 64)
    k = slice(1, KNN_COEFFS)
    query = cep[mask][:, k]  # (V, K)
    d2 = (query ** 2).sum(1)[:, None] - 2 * query @ bank[:, k].T + (bank[:, k] ** 2).sum(1)[None, :]
    nearest = np.argpartition(d2, KNN_K, axis=1)[:, :KNN_K]  # (V, KNN_K)
    delta_c = np.zeros_like(cep)
    delta_c[mask, k] = KNN_STRENGTH * (bank[nearest][:, :, k].mean(axis=1) - query)
    kernel = np.ones(KNN_SMOOTH_FRAMES) / KNN_SMOOTH_FRAMES
    delta_c = np.apply_along_axis(np.convolve, 0, delta_c, kernel, mode="same")
    delta = idct(delta_c, type=2, norm="ortho", axis=1)  # (T, 64) on the mel points
    freqs = np.linspace(0.0, rate / 2, sp.shape[1])
    delta = np.stack([np.interp(freqs, CEPSTRUM_HZ, row) for row in delta])  # (T, F)
    delta = np.clip(delta, -MAX_KNN_NEPER, MAX_KNN_NEPER) * _high_band_fade(freqs, rate)
    return sp * np.exp(delta)


def _eq_curve(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(257,) smoothed (±140 Hz), level-neutral, bounded log-power correction source → target."""
    diff = target - source
    diff = np.convolve(np.pad(diff, 4, mode="edge"), np.ones(9) / 9, mode="valid")
    diff -= np.average(diff, weights=_speech_band_weights())
    return np.clip(diff, -MAX_EQ_NEPER, MAX_EQ_NEPER)


def _high_band_fade(freqs: np.ndarray, rate: int) -> np.ndarray:
    """1 up to 8 kHz, then a linear fade to 0 at Nyquist (nothing to fade below 16 kHz rates)."""
    if rate / 2 <= 8000:
        return np.ones_like(freqs)
    return np.clip((rate / 2 - freqs) / (rate / 2 - 8000.0), 0, 1)


def speaking_rate_ratio(style: Prosody, source_syllables_per_s: float | None) -> float:
    """Speed-up factor (> 1 faster) that brings speech of `source_syllables_per_s` (acoustic
    estimate) to `style`'s rate; 1.0 inside the dead zone, bounded to RATE_RANGE."""
    if not source_syllables_per_s or style.syllables_per_s <= 0:
        return 1.0
    ratio = style.syllables_per_s / source_syllables_per_s
    rate = float(np.clip(ratio ** RATE_TRANSFER_STRENGTH, *RATE_RANGE))
    return 1.0 if abs(rate - 1.0) < RATE_DEAD_ZONE else rate


def _speech_band_weights() -> np.ndarray:
    return ((ENVELOPE_HZ >= 100) & (ENVELOPE_HZ <= 5000)).astype(float) + 1e-3


def _warp_grid(envelope: np.ndarray, alpha: float) -> np.ndarray:
    return np.interp(ENVELOPE_HZ / alpha, ENVELOPE_HZ, envelope)


def envelope_match(source: Analysis, target: VoiceProfile, alpha: float) -> float:
    """Correlation of the warped source and target long-term envelopes in 100–5000 Hz after
    removing the spectral tilt (which EQ handles): a cheap proxy for formant alignment."""
    band = (ENVELOPE_HZ >= 100) & (ENVELOPE_HZ <= 5000)
    a, b = _warp_grid(source.envelope, alpha)[band], target.envelope[band]
    x = ENVELOPE_HZ[band]
    a = a - np.polyval(np.polyfit(x, a, 2), x)
    b = b - np.polyval(np.polyfit(x, b, 2), x)
    return float(np.corrcoef(a, b)[0, 1])


def apply_conversion(source: Analysis, plan: ConversionPlan) -> np.ndarray:
    """Re-synthesise `source` with `plan`; returns (N',) float32 at the source rate,
    N' = round(len · time_scale) within one WORLD frame."""
    pyworld = pyworld_module()
    world = source.world
    f0 = world.f0.copy()
    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.log2(f0[voiced])
        mean = source.prosody.logf0_mean
        log_f0 = mean + plan.f0_shift_semitones / 12 + (log_f0 - mean) * plan.f0_range_ratio
        f0[voiced] = np.clip(2.0 ** log_f0, 50.0, 800.0)
    sp = warp_envelope(world.sp, plan.warp)
    freqs = np.linspace(0.0, world.rate / 2, sp.shape[1])
    fade = _high_band_fade(freqs, world.rate)
    voicing = np.convolve(voiced_speech(world, source.levels_db).astype(float), np.ones(5) / 5,
                          mode="same")[:, None]  # (T, 1), 25 ms ramps
    if plan.eq is not None:
        eq = np.interp(freqs, ENVELOPE_HZ, plan.eq) * fade
        if plan.eq_unvoiced is not None:
            eq_u = np.interp(freqs, ENVELOPE_HZ, plan.eq_unvoiced) * fade
            sp = sp * np.exp(voicing * eq[None, :] + (1 - voicing) * eq_u[None, :])
        else:
            sp = sp * np.exp(eq)[None, :]
    ap = world.ap
    if plan.ap_shift is not None:
        shift = np.interp(freqs, ENVELOPE_HZ, plan.ap_shift) * fade
        ap = np.clip(np.exp(np.log(np.clip(ap, 1e-3, 1.0)) + voicing * shift[None, :]), 1e-3, 1.0)
    if plan.knn is not None:
        sp = _knn_envelope(sp, source, plan.knn)
    gain_db = _frame_gains_db(source.levels_db, plan)
    sp = sp * (10.0 ** (gain_db / 10.0))[:, None]
    if plan.time_scale != 1.0:
        f0, sp, ap = _time_scale(f0, sp, ap, plan.time_scale)
    out = pyworld.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp),
                             np.ascontiguousarray(ap), world.rate, FRAME_S * 1000)
    if plan.time_scale == 1.0 and KEEP_UNVOICED:
        out = _keep_unvoiced(out, source, sp)
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    if peak > 0.98:
        out = out * (0.98 / peak)
    return out.astype(np.float32)


def _keep_unvoiced(out: np.ndarray, source: Analysis, sp: np.ndarray) -> np.ndarray:
    """`out` with the unvoiced stretches (consonants, pauses) taken from the original signal
    instead, filtered frame by frame with the envelope change `sp / source sp` (formant
    warp, EQ, level) so they match the converted voice. WORLD renders bursts and frication
    as smeared 5 ms noise frames; keeping the originals restores intelligibility (copy
    synthesis over 40 sentences: pocketsphinx WER 35.6 % → 31.2 %, original 30.1 %)."""
    from scipy.signal import istft, stft

    world, x = source.world, source.samples
    rate, n_fft = world.rate, 2 * (world.sp.shape[1] - 1)
    hop = max(1, int(round(rate * FRAME_S)))
    win = min(n_fft, 2 * int(rate * 0.012))  # ~24 ms window
    _, times, spec = stft(x, rate, window="hann", nperseg=win, noverlap=win - hop, nfft=n_fft)
    log_ratio = 0.5 * (np.log(sp + 1e-16) - np.log(world.sp + 1e-16))  # (T, F) amplitude
    log_ratio = np.clip(log_ratio, -2 * MAX_EQ_NEPER, 2 * MAX_EQ_NEPER)
    frame_times = np.arange(len(log_ratio)) * FRAME_S
    rows = np.interp(times, frame_times, np.arange(len(log_ratio)))  # fractional frames
    lo = np.minimum(rows.astype(int), len(log_ratio) - 2)
    frac = (rows - lo)[None, :]
    gains = np.exp(log_ratio[lo].T * (1 - frac) + log_ratio[lo + 1].T * frac)  # (F, M)
    _, filtered = istft(spec * gains, rate, window="hann", nperseg=win, noverlap=win - hop,
                        nfft=n_fft)
    filtered = np.pad(filtered, (0, max(0, len(x) - len(filtered))))[: len(x)]
    voicing = np.convolve(world.voiced.astype(float), np.ones(3) / 3, mode="same")  # 15 ms
    mix = np.interp(np.arange(len(x)), np.arange(len(voicing)) * rate * FRAME_S, voicing)
    out = np.pad(out, (0, max(0, len(x) - len(out))))[: len(x)]
    return mix * out + (1.0 - mix) * filtered


def _frame_gains_db(levels_db: np.ndarray, plan: ConversionPlan) -> np.ndarray:
    """(T,) dB per frame: overall level change plus expansion/compression of speech dynamics,
    smoothed over 25 ms so it never clicks."""
    mask = speech_mask(levels_db)
    mean = float(levels_db[mask].mean()) if mask.any() else 0.0
    gains = np.full(len(levels_db), float(plan.gain_db))
    gains[mask] += (levels_db[mask] - mean) * (plan.level_range_ratio - 1.0)
    kernel = np.ones(5) / 5
    return np.convolve(np.pad(gains, 2, mode="edge"), kernel, mode="valid")


def _time_scale(f0, sp, ap, scale: float):
    """Resample the frame sequence to round(T · scale) frames (voicing by nearest frame)."""
    n_in = len(f0)
    n_out = max(1, int(round(n_in * scale)))
    pos = np.linspace(0, n_in - 1, n_out)  # fractional input frames
    nearest = np.rint(pos).astype(int)
    lo = np.minimum(pos.astype(int), n_in - 2) if n_in > 1 else np.zeros(n_out, int)
    frac = (pos - lo)[:, None]
    hi = np.minimum(lo + 1, n_in - 1)
    voiced = f0[nearest] > 0
    f0_lin = np.where((f0[lo] > 0) & (f0[hi] > 0),
                      f0[lo] * (1 - frac[:, 0]) + f0[hi] * frac[:, 0], f0[nearest])
    f0_out = np.where(voiced, f0_lin, 0.0)
    sp_out = np.exp(np.log(sp[lo] + 1e-16) * (1 - frac) + np.log(sp[hi] + 1e-16) * frac)
    ap_out = ap[lo] * (1 - frac) + ap[hi] * frac
    return f0_out, sp_out, ap_out
