"""Audio for speech models: WAV files in, log-mel features out, with SpecAugment's masks.

    read_wav(path) -> (samples (N,) float32 in [-1, 1], sample_rate)
    resample(samples, from_rate, to_rate) -> (N',)
    log_mel(samples, sample_rate, n_mels) -> (T, n_mels)   25 ms windows every 10 ms
    spec_augment(features, ...) -> (T, n_mels) with frequency and time bands set to zero

WAV files are read with the standard library's `wave` module: 16-bit PCM, any sample rate;
several channels are averaged to one. Resampling is exact band-limited (FFT) resampling of the
whole utterance, which suits utterances of seconds. The mel filterbank is the HTK one
(triangles on the mel scale 2595 log10(1 + f / 700), unnormalized), as torchaudio's
`melscale_fbanks` and librosa's `htk=True` make it; features are the natural log of the mel
power, floored at 1e-10.
"""

from __future__ import annotations

import math
import os
import wave
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["log_mel", "mel_filterbank", "read_wav", "resample", "spec_augment"]

WINDOW_S = 0.025  # 25 ms analysis windows
HOP_S = 0.010  # every 10 ms: 100 frames per second
LOG_FLOOR = 1e-10


def read_wav(path: str | os.PathLike) -> tuple[Tensor, int]:
    """(samples (N,) float32 in [-1, 1], sample rate) of a 16-bit PCM WAV file; one-line
    ValueErrors for a missing, unreadable, non-16-bit or empty file."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width = handle.getnchannels(), handle.getsampwidth()
            rate, frames = handle.getframerate(), handle.getnframes()
            raw = handle.readframes(frames)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a WAV file") from None
    except (wave.Error, EOFError) as error:
        detail = str(error) or "the file ends inside the header"
        raise ValueError(f"{path} is not a PCM WAV file ({detail})") from None
    if width != 2:
        raise ValueError(
            f"{path} holds {8 * width}-bit samples; rnnkit reads 16-bit PCM WAV (convert it, "
            f"e.g. sox {path.name} -b 16 out.wav)"
        )
    samples = np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2")
    if samples.size == 0:
        raise ValueError(f"{path} holds no samples")
    audio = samples.reshape(-1, channels).astype(np.float32).mean(axis=1) / 32768.0
    return torch.from_numpy(audio), rate


def resample(samples: Tensor, from_rate: int, to_rate: int) -> Tensor:
    """Band-limited resampling of a whole signal (N,) by its spectrum: the new length is
    round(N * to_rate / from_rate)."""
    if from_rate == to_rate:
        return samples
    n = samples.shape[-1]
    m = max(1, round(n * to_rate / from_rate))
    spectrum = torch.fft.rfft(samples.double())
    keep = min(spectrum.shape[-1], m // 2 + 1)
    out = torch.zeros(m // 2 + 1, dtype=spectrum.dtype)
    out[:keep] = spectrum[:keep]
    if n % 2 == 0 and m > n:
        out[n // 2] *= 0.5  # the old Nyquist bin stood for +f and -f; upsampled they part
    return (torch.fft.irfft(out, m) * (m / n)).to(samples.dtype)


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int) -> Tensor:
    """(n_freqs, n_mels) HTK triangles from 0 Hz to sample_rate / 2 over the rfft bins."""
    bins = np.linspace(0.0, sample_rate / 2, n_freqs)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    return torch.from_numpy(np.maximum(0.0, np.minimum(rising, falling))).float()


def log_mel(samples: Tensor, sample_rate: int, n_mels: int = 80) -> Tensor:
    """(T, n_mels) log mel power of 25 ms Hann windows every 10 ms (T = N // hop + 1)."""
    n_fft = round(WINDOW_S * sample_rate)
    hop = round(HOP_S * sample_rate)
    window = torch.hann_window(n_fft, dtype=samples.dtype)
    if samples.shape[-1] < n_fft // 2 + 1:  # reflect padding needs more samples than half a window
        samples = torch.nn.functional.pad(samples, (0, n_fft // 2 + 1 - samples.shape[-1]))
    spectrum = torch.stft(samples, n_fft, hop, window=window, return_complex=True)  # (F, T)
    power = spectrum.abs().square().T  # (T, F)
    bank = mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate).to(power.dtype)
    return (power @ bank).clamp_min(LOG_FLOOR).log()


def spec_augment(
    features: Tensor,
    *,
    freq_masks: int = 2,
    freq_width: int = 15,
    time_masks: int = 2,
    time_fraction: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SpecAugment's masking (Park et al. 2019, without time warping) of normalized features
    (T, F): `freq_masks` bands of up to `freq_width` channels and `time_masks` bands of up to
    `time_fraction` of the frames set to 0 (the mean, after normalization). A new tensor."""
    out = features.clone()
    T, F_ = out.shape

    def draw(high: int) -> int:
        return int(torch.randint(0, max(high, 0) + 1, (1,), generator=generator))

    for _ in range(freq_masks):
        width = draw(min(freq_width, F_))
        start = draw(F_ - width)
        out[:, start : start + width] = 0.0
    for _ in range(time_masks):
        width = draw(math.floor(time_fraction * T))
        start = draw(T - width)
        out[start : start + width, :] = 0.0
    return out
