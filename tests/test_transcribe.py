"""transcribe, speech to text with CTC: WAV reading and resampling, log-mel features,
SpecAugment's masks, CTC decoding against brute force, the TSV format and its errors, and
learning to transcribe synthesized audio from the command line."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resumed_runs import assert_same_weights, whole_and_resumed
from rnnkit.cli import main
from rnnkit.data.audio import log_mel, mel_filterbank, read_wav, resample, spec_augment
from rnnkit.models.transcriber import (
    TranscriberConfig,
    TranscriberModel,
    ctc_beam_search,
    ctc_collapse,
    ctc_greedy,
    stack_frames,
)
from rnnkit.tasks import metrics, task_config, train_task

FAST = {"backend": "native", "threads": 1}
TONES = {"a": 500.0, "b": 1300.0, "c": 2600.0}  # one symbol, one pitch


def write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2, channels: int = 1):
    scale = {1: 127, 2: 32767}[width]
    data = np.clip(samples, -1, 1) * scale
    data = (data + 128).astype("u1") if width == 1 else data.astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(data.tobytes())


def tone_audio(text: str, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Each symbol a Hann-shaped tone of its own pitch, 0.12-0.2 s, with silences between."""
    parts = [np.zeros(int(0.05 * rate))]
    for symbol in text:
        n = int(rng.uniform(0.12, 0.2) * rate)
        t = np.arange(n) / rate
        parts += [0.5 * np.sin(2 * math.pi * TONES[symbol] * t) * np.hanning(n)]
        parts += [np.zeros(int(0.04 * rate))]
    audio = np.concatenate(parts)
    return audio + rng.normal(0, 0.01, len(audio))


def tone_corpus(folder: Path, n: int, seed: int = 0) -> Path:
    """n utterances of 1-3 symbols at 8 and 16 kHz, and their data.tsv."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        text = "".join(rng.choice(list(TONES), int(rng.integers(1, 4))))
        write_wav(
            folder / f"u{i}.wav", tone_audio(text, (8000, 16000)[i % 2], rng), (8000, 16000)[i % 2]
        )
        rows.append(f"u{i}.wav\t{text}")
    (folder / "data.tsv").write_text("\n".join(rows) + "\n")
    return folder / "data.tsv"


# ---------------------------------------------------------------- audio


def test_read_wav_scales_16_bit_samples_and_averages_channels(tmp_path):
    values = np.array([0, 16384, -32768, 32767], dtype="<i2")
    with wave.open(str(tmp_path / "m.wav"), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(values.tobytes())
    samples, rate = read_wav(tmp_path / "m.wav")
    assert rate == 8000 and samples.tolist() == [0.0, 0.5, -1.0, 32767 / 32768]
    stereo = np.array([[16384, 0], [-16384, -16384]], dtype="<i2")
    with wave.open(str(tmp_path / "s.wav"), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(stereo.tobytes())
    assert read_wav(tmp_path / "s.wav")[0].tolist() == [0.25, -0.5]


def test_read_wav_errors(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.wav: no such file"):
        read_wav(tmp_path / "nope.wav")
    write_wav(tmp_path / "byte.wav", np.zeros(100), 8000, width=1)
    with pytest.raises(ValueError, match=r"holds 8-bit samples; rnnkit reads 16-bit PCM WAV"):
        read_wav(tmp_path / "byte.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all, not at all" * 3)
    with pytest.raises(ValueError, match=r"junk\.wav is not a PCM WAV file"):
        read_wav(tmp_path / "junk.wav")
    write_wav(tmp_path / "empty.wav", np.zeros(0), 8000)
    with pytest.raises(ValueError, match=r"empty\.wav holds no samples"):
        read_wav(tmp_path / "empty.wav")


@pytest.mark.parametrize(("source", "target"), [(8000, 16000), (16000, 8000), (22050, 16000)])
def test_resampling_a_tone_gives_the_tone_sampled_at_the_new_rate(source, target):
    seconds, f = 1.0, 441.0  # whole cycles: the band-limited resampling is exact
    x = torch.sin(
        2 * math.pi * f * torch.arange(round(seconds * source), dtype=torch.float64) / source
    )
    y = resample(x, source, target)
    expected = torch.sin(2 * math.pi * f * torch.arange(len(y), dtype=torch.float64) / target)
    assert len(y) == round(seconds * target)
    torch.testing.assert_close(y, expected, atol=1e-9, rtol=0)


def test_mel_filterbank_is_htk_triangles():
    bank = mel_filterbank(201, 40, 16000)
    assert bank.shape == (201, 40) and float(bank.min()) == 0.0 and float(bank.max()) <= 1.0
    mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    # a tone lands in the channel whose centre is nearest on the mel scale
    for f in (300.0, 1000.0, 3000.0, 6000.0):
        t = torch.arange(16000, dtype=torch.float64) / 16000
        features = log_mel(torch.sin(2 * math.pi * f * t), 16000, 40)
        assert features.shape == (16000 // 160 + 1, 40)
        centres = [(i + 1) * mel(8000) / 41 for i in range(40)]
        nearest = min(range(40), key=lambda i: abs(centres[i] - mel(f)))
        assert abs(int(features[50].argmax()) - nearest) <= 1


def test_spec_augment_masks_bands_only():
    features = torch.randn(200, 80) + 5
    masked = spec_augment(features, generator=torch.Generator().manual_seed(0))
    zero = masked == 0
    assert zero.any() and torch.equal(masked[~zero], features[~zero])
    rows, cols = zero.all(1), zero.all(0)
    assert int(cols.sum()) <= 30 and int(rows.sum()) <= 20  # two bands each, bounded widths
    assert torch.equal(zero, rows[:, None] | cols[None, :])  # whole rows and columns only
    none = spec_augment(features, freq_masks=0, time_masks=0)
    assert torch.equal(none, features)


# ---------------------------------------------------------------- CTC


def brute_force(log_probs: torch.Tensor) -> dict[tuple, float]:
    """Every labelling's probability, summed over all of its alignments."""
    T, V = log_probs.shape
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(V), repeat=T):
        p = math.exp(sum(float(log_probs[t, s]) for t, s in enumerate(path)))
        label = tuple(ctc_collapse(list(path)))
        totals[label] = totals.get(label, 0.0) + p
    return totals


def test_collapse_and_greedy():
    assert ctc_collapse([1, 1, 0, 1, 2, 2, 0, 0]) == [1, 1, 2]
    assert ctc_collapse([0, 0]) == []
    log_probs = torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.9, 0.05, 0.05]]).log()
    assert ctc_greedy(log_probs) == [1]


@pytest.mark.parametrize("seed", range(6))
def test_beam_search_is_exact_when_wide_and_scores_like_ctc_loss(seed):
    torch.manual_seed(seed)
    log_probs = (torch.randn(5, 3, dtype=torch.float64) * 1.5).log_softmax(-1)
    totals = brute_force(log_probs)
    best = max(totals, key=totals.get)
    assert tuple(ctc_beam_search(log_probs, beam_size=64)) == best
    # torch's CTC loss is -log of the same sum over alignments
    if best:
        loss = F.ctc_loss(
            log_probs[:, None, :], torch.tensor([best]), [5], [len(best)], reduction="sum"
        )
        assert float(loss) == pytest.approx(-math.log(totals[best]), rel=1e-9)


def test_beam_search_finds_what_greedy_misses():
    """Greedy takes blank, blank; but 'a' (a blank or a at each step) is more probable."""
    log_probs = torch.tensor([[0.4, 0.35, 0.25], [0.4, 0.35, 0.25]], dtype=torch.float64).log()
    assert ctc_greedy(log_probs) == []
    assert ctc_beam_search(log_probs, 4) == [1]  # P(a) = 0.35*0.4*2 + 0.35^2 = 0.4025 > 0.16


def test_stacked_frames_and_model_shapes():
    x = torch.arange(2 * 7 * 2, dtype=torch.float32).reshape(2, 7, 2)
    stacked, lengths = stack_frames(x, torch.tensor([7, 4]), 3)
    assert stacked.shape == (2, 3, 6) and lengths.tolist() == [3, 2]
    assert stacked[0, 1].tolist() == x[0, 3:6].flatten().tolist()
    model = TranscriberModel(TranscriberConfig(num_features=2, vocab_size=4, hidden_size=5))
    log_probs, out = model(x, torch.tensor([7, 4]))
    assert log_probs.shape == (2, 3, 4) and out.tolist() == [3, 2]
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 3))


def test_word_error_rate():
    assert metrics.word_error_rate(["3 5 1", "2 2"], ["3 1", "2 2 7"]) == pytest.approx(2 / 5)


# ---------------------------------------------------------------- the task


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("transcribe")
    data = tone_corpus(root / "audio", 80)
    config = task_config(
        "transcribe",
        data=str(data),
        out=str(root / "run"),
        max_steps=300,
        hidden_size=32,
        num_layers=1,
        eval_every=100,
        **FAST,
    )
    train_task(config, progress=False)
    return root


def test_learns_to_transcribe_tones(trained, capsys):
    metrics_ = json.loads((trained / "run" / "metrics.json").read_text())
    assert metrics_["cer"] < 0.1, metrics_["cer"]
    data = trained / "audio" / "data.tsv"
    assert main(["evaluate", "--checkpoint", str(trained / "run"), "--data", str(data)]) == 0
    greedy = json.loads(capsys.readouterr().out)
    argv = ["evaluate", "--checkpoint", str(trained / "run"), "--data", str(data)]
    assert main([*argv, "--beam-size", "4"]) == 0
    beam = json.loads(capsys.readouterr().out)
    assert greedy["cer"] < 0.1 and beam["cer"] < 0.1 and greedy["examples"] == 80


def test_predict_transcribes_listed_files(trained, capsys):
    rows = (trained / "audio" / "data.tsv").read_text().splitlines()[:6]
    listing = trained / "audio" / "list.txt"
    listing.write_text("\n".join(r.split("\t")[0] for r in rows) + "\n")
    assert main(["predict", "--checkpoint", str(trained / "run"), "--data", str(listing)]) == 0
    out = capsys.readouterr().out.splitlines()
    truth = [r.split("\t")[1] for r in rows]
    assert metrics.character_error_rate(truth, out) < 0.2, (truth, out)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("u0.wav", r"data.tsv:2: expected 2 tab-separated columns \(audio.wav<TAB>transcript\)"),
        ("gone.wav\tab", r"data.tsv:2: .*gone.wav: no such file"),
        ("u0.wav\t  ", r"data.tsv:2: the transcript is empty"),
        ("short.wav\tabcabcabc", r"data.tsv:2: 7 frames of audio \(10 ms each\) make 3 encoder"),
        ("junk.wav\tab", r"data.tsv:2: .*junk.wav is not a PCM WAV file"),
    ],
)
def test_bad_lines_are_one_line_errors_and_touch_nothing(trained, tmp_path, line, message):
    folder = tmp_path / "bad"
    folder.mkdir()
    rng = np.random.default_rng(1)
    write_wav(folder / "u0.wav", tone_audio("ab", 8000, rng), 8000)
    write_wav(folder / "short.wav", np.zeros(480), 8000)
    (folder / "junk.wav").write_bytes(b"RIFF....")
    path = folder / "data.tsv"
    path.write_text(f"u0.wav\tab\n{line}\nu0.wav\tba\n")
    config = task_config("transcribe", data=str(path), out=str(tmp_path / "run"), max_steps=2)
    with pytest.raises(ValueError, match=message):
        train_task(config, progress=False)
    assert not (tmp_path / "run" / "latest").exists()
    before = {p.name: p.read_bytes() for p in (trained / "run" / "best").iterdir()}
    code = main(["evaluate", "--checkpoint", str(trained / "run"), "--data", str(path)])
    # a recording too short for its transcript is scored (as errors), never trained on
    assert (code == 0) == line.startswith("short.wav")
    assert before == {p.name: p.read_bytes() for p in (trained / "run" / "best").iterdir()}


def test_espeak_ng_speech_is_read_and_featurized(tmp_path):
    """The example's spoken data: espeak-ng writes 22,050 Hz WAV (scripts/system-packages.sh
    installs it)."""
    path = tmp_path / "spoken.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), "three five"], check=True)
    samples, rate = read_wav(path)
    assert rate == 22050 and float(samples.abs().max()) > 0.1
    features = log_mel(resample(samples, rate, 16000), 16000)
    assert features.shape[1] == 80 and features.shape[0] == len(samples) * 16000 // 22050 // 160 + 1


def test_dataset_normalization_is_saved_and_resume_is_exact(tmp_path, one_thread):
    data = tone_corpus(tmp_path / "audio", 24, seed=3)
    options = {"data": str(data), "max_steps": 8, "eval_every": 4, "save_every": 2}
    options |= {"hidden_size": 8, "num_layers": 1, "spec_augment": True, "normalize": "dataset"}
    assert_same_weights(*whole_and_resumed("transcribe", tmp_path, options | FAST))
    state = json.loads((tmp_path / "whole" / "task.json").read_text())["state"]
    assert len(state["mean"]) == 80 and min(state["std"]) > 0
