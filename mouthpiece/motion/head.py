"""Stochastic head (yaw, pitch, roll, tx, ty) and expression (brow_up, smile) motion.

Target distribution: for each channel a stationary Gaussian process with a 1/f-like spectrum
S(f) ∝ (1 + (f/f_c)²)^(−slope/2) · exp(−(f/f_roll)²) (slow drifts dominate, no jitter),
whose mean is conditioned on prosody: accented syllables (loudness/voicing peaks) give small
nods and brow raises, phrase onsets a brow raise with a slight chin lift. A soft amplitude
bound keeps poses natural (the only non-Gaussian term, applied as guidance).

Sampler: deterministic iterative denoising (DDIM / probability-flow ODE, Euler steps on a
Karras σ schedule) started from seeded Gaussian noise at σ_max. Each of the `inference_steps`
iterations predicts the clean trajectory with the exact Wiener denoiser of the prior
(x̂₀ = μ + S/(S+σ²)·(x − μ), per frequency), applies the amplitude guidance, and moves the
sample to the next noise level. Few steps under-disperse (high frequencies are shrunk: stiff,
over-smooth motion); as steps grow the sample converges to the ODE's end point — for the
Gaussian prior an exact draw, with the guidance trimming rare excursions past ±2.2 σ. The noise
is drawn once, so for one seed the results for increasing step counts converge to one
trajectory (measured: mean distance to the 1000-step result 0.65 σ at 2 steps, 0.13 at 10,
0.05 at 25, 0.011 at 100; sample std 0.14 / 0.78 / 0.88 / 0.92 of the converged 0.93).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft, rfftfreq
from scipy.ndimage import gaussian_filter1d

from mouthpiece.motion.signal import find_peaks

HEAD_EXPR_CHANNELS: tuple[str, ...] = (
    "head_yaw", "head_pitch", "head_roll", "head_tx", "head_ty", "brow_up", "smile",
)
# channel → (std in its own units, spectral corner frequency in Hz, resting offset)
PRIORS: dict[str, tuple[float, float, float]] = {
    "head_yaw": (1.6, 0.12, 0.0),  # degrees
    "head_pitch": (1.0, 0.25, 0.0),  # degrees
    "head_roll": (0.6, 0.18, 0.0),  # degrees
    "head_tx": (0.012, 0.12, 0.0),  # inter-ocular distances
    "head_ty": (0.008, 0.2, 0.0),
    "brow_up": (0.035, 0.3, 0.07),
    "smile": (0.015, 0.06, 0.03),  # expression smile, added to the mouth's smile
}
SPECTRAL_SLOPE = 1.6
ROLLOFF_HZ = 2.0  # head motion above ~2 Hz would look like tremor
PAD_S = 4.0  # circular-FFT padding so the end of the clip does not wrap into its start
SOFT_BOUND = 2.2  # in prior standard deviations
GUIDANCE = 0.7  # fraction of the excess over SOFT_BOUND removed per step
SIGMA_MIN = 2e-3
KARRAS_RHO = 7.0
SILENT_AMPLITUDE = 0.65  # idle motion in pauses, relative to speaking
# correlated translation: turning / nodding the head also shifts it a little
COUPLING = {"head_tx": ("head_yaw", 0.6), "head_ty": ("head_pitch", 0.5)}


def prior_spectra(n: int, fps: float) -> np.ndarray:
    """(C, n//2+1) power per rfft bin (orthonormal FFT), each normalised to unit variance."""
    freqs = rfftfreq(n, d=1.0 / fps)  # Hz
    spectra = []
    for name in HEAD_EXPR_CHANNELS:
        corner = PRIORS[name][1]
        s = ((1.0 + (freqs / corner) ** 2) ** (-SPECTRAL_SLOPE / 2)
             * np.exp(-((freqs / ROLLOFF_HZ) ** 2)))
        weights = np.full_like(s, 2.0)  # rfft bins stand for ± frequencies …
        weights[0] = 1.0
        if n % 2 == 0:
            weights[-1] = 1.0  # … except DC and Nyquist
        spectra.append(s * n / np.sum(weights * s))
    return np.asarray(spectra)


def _add_bump(row: np.ndarray, times: np.ndarray, centre: float, sigma: float,
              height: float) -> None:
    """row += height · Gaussian(centre, sigma), over ±4 σ only (times sorted, seconds)."""
    lo, hi = np.searchsorted(times, [centre - 4 * sigma, centre + 4 * sigma])
    row[lo:hi] += height * np.exp(-0.5 * ((times[lo:hi] - centre) / sigma) ** 2)


def prosody_mean(series: dict[str, np.ndarray], n_frames: int, fps: float) -> np.ndarray:
    """Conditional mean (C, T) in physical units: nods and brow raises from prosody."""
    times = np.arange(n_frames) / fps
    mean = np.zeros((len(HEAD_EXPR_CHANNELS), n_frames))
    for c, name in enumerate(HEAD_EXPR_CHANNELS):
        mean[c] = PRIORS[name][2]
    pitch, brow = HEAD_EXPR_CHANNELS.index("head_pitch"), HEAD_EXPR_CHANNELS.index("brow_up")
    loud = series.get("loudness")
    if loud is None or n_frames < 3:
        return mean
    voiced = series.get("voiced", np.ones(n_frames))
    accent = gaussian_filter1d(loud * (0.5 + 0.5 * voiced), sigma=max(0.05 * fps, 0.5))
    peaks, prominences = find_peaks(accent, height=0.3, prominence=0.12,
                                    distance=max(int(0.45 * fps), 1))
    for p, prom in zip(peaks, prominences):
        strength = min(prom / 0.4, 1.0)
        _add_bump(mean[pitch], times, times[p] - 0.03, 0.12, 0.9 * strength)  # nod, chin down
        if prom > 0.3:
            _add_bump(mean[brow], times, times[p], 0.2, 0.08 * strength)
    speaking = series.get("speech", (loud > 0.15).astype(float)) > 0.5
    quiet_run = 0
    for k in range(n_frames):
        if speaking[k] and quiet_run >= 0.3 * fps:  # phrase onset after a pause
            _add_bump(mean[brow], times, times[k] + 0.1, 0.3, 0.15)
            _add_bump(mean[pitch], times, times[k], 0.3, -0.6)  # slight chin lift
        quiet_run = 0 if speaking[k] else quiet_run + 1
    return mean


def sigma_schedule(steps: int, sigma_max: float) -> np.ndarray:
    """Karras et al. (2022) noise levels: `steps` levels from sigma_max down, then 0."""
    if steps == 1:
        return np.array([sigma_max, 0.0])
    ramp = np.linspace(0.0, 1.0, steps)
    inv = sigma_max ** (1 / KARRAS_RHO) + ramp * (SIGMA_MIN ** (1 / KARRAS_RHO)
                                                   - sigma_max ** (1 / KARRAS_RHO))
    return np.append(inv ** KARRAS_RHO, 0.0)


def denoise_sample(noise: np.ndarray, mean: np.ndarray, spectra: np.ndarray,
                   steps: int) -> np.ndarray:
    """Run the sampler. `noise`: (C, n) standard normal, `mean`: (C, n) and the result in
    prior-std units; `spectra`: (C, n//2+1) from `prior_spectra`."""
    n = noise.shape[1]
    sigma_max = 3.0 * float(np.sqrt(spectra.max()))
    sigmas = sigma_schedule(steps, sigma_max)
    x = mean + sigmas[0] * noise
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        gain = spectra / (spectra + sigma**2)  # Wiener filter of the prior at this noise level
        x0 = mean + irfft(gain * rfft(x - mean, axis=1, norm="ortho"), n=n, axis=1, norm="ortho")
        excess = np.sign(x0) * np.maximum(np.abs(x0) - SOFT_BOUND, 0.0)
        x0 -= GUIDANCE * excess  # soft amplitude bound (guidance on the clean estimate)
        x = x0 + (sigma_next / sigma) * (x - x0)  # DDIM step = Euler step of the PF-ODE
    return x


def sample_head(series: dict[str, np.ndarray], n_frames: int, fps: float,
                rng: np.random.Generator, inference_steps: int,
                motion_scale: float) -> np.ndarray:
    """Head pose + expression for every frame → (T, 7) in channel order HEAD_EXPR_CHANNELS.

    `series`: the per-frame acoustic series (loudness, voiced, speech) already at `fps`.
    Draws exactly one (7, n) block from `rng`, whatever the step count or scale."""
    n = next_fast_len(n_frames + int(PAD_S * fps) + 1, real=True)
    noise = rng.standard_normal((len(HEAD_EXPR_CHANNELS), n))
    if n_frames == 0:
        return np.zeros((0, len(HEAD_EXPR_CHANNELS)), np.float32)
    std = np.array([PRIORS[c][0] for c in HEAD_EXPR_CHANNELS])[:, None]
    mean_phys = prosody_mean(series, n_frames, fps)  # (C, T)
    rest = np.array([PRIORS[c][2] for c in HEAD_EXPR_CHANNELS])[:, None]
    mean = np.concatenate([mean_phys, np.repeat(rest, n - n_frames, axis=1)], axis=1) / std
    x = denoise_sample(noise, mean, prior_spectra(n, fps), inference_steps)[:, :n_frames]
    dev = x - mean[:, :n_frames]  # (C, T) in prior stds
    for name, (source, rho) in COUPLING.items():
        i, j = HEAD_EXPR_CHANNELS.index(name), HEAD_EXPR_CHANNELS.index(source)
        dev[i] = rho * dev[j] + np.sqrt(1.0 - rho**2) * dev[i]
    speech = series.get("speech")
    if speech is not None:
        level = gaussian_filter1d(np.clip(speech, 0, 1).astype(float), sigma=max(0.3 * fps, 1.0))
        dev *= SILENT_AMPLITUDE + (1.0 - SILENT_AMPLITUDE) * level
    out = (mean[:, :n_frames] + dev) * std * motion_scale  # physical units
    return out.T.astype(np.float32)
