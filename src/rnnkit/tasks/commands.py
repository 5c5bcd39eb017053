"""The task side of the command line: `train --task`, `predict`, and `evaluate` on task models.

rnnkit.cli parses the arguments and calls these; they only translate flags into library calls.
Task-specific flags of `predict` / `evaluate` come from the tasks' `predict_flags` /
`evaluate_flags`, so a new task adds its flags without editing the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..train.checkpoint import checkpoint_task, load_task_checkpoint
from .base import available_tasks

PREDICT_DESCRIPTION = """\
Print one result per input on stdout, in input order:
  classify   a text per line in                  -> its label
  tag        tokens one per line, a blank line   -> one line of space-separated tags per
             between sentences                      sentence
  seq2seq    a source per line                   -> the target
  forecast   the series (CSV, as in training)    -> the next --horizon values
  condlm     a condition per line                -> a text sampled for it (--temperature,
                                                    --seed)
  transcribe a WAV path per line (relative to the    -> its transcript (--beam-size)
             list's folder)
Input that still carries the answer column (the training format) is accepted; the answer is
ignored. Tokens never seen in training are read as <unk>.
"""

PREDICT_EPILOG = """\
examples:
  rnnkit predict --checkpoint runs/sentiment --data reviews.txt > labels.txt
  rnnkit predict --checkpoint runs/ner --data test.conll       (tags of each sentence)
"""


def _task_flags(kind: str) -> dict[str, tuple[dict, list[str]]]:
    """flag name -> (argparse kwargs, tasks that take it), over the built tasks."""
    flags: dict[str, tuple[dict, list[str]]] = {}
    for name, cls in available_tasks().items():
        for flag, kwargs in getattr(cls, f"{kind}_flags").items():
            flags.setdefault(flag, (kwargs, []))[1].append(name)
    return flags


def add_task_flags(parser: argparse.ArgumentParser, kind: str) -> None:
    """The tasks' extra `predict` or `evaluate` flags, each marked with the tasks it serves."""
    for flag, (kwargs, tasks) in _task_flags(kind).items():
        kwargs = dict(kwargs)
        kwargs["help"] = f"{kwargs.get('help', '')} ({', '.join(tasks)} only)".strip()
        kwargs["default"] = argparse.SUPPRESS
        parser.add_argument("--" + flag.replace("_", "-"), dest=f"task_{flag}", **kwargs)


def given_task_options(args: argparse.Namespace, kind: str) -> dict:
    return {
        flag: getattr(args, f"task_{flag}")
        for flag in _task_flags(kind)
        if hasattr(args, f"task_{flag}")
    }


def _check_options(task, options: dict, kind: str) -> None:
    allowed = getattr(task, f"{kind}_flags")
    for name in options:
        if name not in allowed:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} does not apply to a {task.name} model; drop it")


def _loaded(args: argparse.Namespace):
    loaded = load_task_checkpoint(args.checkpoint)
    overrides = {"encoding": args.encoding}
    if getattr(args, "batch_size", None) is not None:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1; got {args.batch_size}")
        overrides["batch_size"] = args.batch_size
    loaded.task.config = loaded.task.config.with_overrides(**overrides)
    return loaded


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="DIR",
        help="a task run directory (its best/ checkpoint is used) or a checkpoint directory in it",
    )
    parser.add_argument("--data", required=True, metavar="FILE", help="the inputs to predict")
    parser.add_argument(
        "--encoding", default="utf-8", help="text encoding of --data (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="inputs per forward pass (default: the training batch size)",
    )
    add_task_flags(parser, "predict")


def run_predict(args: argparse.Namespace) -> int:
    if checkpoint_task(args.checkpoint) == "lm":
        raise ValueError(
            f"{args.checkpoint} holds a language model; predict is for task models (use "
            "rnnkit generate, or rnnkit evaluate to score a text)"
        )
    options = given_task_options(args, "predict")
    loaded = _loaded(args)
    _check_options(loaded.task, options, "predict")
    inputs = loaded.task.read_inputs(args.data)
    outputs = loaded.task.predict(loaded.model, inputs, **options)
    out = sys.stdout
    for output in outputs:
        out.write(loaded.task.format_output(output) + "\n")
    out.flush()
    return 0


def run_task_evaluate(args: argparse.Namespace) -> int:
    options = given_task_options(args, "evaluate")
    loaded = _loaded(args)
    _check_options(loaded.task, options, "evaluate")
    examples = loaded.task.read_examples(args.data)
    loaded.model.eval()
    result = {"task": loaded.task.name, **loaded.task.evaluate(loaded.model, examples, **options)}
    print(json.dumps(result, indent=2))
    _warn_if_nothing_known(args, result)
    return 0


# the answers a file holds, and the count of those the model never saw, by the metrics' names
_KNOWN_ANSWERS = {"unknown_labels": ("examples", "label"), "unknown_tags": ("tokens", "tag")}


def _warn_if_nothing_known(args: argparse.Namespace, result: dict) -> None:
    """Scores of a file none of whose answers the model was trained on are scores of the wrong
    file, most likely (another task's, another tag set): say so beside them."""
    for unknown, (total, what) in _KNOWN_ANSWERS.items():
        if result.get(unknown) and result[unknown] == result.get(total):
            print(
                f"rnnkit evaluate: warning: no {what} in {args.data} is one the model was "
                f"trained on; is it the right file for this {result['task']} model?",
                file=sys.stderr,
            )
