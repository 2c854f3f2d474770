"""The two signal-processing helpers the motion stage needs, in numpy.

`scipy.signal` would do, but importing it pulls in scipy.stats (~0.7 s measured here), a
quarter of the whole compute budget of a 10-second clip; these match its results.
"""

from __future__ import annotations

import numpy as np


def savgol(x: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Savitzky–Golay smoothing along axis 0, like scipy's `savgol_filter(mode="interp")`:
    a least-squares polynomial of `polyorder` over each `window` (odd) samples; the first and
    last half-windows are evaluated on the polynomial fitted to the edge window."""
    x = np.asarray(x, np.float64)
    n, half = len(x), window // 2
    offsets = np.arange(-half, half + 1)
    basis = np.vander(offsets, polyorder + 1, increasing=True)  # (window, p+1)
    fit = np.linalg.pinv(basis)  # (p+1, window): sample values → polynomial coefficients
    kernel = fit[0]  # value of the polynomial at the window centre
    out = np.empty_like(x)
    flat = x.reshape(n, -1)
    res = out.reshape(n, -1)
    for c in range(flat.shape[1]):
        res[half:n - half, c] = np.convolve(flat[:, c], kernel[::-1], mode="valid")
    edge = np.vander(np.arange(window) - half, polyorder + 1, increasing=True) @ fit  # (window, window)
    res[:half] = edge[:half] @ flat[:window]
    res[n - half:] = edge[half + 1:] @ flat[n - window:]
    return out


def find_peaks(x: np.ndarray, height: float, prominence: float, distance: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of a 1-D series like scipy's `find_peaks(x, height, prominence, distance)`:
    local maxima (plateaus → their middle) ≥ `height`, thinned so no two are closer than
    `distance` samples (higher ones win), then kept where their prominence ≥ `prominence`.
    Returns (peak indices, their prominences)."""
    x = np.asarray(x, np.float64)
    peaks = []
    k, n = 1, len(x)
    while k < n - 1:
        if x[k - 1] < x[k]:
            ahead = k + 1
            while ahead < n - 1 and x[ahead] == x[k]:
                ahead += 1
            if x[ahead] < x[k]:
                peaks.append((k + ahead - 1) // 2)
                k = ahead
        k += 1
    peaks = np.array([p for p in peaks if x[p] >= height], np.int64)
    if distance > 1 and len(peaks) > 1:
        keep = np.ones(len(peaks), bool)
        for i in np.argsort(x[peaks], kind="stable")[::-1]:
            if keep[i]:
                near = np.abs(peaks - peaks[i]) < distance
                near[i] = False
                keep &= ~near
        peaks = peaks[keep]
    proms = np.array([_prominence(x, p) for p in peaks])
    chosen = proms >= prominence if len(peaks) else np.zeros(0, bool)
    return peaks[chosen], proms[chosen]


def _prominence(x: np.ndarray, peak: int) -> float:
    """Height of `peak` above the higher of its two bases (lowest point before a higher sample)."""
    left = peak
    left_min = x[peak]
    while left > 0 and x[left - 1] <= x[peak]:
        left -= 1
        left_min = min(left_min, x[left])
    right = peak
    right_min = x[peak]
    while right < len(x) - 1 and x[right + 1] <= x[peak]:
        right += 1
        right_min = min(right_min, x[right])
    return float(x[peak] - max(left_min, right_min))
