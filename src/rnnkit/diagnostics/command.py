"""`rnnkit diagnose RUN --text TEXT | --data FILE --out DIR`: a trained model's diagnostics.

It feeds the text to the run's model exactly as the model reads it, takes the input its main
recurrent layer receives (a forward pre-hook on that layer), and writes:

    gradient_flow.png   ‖∂L/∂h_t‖ against the distance from the last step, one line per layer
    gates.png           the fraction of saturated units of every gate at every step
    report.json         the numbers behind both, the gate table and the run it came from
    explorer.html       the text coloured by one unit at a time (rnnkit.diagnostics.explorer)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from .. import _atomic
from ..layers.recurrent import Recurrent
from .explorer import selectivity, write_explorer
from .flow import gradient_flow
from .gates import SATURATION, record, stats_of
from .plots import plot_gate_saturation, plot_gradient_flow

__all__ = ["DIAGNOSE_DESCRIPTION", "add_diagnose_arguments", "run_diagnose"]

OUTPUTS = ("gradient_flow.png", "gates.png", "report.json", "explorer.html")
DIAGNOSE_DESCRIPTION = (
    "Diagnose a trained run on a text: gradient flow through time (gradient_flow.png), gate "
    "saturation (gates.png), the numbers (report.json) and a hidden-unit explorer to open in "
    "a browser (explorer.html, self-contained)."
)
DIAGNOSE_EPILOG = (
    "examples:\n"
    "  rnnkit diagnose runs/quickstart --text 'The with statement is used' --out diag\n"
    "  rnnkit diagnose runs/ts --data sonnet.txt --max-tokens 3000 --out diag\n"
    "  rnnkit diagnose runs/sentiment --text 'a gripping, funny film' --out diag"
)


def add_diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run directory (its best/ checkpoint)")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", help="the text to feed the model")
    given.add_argument("--data", metavar="FILE", help="a file holding the text")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the outputs go")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=2000,
        metavar="N",
        help="use the first N tokens of the text (default: %(default)s; the explorer page "
        "holds N x units bytes)",
    )
    parser.add_argument("--encoding", default="utf-8", help="text encoding of --data")
    parser.add_argument(
        "--force", action="store_true", help="replace the outputs of an earlier diagnose in DIR"
    )


def _text(args) -> str:
    if args.text is not None:
        return args.text
    path = Path(args.data)
    if not path.is_file():
        raise ValueError(f"--data {args.data}: no such file")
    return path.read_text(encoding=args.encoding)


def _main_layer(model) -> Recurrent:
    """The model's main recurrent layer: the first rnnkit layer of the model's encoder (or of
    the model), which is the one reading the tokens (not a tagger's character encoder)."""
    owner = getattr(model, "encoder", None) or getattr(model, "layers", None) or model
    layers = [m for m in owner.modules() if isinstance(m, Recurrent)]
    if not layers:
        raise ValueError("the run's model has no rnnkit recurrent layer to diagnose")
    return layers[0]


def _captured_input(layer: Recurrent, run_model) -> tuple[torch.Tensor, object]:
    """What `layer` is called with while run_model() runs: (input, hx)."""
    seen = []

    def hook(module, args, kwargs):
        if not seen:
            seen.append((args[0], args[1] if len(args) > 1 else kwargs.get("hx")))

    handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            run_model()
    finally:
        handle.remove()
    if not seen:
        raise ValueError("the model never called its recurrent layer on this text")
    return seen[0]


def _language_model_input(loaded, text: str, max_tokens: int):
    task, model = loaded.task, loaded.model
    tokens = task.tokens_of(text)[:max_tokens]
    ids = task.vocab.encode(tokens)
    if not ids or all(i == task.vocab.unk_id for i in ids):
        raise ValueError(
            f"the text has no token the model knows (its vocabulary holds {len(task.vocab)} "
            f"{task.config.tokens}s of its training text); give a text like it"
        )
    layer = _main_layer(model)
    batch = torch.tensor([ids])
    layer_input, hx = _captured_input(layer, lambda: model(batch))
    return layer, layer_input, hx, tokens


def _task_input(loaded, text: str, max_tokens: int):
    task, model = loaded.task, loaded.model
    with tempfile.TemporaryDirectory(prefix="rnnkit-diagnose-") as folder:
        path = Path(folder) / "input.txt"
        path.write_text(text.splitlines()[0] if text.strip() else text, encoding="utf-8")
        inputs = task.read_inputs(path)
    if not inputs:
        raise ValueError("the text holds no input for the model; give one line it can read")
    example = inputs[0]
    layer = _main_layer(model)
    layer_input, hx = _captured_input(layer, lambda: task.predict(model, [example]))
    if isinstance(layer_input, torch.nn.utils.rnn.PackedSequence):
        layer_input, _ = torch.nn.utils.rnn.pad_packed_sequence(
            layer_input, batch_first=layer.batch_first
        )
    steps = layer_input.shape[1] if layer.batch_first else layer_input.shape[0]
    tokens = getattr(example, "tokens", None) or getattr(example, "source", None)
    if isinstance(tokens, str):
        tokens = list(tokens)
    if not tokens or len(tokens) != steps or not all(isinstance(t, str) for t in tokens):
        tokens = [f"[{t}]" for t in range(steps)]  # steps the explorer can only number
    else:
        tokens = [t + " " for t in tokens]
    keep = min(steps, max_tokens)
    layer_input = layer_input[:, :keep] if layer.batch_first else layer_input[:keep]
    return layer, layer_input, hx, tokens[:keep]


def _check_out(out: Path, force: bool) -> None:
    existing = [name for name in OUTPUTS if (out / name).exists()]
    if existing and not force:
        raise ValueError(
            f"--out {out} already holds {', '.join(existing)}; pass --force to replace them"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)


def run_diagnose(args: argparse.Namespace) -> int:
    from ..train.checkpoint import load_task_checkpoint

    if args.max_tokens < 2:
        raise ValueError(f"--max-tokens must be >= 2; got {args.max_tokens}")
    text = _text(args)
    if not text:
        raise ValueError("the text is empty; give --text TEXT or --data FILE with some text")
    loaded = load_task_checkpoint(args.run)
    if loaded.task.name == "lm":
        layer, layer_input, hx, tokens = _language_model_input(loaded, text, args.max_tokens)
    else:
        layer, layer_input, hx, tokens = _task_input(loaded, text, args.max_tokens)
    out = Path(args.out)
    _check_out(out, args.force)  # after every check of the inputs: a refused call writes nothing
    report = diagnose_layer(layer, layer_input, hx, tokens, out, title=str(args.run))
    report["run"] = {"directory": str(loaded.directory), "task": loaded.task.name}
    _atomic.write_json(out / "report.json", report)
    for name in OUTPUTS:
        print(out / name)
    return 0


def diagnose_layer(layer: Recurrent, layer_input, hx, tokens: list[str], out: Path, *, title):
    """Write the plots and the explorer for `layer` on one sequence; returns the report."""
    D = 2 if layer.bidirectional else 1
    flow = gradient_flow(layer, layer_input, hx=hx)
    recording = record(layer, layer_input, hx=hx)
    stats = stats_of(recording)
    names = [recording.sweep_name(k) for k in range(layer.num_layers * D)]
    plot_gradient_flow(
        out / "gradient_flow.png",
        dict(zip(names, flow, strict=True)),
        title=f"gradient flow: {type(layer).__name__}, {len(tokens)} steps",
        reverse={name: k % D == 1 for k, name in enumerate(names)},
    )
    top = (layer.num_layers - 1) * D  # the top layer's forward sweep: what the head reads
    plot_gate_saturation(
        out / "gates.png",
        {f"{names[top]}: {gate}": v for gate, v in stats.over_time[top].items()},
        title=f"gate saturation: {type(layer).__name__}, {names[top]}",
    )
    activations = recording.hidden[top][:, 0]  # (T, R) of the one sequence
    write_explorer(
        out / "explorer.html",
        tokens,
        activations,
        title=title,
        layer=f"{type(layer).__name__} {names[top]}",
    )
    ranked = torch.argsort(selectivity(activations), descending=True)[:10]
    return {
        "layer": repr(layer),
        "steps": len(tokens),
        "engine": layer.explain(),
        "gradient_flow": {
            "what": "‖dL/dh_t‖ per step (time order) for L = the last step's output against "
            "fixed random unit vectors",
            **{name: [float(v) for v in row] for name, row in zip(names, flow, strict=True)},
        },
        "gates": {"saturation_rules": SATURATION, "table": stats.rows()},
        "most_selective_units": [int(u) for u in ranked],
    }
