"""The compiled kernels' vectorizable sigmoid and tanh against numpy in float64."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.engine.compiled.vecmath import scratch_for, sigmoid_inplace, tanh_inplace, tanh_into

# relative error bounds: a few ulp of each dtype
BOUNDS = {np.float32: 4e-7, np.float64: 4e-15}


def _values(dtype) -> np.ndarray:
    rng = np.random.default_rng(0)
    special = [0.0, -0.0, 1e-30, -1e-12, 1e-7, 0.0624, 0.0626, -0.0625, 0.5, 1.0, -3.0, 9.5]
    spread = np.concatenate([rng.normal(0, s, 4000) for s in (0.01, 1.0, 5.0, 30.0)])
    return np.concatenate([special, spread]).astype(dtype)


def _apply(function, x):
    n = x.size
    e = np.empty_like(x)
    scale, bits = scratch_for(n, x.dtype)
    if function is tanh_into:
        out = np.empty_like(x)
        tanh_into(x, out, e, scale, bits, n)
        return out
    out = x.copy()
    function(out, e, scale, bits, n)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("function", [sigmoid_inplace, tanh_inplace, tanh_into])
def test_matches_numpy_to_a_few_ulp(function, dtype):
    x = _values(dtype)
    exact = x.astype(np.float64)
    expected = 1 / (1 + np.exp(-exact)) if function is sigmoid_inplace else np.tanh(exact)
    got = _apply(function, x).astype(np.float64)
    # below the dtype's exp underflow sigmoid is clamped (documented): compare absolutely there
    tiny = np.abs(expected) < 1e-30
    assert np.max(np.abs(got - expected)[tiny], initial=0) < 1e-30
    relative = np.abs(got - expected)[~tiny] / np.abs(expected[~tiny]).clip(np.finfo(dtype).tiny)
    assert relative.max() < BOUNDS[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("function", [sigmoid_inplace, tanh_inplace, tanh_into])
def test_nan_propagates_and_infinities_saturate(function, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 1000.0, -1000.0], dtype=dtype)
    got = _apply(function, x)
    assert np.isnan(got[0])
    low = 0.0 if function is sigmoid_inplace else -1.0
    np.testing.assert_allclose(got[1:], [1.0, low, 1.0, low], atol=1e-30, rtol=0)
