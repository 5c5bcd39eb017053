"""Small training files of every task, made on the spot (tests never need the network)."""

from __future__ import annotations

import math
from pathlib import Path


def write_sample(task: str, folder: Path) -> Path:
    """A small training file in the task's format."""
    folder.mkdir(parents=True, exist_ok=True)
    if task == "transcribe":
        from test_transcribe import tone_corpus

        return tone_corpus(folder / "audio", 20)
    words = ["good", "bad", "film", "plot", "the", "a", "dull", "fine"]
    rows = []
    for i in range(80):
        a, b = words[i % 8], words[(i * 3) % 8]
        if task == "lm":
            rows.append(f"the {a} film had a {b} plot")
        elif task == "classify":
            rows.append(f"{'pos' if i % 2 else 'neg'}\t{a} {'fine' if i % 2 else 'dull'} {b}")
        elif task == "tag":  # sentences of 1 to 5 words: without a CRF the mean is per tag
            for word in words[i % 4 : i % 4 + 1 + i % 5]:
                rows.append(f"{word}\t{'B-X' if word in ('film', 'plot') else 'O'}")
            rows.append("")
        elif task == "seq2seq":  # lengths vary: the loss is a mean over target tokens
            source = " ".join(words[i % 5 : i % 5 + 1 + i % 4])
            rows.append(f"{source}\t{' '.join(reversed(source.split()))}")
        elif task == "forecast":
            rows.append(f"{i},{math.sin(i / 3) + 0.1 * (i % 5):.4f}")
        elif task == "condlm":
            rows.append(f"{'ab'[i % 2]}\t{' '.join(words[i % 3 : i % 3 + 1 + i % 5])}")
    text = "\n".join(rows).strip("\n") + "\n"
    if task == "forecast":
        text = "t,value\n" + text
    path = folder / f"{task}.txt"
    path.write_text(text, encoding="utf-8")
    return path
