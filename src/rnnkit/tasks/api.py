"""Task models from Python without the command line: fit / predict / evaluate on lists.

    from rnnkit.tasks import TextClassifier
    clf = TextClassifier(max_steps=300).fit(texts, labels)
    clf.predict(["a new text"])            # -> ["positive"]
    clf.evaluate(texts, labels)            # -> {"accuracy": ..., "macro_f1": ..., ...}

`fit` runs the same trainer as `rnnkit train --task ...` (same defaults, checkpoints, best-by-
validation weights), into `out=DIR` if given or else a temporary directory removed afterwards;
the best weights stay in memory. Keyword options are the run's settings (`hidden_size=...`,
`max_time=...`) and the task's own (`crf=True`); the task's defaults fill in the rest.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from torch import nn

from ..train.checkpoint import LoadedTask, load_task_checkpoint, save_checkpoint
from ..train.config import task_config
from .base import Task


class TaskModel:
    """A trainable, savable task model: `TaskModel("classify", **options)` or a subclass."""

    task_name: ClassVar[str | None] = None

    def __init__(self, task: str | None = None, **options) -> None:
        name = task or self.task_name
        if name is None:
            raise ValueError("TaskModel: name the task, e.g. TaskModel('classify')")
        if task is not None and self.task_name is not None and task != self.task_name:
            raise ValueError(
                f"{type(self).__name__} is a {self.task_name} model; got task={task!r}"
            )
        for reserved in ("task", "out", "data", "val_data"):
            if reserved in options:
                raise ValueError(
                    f"{type(self).__name__}: {reserved!r} is not an option here (fit takes the "
                    "data and out=DIR)"
                )
        task_config(name, **options)  # check the options now, not at fit time
        self.task_name_ = name
        self.options = options
        self.metrics_: dict | None = None  # the training run's metrics after fit
        self._loaded: LoadedTask | None = None

    # ------------------------------------------------------------ training

    def fit(
        self,
        inputs: Sequence,
        targets: Sequence | None = None,
        *,
        validation_data: tuple | None = None,
        out: str | os.PathLike | None = None,
        force: bool = False,
        progress: bool = False,
    ) -> TaskModel:
        """Train on (inputs, targets); keep the best held-out weights. Returns self.

        validation_data=(inputs, targets) replaces the held-out tail (--val-fraction).
        out: keep the run directory there (as `rnnkit train --out`); force replaces a run.
        """
        temporary = out is None
        run_dir = Path(tempfile.mkdtemp(prefix="rnnkit-fit-")) if temporary else Path(out)
        try:
            config = task_config(self.task_name_, **self.options, out=str(run_dir))
            from .base import make_task

            task = make_task(config)
            train = task.examples_from_python(inputs, targets)
            val = None
            if validation_data is not None:
                if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
                    raise ValueError("validation_data must be a pair (inputs, targets)")
                val = task.examples_from_python(*validation_data)
            from ..train.trainer import train as run_training

            self.metrics_ = run_training(
                config,
                force=force,
                progress=progress,
                train_examples=train,
                val_examples=val,
            )
            self._loaded = load_task_checkpoint(run_dir)
        finally:
            if temporary:
                shutil.rmtree(run_dir, ignore_errors=True)
        return self

    # ------------------------------------------------------------ inference

    def _require(self) -> LoadedTask:
        if self._loaded is None:
            raise ValueError(f"{type(self).__name__} is not trained: call fit() or load() first")
        return self._loaded

    @property
    def task(self) -> Task:
        return self._require().task

    @property
    def model(self) -> nn.Module:
        return self._require().model

    def predict(self, inputs: Sequence, **options) -> list:
        """One output per input, in order (labels, tag lists, strings or value lists)."""
        loaded = self._require()
        examples = loaded.task.examples_from_python(inputs, None)
        loaded.model.eval()
        return loaded.task.predict(loaded.model, examples, **options)

    def evaluate(self, inputs: Sequence, targets: Sequence | None = None, **options) -> dict:
        """The task's metrics on (inputs, targets)."""
        loaded = self._require()
        examples = loaded.task.examples_from_python(inputs, targets)
        loaded.model.eval()
        return loaded.task.evaluate(loaded.model, examples, **options)

    # ------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint directory that `TaskModel.load` and `rnnkit predict` read."""
        loaded = self._require()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            path,
            loaded.task,
            loaded.model,
            step=int(loaded.meta.get("step", 0)),
            metrics=loaded.meta.get("metrics"),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> TaskModel:
        """A model from a run directory (`rnnkit train --out`, its best/) or a checkpoint."""
        loaded = load_task_checkpoint(path)
        if cls.task_name is not None and loaded.task.name != cls.task_name:
            raise ValueError(f"{path} holds a {loaded.task.name} model, not {cls.task_name}")
        self = cls.__new__(cls)
        self.task_name_ = loaded.task.name
        self.options = {}
        self.metrics_ = None
        self._loaded = loaded
        return self


class TextClassifier(TaskModel):
    """classify: texts (or (T, F) numeric sequences with tokens="numbers") -> labels."""

    task_name = "classify"


class SequenceTagger(TaskModel):
    """tag: token lists -> tag lists (BIO for entity F1); a CRF output layer and character
    features by default (crf=False, char_features=False turn them off)."""

    task_name = "tag"


class SequenceToSequence(TaskModel):
    """seq2seq: source strings -> target strings (encoder-decoder with attention).

    model = SequenceToSequence(attention="luong").fit(sources, targets)
    model.predict(["March 3, 2021"], beam_size=4)     # -> ["2021-03-03"]
    model.evaluate(sources, targets)                  # exact_match, cer, bleu
    model.attention("March 3, 2021")["weights"]       # (target + 1, source + 1) array
    """

    task_name = "seq2seq"

    def attention(self, source: str, target: str | None = None) -> dict:
        """The attention weights of decoding `source` (into `target`, or its greedy output):
        {"source": tokens, "target": tokens, "weights": (T + 1, S + 1) array}, <eos> included."""
        loaded = self._require()
        return loaded.task.attention(loaded.model, source, target)


class SeriesForecaster(TaskModel):
    """forecast: a series -> its next values.

        f = SeriesForecaster(window=12).fit(series)       # (N,) list, array or tensor
        f.forecast(history, horizon=5)                    # next 5 values (recursive), an array
        f.evaluate(series, holdout=31)                    # one-step RMSE/MAE/MASE, last 31 points

    With exogenous columns (exogenous="A,B"), series are (N, 1 + K), the target first; to
    forecast H steps, history ends with H rows whose target is nan and whose exogenous values
    are those of the forecast times. `predict(history, horizon=H)` is `forecast` as a list.
    """

    task_name = "forecast"

    def fit(self, inputs, targets=None, *, validation_data=None, **kwargs) -> SeriesForecaster:
        """Train on the series `inputs`; validation_data: a separate series whose windows are
        held out (instead of the last --val-fraction / --holdout points)."""
        if isinstance(validation_data, tuple) and len(validation_data) == 2:
            validation_data = validation_data[0]  # the (inputs, targets) form of TaskModel.fit
        if validation_data is not None:
            from .base import make_task

            # Without a split the trainer takes both parts as they are: hand it windows.
            task = make_task(task_config(self.task_name_, **self.options))
            windows = task.windows(task.examples_from_python(validation_data, None))
            validation_data = (windows, None)
            inputs = task.windows(task.examples_from_python(inputs, targets))
        return super().fit(inputs, targets, validation_data=validation_data, **kwargs)

    def forecast(self, history, horizon: int = 1):
        """The next `horizon` values after `history`, as a numpy array."""
        import numpy as np

        return np.array(self.predict(history, horizon=horizon))


class ConditionalGenerator(TaskModel):
    """condlm: text generated from a condition (a category, or a vector of numbers).

    gen = ConditionalGenerator(max_time=60).fit(languages, names)
    gen.generate("Italian", temperature=0.8, seed=1)    # -> "Bertolini"
    gen.evaluate(languages, names)       # perplexity with the condition and with it withheld
    gen.predict(["Italian", "Greek"])    # one sampled text per condition
    """

    task_name = "condlm"

    def generate(self, condition, prefix: str = "", length: int | None = None, **sampling) -> str:
        """A text for `condition` (None: the condition withheld) with every option of
        rnnkit.generate.generate (temperature, top_k, top_p, greedy, beam_size, seed)."""
        loaded = self._require()
        if condition is not None and not isinstance(condition, str):
            condition = " ".join(str(float(v)) for v in condition)
        loaded.model.eval()
        return str(loaded.task.generate_text(loaded.model, condition, prefix, length, **sampling))


class SpeechTranscriber(TaskModel):
    """transcribe: recordings -> transcripts (a bidirectional recurrent encoder with CTC).

    asr = SpeechTranscriber(max_time=300).fit(wav_paths, transcripts)
    asr.predict(["new.wav"], beam_size=8)          # -> ["3 5 1"]
    asr.evaluate(wav_paths, transcripts)           # cer, wer, exact_match

    Recordings are WAV paths or (samples, sample_rate) pairs of 1-D float arrays in [-1, 1].
    """

    task_name = "transcribe"
