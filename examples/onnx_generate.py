"""Sample text from an exported character language model with onnxruntime and numpy alone.

    rnnkit train --out runs/quickstart --max-time 60
    rnnkit export --checkpoint runs/quickstart --out lm.onnx
    python examples/onnx_generate.py lm.onnx --prefix "The with statement" --length 200

Greedy by default (the same text as `rnnkit generate --greedy`); --temperature T samples. The
prefix goes through the graph in one call, then one token per call with the state carried.
Word models need rnnkit's tokenizer to split and join words, so this script takes character
models only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime


def generate(model_path: str, prefix: str, length: int, temperature: float = 0.0, seed: int = 0):
    description = json.loads(Path(model_path).with_suffix(".json").read_text(encoding="utf-8"))
    if description["tokens"] != "char":
        raise SystemExit(f"{model_path}: a {description['tokens']} model; this script samples char")
    vocab = description["vocab"]
    ids = {token: i for i, token in enumerate(vocab)}
    session = onnxruntime.InferenceSession(model_path)
    layers, hidden = description["state_shape"]
    state = {n: np.zeros((layers, 1, hidden), np.float32) for n in description["state"]}
    tokens = [ids.get(ch, ids["<unk>"]) for ch in prefix]
    never = description["never_generate"]
    rng = np.random.default_rng(seed)
    out = []
    feed = np.array([tokens], dtype=np.int64)
    for _ in range(length):
        logits, *new = session.run(None, {"ids": feed, **state})
        state = dict(zip(description["state"], new, strict=True))
        scores = logits[0].astype(np.float64)
        scores[never] = -np.inf
        if temperature > 0:
            p = np.exp((scores - scores.max()) / temperature)
            token = int(rng.choice(len(p), p=p / p.sum()))
        else:
            token = int(np.argmax(scores))
        out.append(vocab[token])
        feed = np.array([[token]], dtype=np.int64)
    return "".join(out)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .onnx file rnnkit export wrote")
    parser.add_argument("--prefix", default="The ", help="text to continue (not empty)")
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.prefix:
        parser.error("--prefix must not be empty: the graph starts from a token")
    text = generate(args.model, args.prefix, args.length, args.temperature, args.seed)
    print(args.prefix + text)
    return text


if __name__ == "__main__":
    main()
