"""exp, sigmoid and tanh over contiguous buffers, written so numba's loops vectorize.

numba turns np.exp and np.tanh into libm calls, one element at a time (pip's llvmlite has no
vector math library), and the gates' nonlinearities then cost more than the GEMMs around them.
Here each function is a few short loops of plain arithmetic, which LLVM turns into SIMD code, in
the input's own precision (float32 gets twice the lanes of float64):

    exp(x) = 2^n e^r,  n = round(x / ln 2),  r = x - n ln 2 (Cody-Waite: ln 2 in two parts)
        e^r by a polynomial on |r| <= ln2 / 2: Cephes' expf minimax polynomial for float32,
        Taylor to r^12 for float64 (truncation below 2e-16); 2^n built in the exponent bits.
    sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) otherwise, with e = exp(-|x|)
    tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|); below |x| = 1/16, where 1 - e
        cancels, its Taylor series to x^11 instead.

Accuracy: a few ulp of the dtype (tests compare with numpy in float64 to 1e-14 relative).
Arguments below the dtype's exp underflow (-87 for float32, -708 for float64) are clamped
there, so exp stays normal: sigmoid and tanh then differ from 0 and ±1 by less than 1e-37.

Every function takes scratch: `e`, a float buffer at least as long as the data, `scale`, another,
and `bits`, scale's memory viewed as the matching integer type (int32 for float32, int64 for
float64): 2^n is written through `bits` and read through `scale`. In-place and out-of-place
versions are separate functions on purpose: LLVM vectorizes a loop only when it can tell that
the arrays it reads and writes through different names do not overlap.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["exp_neg_abs", "scratch_for", "sigmoid_inplace", "tanh_inplace", "tanh_into"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

_LN2_HI = 0.693359375  # Cephes' split of ln 2: HI is exact in 9 bits, so k * HI is exact
_LN2_LO = -2.121944400546905827679e-4
_LOG2E = 1.4426950408889634


def scratch_for(size: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(scale, bits): a float buffer of `size` and its integer view, for the functions here."""
    scale = np.empty(size, dtype=dtype)
    return scale, scale.view(np.int32 if scale.itemsize == 4 else np.int64)


@njit(**_JIT)
def exp_neg_abs(x, e, scale, bits, n, factor):
    """e[:n] = exp(-factor |x[:n]|). x, e and scale must be different arrays: a loop that reads
    and writes overlapping memory through two names gets no SIMD (LLVM's overlap check fails)."""
    T = x.dtype.type
    single = bits.itemsize == 4
    lowest = T(-87.0) if single else T(-708.0)
    mantissa = 23 if single else 52
    # k + magic puts the biased exponent k + bias in the low mantissa bits, as an integer:
    # shifted left by the mantissa width it is the bit pattern of 2^k (no float-to-int
    # conversion, which SSE/AVX1 cannot vectorize for 64-bit integers).
    magic = T(127 + 2.0**23) if single else T(1023 + 2.0**52)
    f, log2e, half = T(-factor), T(_LOG2E), T(0.5)
    ln2_hi, ln2_lo, one = T(_LN2_HI), T(_LN2_LO), T(1.0)
    if single:
        c0, c1, c2 = T(1.9875691500e-4), T(1.3981999507e-3), T(8.3334519073e-3)
        c3, c4, c5 = T(4.1665795894e-2), T(1.6666665459e-1), T(5.0000001201e-1)
        for j in range(n):
            v = f * abs(x[j])
            v = lowest if v < lowest else v  # NaN stays NaN
            k = np.floor(v * log2e + half)
            r = v - k * ln2_hi - k * ln2_lo
            p = ((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5
            e[j] = p * r * r + r + one
            scale[j] = k + magic
    else:
        for j in range(n):
            v = f * abs(x[j])
            v = lowest if v < lowest else v  # NaN stays NaN
            k = np.floor(v * log2e + half)
            r = v - k * ln2_hi - k * ln2_lo
            p = 1.0 / 479001600
            p = p * r + 1.0 / 39916800
            p = p * r + 1.0 / 3628800
            p = p * r + 1.0 / 362880
            p = p * r + 1.0 / 40320
            p = p * r + 1.0 / 5040
            p = p * r + 1.0 / 720
            p = p * r + 1.0 / 120
            p = p * r + 1.0 / 24
            p = p * r + 1.0 / 6
            p = p * r + 0.5
            e[j] = p * r * r + r + 1.0
            scale[j] = k + magic
    for j in range(n):
        bits[j] <<= mantissa
    for j in range(n):
        e[j] *= scale[j]


@njit(inline="always", **_JIT)
def _sigmoid_from(x, e, one):
    """sigmoid(x) given e = exp(-|x|)."""
    s = one / (one + e)
    return s if x >= 0 else e * s


@njit(inline="always", **_JIT)
def _tanh_from(x, e, one, cut, s3, s5, s7, s9, s11):
    """tanh(x) given e = exp(-2|x|); the Taylor series below |x| = cut."""
    t = (one - e) / (one + e)
    x2 = x * x
    series = x * (one + x2 * (s3 + x2 * (s5 + x2 * (s7 + x2 * (s9 + x2 * s11)))))
    signed = t if x >= 0 else -t
    return series if abs(x) < cut else signed


@njit(**_JIT)
def sigmoid_inplace(a, e, scale, bits, n):
    """a[:n] = sigmoid(a[:n]); e, scale, bits: scratch."""
    one = a.dtype.type(1.0)
    exp_neg_abs(a, e, scale, bits, n, 1.0)
    for j in range(n):
        a[j] = _sigmoid_from(a[j], e[j], one)


@njit(**_JIT)
def tanh_inplace(a, e, scale, bits, n):
    """a[:n] = tanh(a[:n]); e, scale, bits: scratch."""
    T = a.dtype.type
    one, cut = T(1.0), T(0.0625)
    s3, s5, s7, s9, s11 = T(-1 / 3), T(2 / 15), T(-17 / 315), T(62 / 2835), T(-1382 / 155925)
    exp_neg_abs(a, e, scale, bits, n, 2.0)
    for j in range(n):
        a[j] = _tanh_from(a[j], e[j], one, cut, s3, s5, s7, s9, s11)


@njit(**_JIT)
def tanh_into(x, out, e, scale, bits, n):
    """out[:n] = tanh(x[:n]) for out a different array from x; e, scale, bits: scratch."""
    T = x.dtype.type
    one, cut = T(1.0), T(0.0625)
    s3, s5, s7, s9, s11 = T(-1 / 3), T(2 / 15), T(-17 / 315), T(62 / 2835), T(-1382 / 155925)
    exp_neg_abs(x, e, scale, bits, n, 2.0)
    for j in range(n):
        out[j] = _tanh_from(x[j], e[j], one, cut, s3, s5, s7, s9, s11)
