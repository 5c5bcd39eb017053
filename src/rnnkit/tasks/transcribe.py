"""transcribe: speech to text, a bidirectional recurrent encoder trained with CTC.

Data: `path/to/audio.wav<TAB>transcript` lines, paths relative to the TSV's folder; 16-bit PCM
WAV at any sample rate (resampled to --sample-rate; several channels are averaged). Features
are --n-mels log-mel energies of 25 ms windows every 10 ms (rnnkit.data.audio), normalized per
utterance (each channel to mean 0 and variance 1) or with the training part's statistics
(`--normalize dataset`, saved with the model). `--spec-augment` masks frequency and time
bands of the training utterances (SpecAugment without time warping).

The output symbols are the characters of the training transcripts plus CTC's blank (id 0);
the loss is torch's CTCLoss, averaged over the transcripts' lengths. Decoding is greedy
(`--beam-size 1`) or the CTC prefix beam search. Metrics: cer (character error rate), wer
(word error rate; for digit strings written "3 5 1" it is the digit error rate), and
exact_match. best/ keeps the lowest held-out cer (greedy decoding).

`rnnkit predict --checkpoint RUN --data list.txt` transcribes the WAV files listed one per
line (paths relative to the list's folder; a TAB and a transcript after the path are ignored).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import Option, is_int
from ..data.audio import log_mel, read_wav, resample, spec_augment
from ..models.transcriber import (
    BLANK,
    TranscriberConfig,
    TranscriberModel,
    ctc_beam_search,
    ctc_greedy,
)
from . import metrics
from .base import UNIDIRECTIONAL, Batch, Task, batches_of, read_lines, read_pairs

__all__ = ["TranscribeTask", "Utterance"]

NORMALIZATIONS = ("utterance", "dataset")
EPS = 1e-5


@dataclass
class Utterance:
    """One recording: its features (T, n_mels), unnormalized, and its transcript (None for
    an input to transcribe)."""

    features: Tensor
    transcript: str | None
    where: str  # "FILE:LINE" or "inputs[i]", for errors


def _decode_flags() -> dict[str, dict]:
    return {
        "beam_size": {
            "type": int,
            "default": 1,
            "metavar": "K",
            "help": "beam width; 1 decodes greedily (default 1)",
        }
    }


class TranscribeTask(Task):
    name = "transcribe"
    own_options = (
        Option(
            "sample_rate",
            16000,
            "audio is resampled to this rate (Hz) before its features are computed",
            metavar="HZ",
            minimum=1000,
        ),
        Option("n_mels", 80, "log-mel channels per frame", metavar="N", minimum=1),
        Option(
            "frame_stack",
            3,
            "frames (10 ms each) stacked into one step of the recurrent encoder",
            metavar="K",
            minimum=1,
        ),
        Option(
            "normalize",
            "utterance",
            "features to mean 0 and variance 1 per channel: over each utterance, or with the "
            "training part's statistics (saved with the model)",
            choices=NORMALIZATIONS,
        ),
        Option(
            "spec_augment",
            False,
            "mask two frequency bands (up to 15 channels) and two time bands (up to 5% of the "
            "frames) of every training utterance",
        ),
        UNIDIRECTIONAL,
    )
    defaults: ClassVar[dict] = {
        "recurrent_init": "uniform",
        "precision": "float32",
        "cell": "gru",
        "hidden_size": 128,
        "num_layers": 2,
        "dropout": 0.1,
        "lr": 3e-3,
        "warmup_steps": 50,
        "batch_size": 16,
        "eval_every": 200,
        "save_every": 200,
    }
    best_by = ("cer", "min")
    predict_flags: ClassVar[dict] = _decode_flags()
    evaluate_flags: ClassVar[dict] = _decode_flags()

    def __init__(self, config) -> None:
        super().__init__(config)
        self.alphabet: list[str] = []  # output symbol i + 1 is alphabet[i]; 0 is the blank
        self.mean: list[float] | None = None  # --normalize dataset
        self.std: list[float] | None = None

    @classmethod
    def check_config(cls, config) -> None:
        if config.tokens != "char":
            raise ValueError(
                "--tokens does not apply to --task transcribe: transcripts are read as "
                "characters; drop it"
            )

    # ------------------------------------------------------------ reading

    def features_of(self, samples: Tensor, rate: int) -> Tensor:
        samples = resample(samples, rate, self.config.sample_rate)
        return log_mel(samples, self.config.sample_rate, self.config.n_mels)

    def _utterance(self, path: Path, transcript: str | None, where: str) -> Utterance:
        if transcript is not None and not transcript.strip():
            raise ValueError(f"{where}: the transcript is empty; every line needs audio<TAB>text")
        try:
            samples, rate = read_wav(path)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        text = " ".join(transcript.split()) if transcript is not None else None
        return Utterance(self.features_of(samples, rate), text, where)

    def _rows(self, path) -> list[tuple[int, list[str]]]:
        return [
            (number, line.split("\t"))
            for number, line in enumerate(read_lines(path, self.config.encoding), 1)
            if line.strip()
        ]

    def read_examples(self, path) -> list[Utterance]:
        folder = Path(path).parent
        examples = []
        form = "audio.wav<TAB>transcript"
        for number, audio, transcript in read_pairs(path, self.config.encoding, form):
            examples.append(self._utterance(folder / audio.strip(), transcript, f"{path}:{number}"))
        if not examples:
            raise ValueError(f"{path} holds no examples; expected audio.wav<TAB>transcript lines")
        return examples

    def read_inputs(self, path) -> list[Utterance]:
        folder = Path(path).parent
        inputs = [
            self._utterance(folder / columns[0].strip(), None, f"{path}:{number}")
            for number, columns in self._rows(path)
        ]
        if not inputs:
            raise ValueError(f"{path} lists no WAV files; expected one path per line")
        return inputs

    def examples_from_python(self, inputs: Sequence, targets: Sequence | None) -> list:
        """Inputs: WAV paths, or (samples, sample_rate) pairs of 1-D float arrays in [-1, 1]."""
        if targets is not None and len(targets) != len(inputs):
            raise ValueError(f"transcribe: {len(inputs)} recordings but {len(targets)} transcripts")
        examples = []
        for i, item in enumerate(inputs):
            where = f"inputs[{i}]"
            transcript = None if targets is None else str(targets[i])
            if isinstance(item, str | os.PathLike):
                examples.append(self._utterance(Path(item), transcript, where))
                continue
            if not (isinstance(item, tuple | list) and len(item) == 2 and is_int(item[1])):
                raise TypeError(f"{where}: expected a WAV path or a (samples, sample_rate) pair")
            samples = torch.as_tensor(item[0], dtype=torch.float32).flatten()
            if transcript is not None and not transcript.strip():
                raise ValueError(f"{where}: the transcript is empty")
            text = " ".join(transcript.split()) if transcript is not None else None
            examples.append(Utterance(self.features_of(samples, int(item[1])), text, where))
        return examples

    # ------------------------------------------------------------ fitted state

    def fit(self, examples: list[Utterance]) -> None:
        self.alphabet = sorted({ch for e in examples for ch in e.transcript})
        if self.config.normalize == "dataset":
            frames = torch.cat([e.features for e in examples]).double()
            self.mean = frames.mean(0).tolist()
            self.std = frames.std(0, correction=0).clamp_min(EPS).tolist()

    def state_dict(self) -> dict:
        return {"alphabet": self.alphabet, "mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict) -> None:
        self.alphabet = list(state["alphabet"])
        self.mean, self.std = state["mean"], state["std"]
        if not self.alphabet:
            raise ValueError("the alphabet is empty")
        if self.config.normalize == "dataset" and self.mean is None:
            raise ValueError("--normalize dataset needs the stored statistics")

    # ------------------------------------------------------------ model

    def build_model(self, model_config: dict | None = None) -> TranscriberModel:
        if model_config is not None:
            return TranscriberModel(TranscriberConfig.from_dict(model_config))
        c = self.config
        return TranscriberModel(
            TranscriberConfig(
                num_features=c.n_mels,
                vocab_size=len(self.alphabet) + 1,
                frame_stack=c.frame_stack,
                cell=c.cell,
                hidden_size=c.hidden_size,
                num_layers=c.num_layers,
                bidirectional=not c.unidirectional,
                dropout=c.dropout,
                backend=c.backend,
            )
        )

    # ------------------------------------------------------------ batches and loss

    def normalized(self, features: Tensor) -> Tensor:
        if self.config.normalize == "dataset":
            mean, std = torch.tensor(self.mean), torch.tensor(self.std)
        else:
            mean = features.mean(0)
            std = features.std(0, correction=0).clamp_min(EPS)
        return ((features - mean) / std).float()

    def symbols(self, text: str) -> list[int]:
        """Output ids of a transcript; characters never seen in training are left out (no
        output can produce them: the error rates count them as misses)."""
        index = {ch: i + 1 for i, ch in enumerate(self.alphabet)}
        return [index[ch] for ch in text if ch in index]

    def encode(self, example: Utterance) -> tuple[Tensor, Tensor]:
        features = self.normalized(example.features)
        target = torch.tensor(self.symbols(example.transcript or ""), dtype=torch.long)
        steps = -(-features.shape[0] // self.config.frame_stack)
        repeats = int((target[1:] == target[:-1]).sum()) if len(target) > 1 else 0
        if example.transcript is not None and steps < len(target) + repeats:
            raise ValueError(
                f"{example.where}: {features.shape[0]} frames of audio (10 ms each) make "
                f"{steps} encoder steps with "
                f"--frame-stack {self.config.frame_stack}, fewer than CTC needs for its "
                f"{len(target)}-character transcript ({len(target) + repeats}); lower "
                "--frame-stack or check the transcript"
            )
        return features, target

    def collate(self, items: list) -> Batch:
        features = [f for f, _ in items]
        lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
        padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
        targets = [t for _, t in items]
        return Batch(
            {
                "features": padded,
                "lengths": lengths,
                "targets": torch.cat(targets),
                "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long),
            },
            size=len(items),
            tokens=int(lengths.sum()),
        )

    def loss(self, model: TranscriberModel, batch: Batch) -> Tensor:
        t = batch.tensors
        log_probs, lengths = model(t["features"], t["lengths"])  # (B, T', V)
        return F.ctc_loss(
            log_probs.transpose(0, 1).float(),
            t["targets"],
            lengths,
            t["target_lengths"],
            blank=BLANK,
            reduction="mean",
            zero_infinity=False,  # encode() refuses utterances CTC cannot align
        )

    def train_loss(self, model: TranscriberModel, batch: Batch, carry):
        if self.config.spec_augment:
            t = dict(batch.tensors)
            t["features"] = torch.stack(
                [
                    torch.cat([spec_augment(f[:n]), f[n:]])
                    for f, n in zip(t["features"], t["lengths"].tolist(), strict=True)
                ]
            )  # torch's generator draws the masks: resume restores it
            batch = Batch(t, batch.size, batch.tokens, batch.extra)
        return self.loss(model, batch), None

    # ------------------------------------------------------------ inference

    def decode_text(self, ids: list[int]) -> str:
        return "".join(self.alphabet[i - 1] for i in ids)

    @torch.no_grad()
    def predict(self, model: TranscriberModel, inputs: list[Utterance], **options) -> list[str]:
        beam_size = options.pop("beam_size", 1)
        if options:
            raise ValueError(f"transcribe: unknown options {', '.join(options)}")
        if not is_int(beam_size) or beam_size < 1:
            raise ValueError(f"--beam-size must be an integer >= 1; got {beam_size!r}")
        model.eval()
        items = [(self.normalized(u.features), torch.zeros(0, dtype=torch.long)) for u in inputs]
        out = []
        for batch in batches_of(self, items, self.config.batch_size):
            t = batch.tensors
            log_probs, lengths = model(t["features"], t["lengths"])
            for row, n in zip(log_probs, lengths.tolist(), strict=True):
                steps = row[:n]
                ids = ctc_greedy(steps) if beam_size == 1 else ctc_beam_search(steps, beam_size)
                out.append(self.decode_text(ids))
        return out

    def format_output(self, output: str) -> str:
        return output

    def evaluate(self, model: TranscriberModel, examples: list[Utterance], **options) -> dict:
        hypotheses = self.predict(model, examples, **options)
        references = [e.transcript for e in examples]
        words = [r.split() for r in references]
        return {
            "cer": metrics.character_error_rate(references, hypotheses),
            "wer": metrics.word_error_rate(references, hypotheses),
            "exact_match": metrics.exact_match(references, hypotheses),
            "examples": len(examples),
            "words": sum(len(w) for w in words),
        }

    def describe_eval(self, row: dict) -> str:
        from .base import describe_train_loss

        return (
            f"step {row['step']}: {describe_train_loss(row)}, val loss {row['val_loss']:.4f}, "
            f"cer {row['cer']:.4f}, wer {row['wer']:.4f}, grad norm "
            f"{row.get('grad_norm', float('nan')):.3g}, lr {row['lr']:.2e}, {row['elapsed']:.1f} s"
        )


TASK = TranscribeTask
