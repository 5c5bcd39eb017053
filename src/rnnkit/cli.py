"""The `rnnkit` command line. It parses arguments and calls library functions, nothing more.

Errors are one line on stderr with exit code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import textwrap
from pathlib import Path

from . import __version__

# The errors a user's input can cause; anything else is a bug and says so.
USER_ERRORS = (ValueError, TypeError, OSError, NotImplementedError, FloatingPointError)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `rnnkit train: error: ... (see rnnkit train --help)`."""

    def error(self, message: str):
        self.exit(
            2,
            f"{self.prog}: error: {message}{self._suggestion(message)} (see {self.prog} --help)\n",
        )

    def _suggestion(self, message: str) -> str:
        """' (did you mean --hidden-size?)' for an unknown flag close to a known one."""
        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return ""
        from ._checks import suggest

        known = [s for action in self._all_actions() for s in action.option_strings]
        for word in message[len(prefix) :].split():
            if word.startswith("--"):
                hint = suggest(word.split("=")[0], known)
                if hint:
                    return hint
        return ""

    def _all_actions(self):
        actions = list(self._actions)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for parser in action.choices.values():
                    actions += parser._actions
        return actions


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Raw description and epilog; option help wrapped without breaking flags at hyphens."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


# ---------------------------------------------------------------- train


TRAIN_DESCRIPTION = """\
Train a model and write the run to --out. --task lm (the default) trains a language model on a
text file (or the built-in corpus); --task classify, tag, seq2seq, forecast, condlm or
transcribe trains a task model (formats, defaults and metrics: docs/tasks.md). One trainer runs
them all. The run directory holds:
  config.json, task.json    the run's settings, and what the task learned from the training
                            data (vocabularies, label sets, scalers); vocab.json for lm
  latest/, best/            checkpoints (latest for --resume, saved on Ctrl-C too; best by the
                            task's held-out figure)
  log.jsonl                 a line every --log-every steps: step, train_loss (mean of the last
                            50 steps), grad_norm and grad_norm_max (before clipping),
                            clipped_fraction, skipped_steps, lr, tokens_per_s; and a line per
                            evaluation with val_loss and the task's figures too
  metrics.json              final figures: val_loss, train_loss, bpc, perplexity,
                            tokens_per_s, steps, wall_time, train_time
  loss_curve.png            training and held-out loss against the step
  grad_norm.png             the gradient norm before clipping against the step
The language model holds out the last --val-fraction of the text; its loss is the mean
cross-entropy in nats per token over all of it. Training stops at --max-time seconds of
training (evaluation and checkpointing not counted) or at --max-steps, whichever comes first.
A step whose loss or gradient is not finite is skipped; five in a row stop the run, keeping the
last checkpoint.

Task models hold out the last --val-fraction of the examples (or --val-data FILE), keep best/ by
the task's held-out figure (accuracy, entity F1, ...), and take defaults of their own for the
settings not given (docs/tasks.md lists them; `rnnkit train --task X --help` shows X's).
Settings of other tasks are rejected.

Several processes or machines: torchrun --standalone --nproc_per_node N -m rnnkit train ...
trains data-parallel (gloo); --batch-size is the global batch, split evenly across the
processes; rank 0 alone writes --out; --resume works under torchrun (docs/distributed.md).
"""

TRAIN_EPILOG = """\
examples:
  rnnkit train --out runs/pydoc --max-time 60
  rnnkit train --data input.txt --out runs/ts --max-time 100
  rnnkit train --out runs/ts --resume            continue a stopped run exactly
  rnnkit generate --checkpoint runs/ts --prefix "ROMEO:"
  rnnkit train --task classify --data reviews.tsv --out runs/sentiment
  rnnkit train --task tag --data train.conll --out runs/ner --max-time 180
  rnnkit predict --checkpoint runs/ner --data sentences.txt
  rnnkit train --task condlm --data names.tsv --out runs/names
  rnnkit generate --checkpoint runs/names --condition Italian
  rnnkit train --task transcribe --data speech.tsv --out runs/digits --max-time 300
  rnnkit predict --checkpoint runs/digits --data recordings.txt
"""


def _help_text(option) -> str:
    text = option.help
    if option.default is not None and option.kind is not bool:
        text += f" (default: {option.default})"
    elif option.kind is bool and option.default:
        text += f" (on by default; --no-{option.flag[2:]} turns it off)"
    return text.replace("%", "%%")


def _add_option(group, option, tasks: list[str] | None = None) -> None:
    """One setting (rnnkit._checks.Option) as a flag; only the flags given reach the namespace."""
    kwargs = {"dest": option.name, "default": argparse.SUPPRESS, "help": _help_text(option)}
    if option.name == "out":
        kwargs["required"] = True
    if option.kind is bool:
        # a setting that is on by default needs a flag that turns it off
        kwargs["action"] = argparse.BooleanOptionalAction if option.default else "store_true"
    else:
        kwargs["type"] = option.kind
        kwargs["metavar"] = option.metavar or ("NAME" if option.choices else None)
        if option.choices:
            kwargs["choices"] = option.choices
            kwargs["metavar"] = "{" + ",".join(option.choices) + "}"
    group.add_argument(option.flag, **kwargs)


def task_settings() -> dict[str, tuple[object, list[str]]]:
    """name -> (Option, tasks that declare it), over the built tasks, in task order."""
    from .tasks.base import available_tasks

    found: dict[str, tuple[object, list[str]]] = {}
    for task, cls in available_tasks().items():
        for option in cls.own_options:
            found.setdefault(option.name, (option, []))[1].append(task)
    return found


def add_train_arguments(parser: argparse.ArgumentParser, task: str | None = None) -> None:
    """The run-wide settings by topic, then each task's own under its name. With `task` (the
    --task of the command line being helped), the run-wide defaults shown are that task's."""
    from .train.config import OPTION_GROUPS, run_options

    defaults = _task_defaults(task)
    groups = {
        key: parser.add_argument_group(f"run: {title}") for key, title in OPTION_GROUPS.items()
    }
    for option, group in run_options():
        if option.name in defaults:
            option = dataclasses.replace(option, default=defaults[option.name])
        _add_option(groups[group], option)
    by_tasks: dict[tuple[str, ...], list] = {}
    for option, tasks in task_settings().values():
        by_tasks.setdefault(tuple(tasks), []).append(option)
    for tasks, options in by_tasks.items():
        title = "--task " + ", ".join(tasks) + (" (their own settings)" if len(tasks) > 1 else "")
        group = parser.add_argument_group(title)
        for option in options:
            _add_option(group, option)
    session = parser.add_argument_group("this session")
    session.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest/ checkpoint (an error when it has none)",
    )
    session.add_argument(
        "--force",
        action="store_true",
        help="replace the run in --out (deleted only once the new settings and data check out)",
    )
    session.add_argument(
        "--quiet", action="store_true", help="no progress bar and no evaluation lines on stderr"
    )


def _task_defaults(task: str | None) -> dict:
    """`task`'s own defaults of run-wide settings ({} for lm, None or a task not built)."""
    from .tasks.base import available_tasks

    cls = available_tasks().get(task) if task else None
    return dict(cls.defaults) if cls is not None else {}


def task_being_helped(argv: list[str]) -> str | None:
    """The value of `--task` on a `train` command line (for its --help's defaults)."""
    if "train" not in argv:
        return None
    for i, arg in enumerate(argv):
        if arg == "--task" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--task="):
            return arg.split("=", 1)[1]
    return None


def train_flag_names() -> list[str]:
    from .train.config import run_options

    names = [option.name for option, _ in run_options()] + list(task_settings())
    return names


def run_train(args: argparse.Namespace) -> int:
    from .train import config_for_resume, task_config, train

    given = {name: getattr(args, name) for name in train_flag_names() if hasattr(args, name)}
    resuming = args.resume and not args.force  # (both: train() says they exclude each other)
    if resuming:
        config = config_for_resume(args.out, given)
    else:
        config = task_config(given.pop("task", "lm"), **given)
    metrics = train(config, resume=args.resume, force=args.force, progress=not args.quiet)
    if _rank() == 0:  # under torchrun every rank returns rank 0's figures: print them once
        print(json.dumps(metrics, indent=2))
    return 0


def _rank() -> int:
    """This process's rank under torchrun (0 alone, or when RANK is not a number)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


# ---------------------------------------------------------------- evaluate


def _add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="DIR",
        help="a run directory (its best/ checkpoint is used) or a checkpoint directory in it",
    )


EVALUATE_DESCRIPTION = """\
Print JSON with the model's figures on --data.
  language model   loss (mean cross-entropy, nats per token) over the whole file, bpc (bits
                   per character), perplexity, tokens (predictions scored), characters
  classify         accuracy, macro_f1
  tag              token_accuracy, entity_f1 with entity_precision and entity_recall
                   (seqeval's BIO entities)
  seq2seq          exact_match, cer, bleu
  forecast         rmse, mae, mase of one-step forecasts
  condlm           loss and perplexity with the condition and with it withheld, what the
                   condition gains (nats per token), and the same per condition
  transcribe       cer, wer (--beam-size K for the prefix beam search), exact_match
Task models read --data in their training format; labels never seen in training count as
wrong predictions.
"""


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_checkpoint_argument(parser)
    parser.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="text file to score (task models: a file in the training format)",
    )
    parser.add_argument(
        "--encoding", default="utf-8", help="text encoding of --data (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        metavar="N",
        help="chunks of the text scored side by side; task models: examples per forward "
        "pass (default: %(default)s)",
    )
    parser.add_argument(
        "--seq-len",
        type=int,
        default=256,
        metavar="N",
        help="time steps per forward call; the state carries over; language models only "
        "(default: %(default)s)",
    )
    from .tasks.commands import add_task_flags

    add_task_flags(parser, "evaluate")


def run_evaluate(args: argparse.Namespace) -> int:
    from .data import read_text
    from .tasks.commands import given_task_options, run_task_evaluate
    from .train import evaluate_text
    from .train.checkpoint import checkpoint_task

    if checkpoint_task(args.checkpoint) != "lm":
        return run_task_evaluate(args)
    for name in given_task_options(args, "evaluate"):
        raise ValueError(f"--{name.replace('_', '-')} does not apply to a language model")
    for name in ("batch_size", "seq_len"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be >= 1; got {getattr(args, name)}")
    from .train import load_task_checkpoint

    loaded = load_task_checkpoint(args.checkpoint)
    model, vocab, tokenizer = loaded.model, loaded.task.vocab, loaded.task.tokenizer
    text = read_text(args.data, args.encoding)
    result = evaluate_text(
        model,
        vocab,
        tokenizer,
        text,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        framed=loaded.task.boundaries == "line",
    )
    print(json.dumps(result, indent=2))
    return 0


# ---------------------------------------------------------------- generate


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_checkpoint_argument(parser)
    parser.add_argument(
        "--prefix", default="", metavar="TEXT", help="text that primes the model (default: none)"
    )
    parser.add_argument(
        "--length",
        type=int,
        default=200,
        metavar="N",
        help="tokens to generate; word and condlm models may stop early at <eos> (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        metavar="T",
        help="sample from softmax(logits / T): below 1 safer, above 1 wilder (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--top-k", type=int, metavar="K", help="sample only from the K most likely tokens"
    )
    parser.add_argument(
        "--top-p",
        type=float,
        metavar="P",
        help="sample only from the most likely tokens whose probabilities sum to P",
    )
    parser.add_argument(
        "--beam-size", type=int, metavar="B", help="beam search with B beams instead of sampling"
    )
    parser.add_argument("--greedy", action="store_true", help="take the most likely token")
    parser.add_argument(
        "--seed", type=int, metavar="N", help="seed for sampling: the same seed, the same text"
    )
    parser.add_argument(
        "--condition",
        metavar="VALUE",
        help="condlm models: the category (or the numbers of a vector condition) to generate "
        "for, as written in the training data",
    )
    parser.add_argument(
        "--decoder",
        choices=("auto", "fused", "eager"),
        default="auto",
        help="fused: the whole sampling loop in the cell's compiled library; eager: one model "
        "call per token; "
        "auto: fused when it serves the model (default: %(default)s; --debug says which ran)",
    )


GENERATE_FLAGS = ("length", "temperature", "top_k", "top_p", "beam_size", "greedy", "decoder")


def in_cli_words(message: str, names: tuple[str, ...]) -> str:
    """A library error in the command line's words: "generate: top_k must be" -> "--top-k must
    be", "greedy=True" -> "--greedy", "decoder='fused'" -> "--decoder fused"."""
    import re

    message = re.sub(r"^\w+: ", "", message)
    for name in names:
        flag = "--" + name.replace("_", "-")
        message = re.sub(rf"\b{name}=True\b", flag, message)
        message = re.sub(rf"\b{name}='(\w+)'", rf"{flag} \1", message)
        message = re.sub(rf"(?<![-\w]){name}\b", flag, message)
    return message


def run_generate(args: argparse.Namespace) -> int:
    from .generate import generate
    from .train.checkpoint import checkpoint_task, load_checkpoint

    task = checkpoint_task(args.checkpoint)
    if task == "condlm":
        return _generate_conditioned(args)
    if args.condition is not None:
        raise ValueError(
            f"--condition applies to condlm models; {args.checkpoint} holds a {task} model"
        )
    if task != "lm":
        raise ValueError(
            f"{args.checkpoint} holds a {task} model; generate is for language models (use "
            f"rnnkit predict --checkpoint {args.checkpoint} --data FILE)"
        )
    if args.temperature <= 0:
        raise ValueError(
            f"--temperature must be > 0; got {args.temperature} (for the most likely token at "
            "every step pass --greedy)"
        )
    model, vocab, tokenizer, _ = load_checkpoint(args.checkpoint)
    return _print_generated(
        args,
        lambda: generate(
            model, vocab, tokenizer, args.prefix, args.length, **_sampling_options(args)
        ),
    )


def _print_generated(args: argparse.Namespace, sample) -> int:
    """Run `sample()`, errors in the CLI's words; print the prefix and the text (--debug: why
    it stopped)."""
    try:
        text = sample()
    except ValueError as error:
        raise ValueError(in_cli_words(str(error), GENERATE_FLAGS)) from None
    if getattr(args, "debug", False):
        print(f"rnnkit generate: {text.reason}", file=sys.stderr)
    print(args.prefix + text)
    return 0


def _sampling_options(args: argparse.Namespace) -> dict:
    return {
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "greedy": args.greedy,
        "beam_size": args.beam_size,
        "seed": args.seed,
        "decoder": args.decoder,
    }


def _generate_conditioned(args: argparse.Namespace) -> int:
    from .train.checkpoint import load_task_checkpoint

    loaded = load_task_checkpoint(args.checkpoint)
    task = loaded.task
    if args.condition is None:
        known = ""
        if task.condition_type == "category":
            known = f"; the model knows {', '.join(task.conditions[:10])}"
            known += ", ..." if len(task.conditions) > 10 else ""
        raise ValueError(f"{args.checkpoint} holds a condlm model: pass --condition VALUE{known}")
    if args.temperature <= 0:
        raise ValueError(f"--temperature must be > 0; got {args.temperature} (or pass --greedy)")
    return _print_generated(
        args,
        lambda: task.generate_text(
            loaded.model, args.condition, args.prefix, args.length, **_sampling_options(args)
        ),
    )


# ---------------------------------------------------------------- the parser


def _add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error",
    )


def build_parser(task: str | None = None) -> argparse.ArgumentParser:
    """The command line; `task`: the --task whose defaults `rnnkit train --help` shows."""
    parser = _Parser(
        prog="rnnkit",
        description="Recurrent networks for PyTorch: layers with explicit, checked BPTT.",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train a model: a language model on a text file, or a task model",
        description=TRAIN_DESCRIPTION,
        epilog=TRAIN_EPILOG,
        formatter_class=_HelpFormatter,
    )
    add_train_arguments(train, task)
    _add_debug(train)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a file with a trained model (language model or task model)",
        description=EVALUATE_DESCRIPTION,
        epilog="examples:\n  rnnkit evaluate --checkpoint runs/ts --data test.txt\n  "
        "rnnkit evaluate --checkpoint runs/sentiment --data test.tsv",
        formatter_class=_HelpFormatter,
    )
    add_evaluate_arguments(evaluate)
    _add_debug(evaluate)

    generate = commands.add_parser(
        "generate",
        help="generate text with a trained language model",
        description="Print the prefix and its continuation on stdout. Sampling by default "
        "(--temperature, --top-k, --top-p, --seed); --greedy or --beam-size for deterministic "
        "text.",
    )
    add_generate_arguments(generate)
    _add_debug(generate)

    from .tasks.commands import PREDICT_DESCRIPTION, PREDICT_EPILOG, add_predict_arguments

    predict = commands.add_parser(
        "predict",
        help="predict with a trained task model (classify, tag, seq2seq, forecast, condlm, "
        "transcribe)",
        description=PREDICT_DESCRIPTION,
        epilog=PREDICT_EPILOG,
        formatter_class=_HelpFormatter,
    )
    add_predict_arguments(predict)
    _add_debug(predict)

    from .bench import add_bench_arguments

    bench = commands.add_parser(
        "bench",
        help="benchmark rnnkit's backends against torch.nn and a naive cell loop",
        description="Time training steps (forward + backward) of rnnkit's backends against "
        "torch.nn's native kernel and a naive nn.*Cell loop, measured in the same run.",
    )
    add_bench_arguments(bench)

    from .diagnostics.command import (
        DIAGNOSE_DESCRIPTION,
        DIAGNOSE_EPILOG,
        add_diagnose_arguments,
    )

    diagnose = commands.add_parser(
        "diagnose",
        help="gradient flow, gate saturation and a hidden-unit explorer of a trained run",
        description=DIAGNOSE_DESCRIPTION,
        epilog=DIAGNOSE_EPILOG,
        formatter_class=_HelpFormatter,
    )
    add_diagnose_arguments(diagnose)
    _add_debug(diagnose)

    from .diagnostics.experiment import EXPERIMENT_DESCRIPTION, add_experiment_arguments

    experiment = commands.add_parser(
        "experiment",
        help="seed 001's long-range experiments (adding problem, copy task) across cells",
        description=EXPERIMENT_DESCRIPTION,
        formatter_class=_HelpFormatter,
    )
    add_experiment_arguments(experiment)
    _add_debug(experiment)

    export = commands.add_parser(
        "export",
        help="write a trained model as an ONNX graph (for onnxruntime)",
        description=(
            "Write the model of a run as model.onnx with dynamic batch and time. A language "
            "model is a step graph: (ids (B, T), state) in, (the last step's logits (B, V), "
            "state) out, for streaming generation outside Python; model.json beside it holds "
            "the vocabulary and what a sampler needs (examples/onnx_generate.py samples with "
            "onnxruntime alone). A classify, tag, transcribe, forecast or condlm model is a "
            "whole-sequence graph from its encoded inputs to its outputs (logits, emissions, "
            "log-probabilities, the next value, next-token logits); a seq2seq model is an "
            "encoder graph and a decoder step graph (model.decoder.onnx); model.json holds the "
            "task's vocabularies, labels and scalers and, for a CRF tagger, its scores "
            "(docs/tasks.md, Export). "
            "Models of every registered cell export (cells torch has no kernel for as an ONNX "
            "Scan of rnnkit's step), but seq2seq models of lstm, gru and rnn cells only."
        ),
        epilog=(
            "examples:\n  rnnkit export --checkpoint runs/ts --out ts.onnx\n"
            "  rnnkit export --checkpoint runs/ner --out ner.onnx"
        ),
        formatter_class=_HelpFormatter,
    )
    _add_checkpoint_argument(export)
    export.add_argument(
        "--out", required=True, metavar="FILE.onnx", help="the ONNX file to write (and .json)"
    )
    _add_debug(export)
    return parser


def run_export(args: argparse.Namespace) -> int:
    from .export import export_model

    description = export_model(args.checkpoint, args.out)
    if "vocab" in description:  # a language model's step graph
        print(f"{args.out} ({len(description['vocab'])} tokens, state {description['state']})")
    else:
        inputs, outputs = ", ".join(description["inputs"]), ", ".join(description["outputs"])
        print(f"{args.out} ({description['task']}: {inputs} -> {outputs})")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from .tasks.commands import run_predict as run_task_predict

    return run_task_predict(args)


def run_diagnose(args: argparse.Namespace) -> int:
    from .diagnostics.command import run_diagnose as diagnose

    return diagnose(args)


def run_experiment(args: argparse.Namespace) -> int:
    from .diagnostics.experiment import run_experiment as experiment

    return experiment(args)


COMMANDS = {
    "train": run_train,
    "evaluate": run_evaluate,
    "generate": run_generate,
    "predict": run_predict,
    "diagnose": run_diagnose,
    "experiment": run_experiment,
    "export": run_export,
}


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(task_being_helped(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    prog = f"rnnkit {args.command}"
    if _rank() > 0:  # which of torchrun's processes says it
        prog += f" (rank {_rank()})"
    try:
        if args.command == "bench":
            from .bench import run_bench

            return run_bench(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt as error:
        if args.debug:
            raise
        from .train.interrupt import Interrupted

        if isinstance(error, Interrupted):
            if _rank() > 0:
                return 130  # every rank stopped at that step: rank 0 says so
            hint = f" at step {error.step}; latest/ is saved: continue with --resume"
        elif args.command == "train":
            saved = Path(args.out, "latest").is_dir() if getattr(args, "out", None) else False
            hint = (
                "; continue with --resume from the last save"
                if saved
                else "; nothing was saved yet: start it again"
            )
        else:
            hint = ""
        print(f"{prog}: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout stopped (`| head`): nothing is wrong, and nothing more to say;
        # stdout goes to /dev/null so that Python's flush at exit does not fail again
        with contextlib.suppress(OSError, ValueError, AttributeError):  # no descriptor
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a process killed by the signal reports it
    except USER_ERRORS as error:
        if args.debug:
            raise
        if _rank() == 0 or not getattr(error, "every_rank", False):  # said once, by rank 0
            print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        if args.debug:
            raise
        print(
            f"{prog}: internal error: {type(error).__name__}: {_one_line(error)} (rerun with "
            "--debug for the traceback and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
