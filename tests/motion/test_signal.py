"""The numpy helpers agree with scipy.signal (which the motion stage avoids importing)."""

import numpy as np
import pytest
from scipy.signal import find_peaks as scipy_find_peaks
from scipy.signal import savgol_filter

from mouthpiece.motion.signal import find_peaks, savgol


@pytest.mark.parametrize("window", [5, 7, 11, 19])
def test_savgol_matches_scipy_interp_mode(window):
    x = np.random.default_rng(window).random((120, 7))
    expected = savgol_filter(x, window, 2, axis=0, mode="interp")
    assert np.allclose(savgol(x, window, 2), expected)


@pytest.mark.parametrize("seed", range(6))
def test_find_peaks_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.random(400), np.ones(7) / 7, "same")
    x[100:104] = 0.95  # a plateau
    peaks, prominences = find_peaks(x, height=0.3, prominence=0.05, distance=11)
    expected, props = scipy_find_peaks(x, height=0.3, prominence=0.05, distance=11)
    assert np.array_equal(peaks, expected)
    assert np.allclose(prominences, props["prominences"])
    assert len(peaks) > 3
