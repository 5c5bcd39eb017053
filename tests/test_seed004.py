"""examples/seed004_time_machine.py: d2l 8.6's character RNN on The Time Machine.

A few epochs of the real recipe (one-hot RNN(31, 256), 32 × 35 sequential batches, SGD lr 1,
clipping at norm 1) must already take the perplexity from about the vocabulary size to well
below it, and greedy prediction must continue the prefix by 50 characters.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "seed004_time_machine.py"


def load_example():
    """Import the script as a module (examples/ is not a package)."""
    name = "_example_seed004_time_machine"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[name]


seed004 = load_example()
needs_book = pytest.mark.skipif(
    not seed004.DEFAULT_DATA.is_file(), reason=f"{seed004.DEFAULT_DATA} is not there"
)


def test_strip_gutenberg_keeps_the_text_between_the_markers():
    text = "header\n*** START OF THE BOOK ***\nThe Time\nMachine\n*** END OF THE BOOK ***\nlicence"
    assert seed004.strip_gutenberg(text).strip() == "The Time\nMachine"
    assert seed004.strip_gutenberg("no markers\nhere") == "no markers\nhere"


def test_d2l_preprocessing(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(
        "Gutenberg header\n*** START OF X ***\nThe Time-Traveller (for so...)\n\n"
        "  it's 1895!\n*** END OF X ***\nfooter\n",
        encoding="utf-8",
    )
    assert seed004.read_time_machine(book) == ["", "the time traveller for so", "", "it s"]
    ids, vocab = seed004.load_corpus(book, max_tokens=10)
    # d2l joins the lines without a separator and cuts the corpus, not the vocabulary
    assert "".join(vocab.decode(ids.tolist())) == "the time t"
    assert set(vocab.tokens[4:]) == set("the timravlfos")


@needs_book
def test_the_book_gives_d2ls_vocabulary_and_corpus():
    ids, vocab = seed004.load_corpus(seed004.DEFAULT_DATA)
    assert ids.shape == (10_000,)
    # d2l's 28 tokens (<unk>, space, 26 letters) plus rnnkit's <pad>, <bos>, <eos>
    assert len(vocab) == 31
    assert set(vocab.tokens[4:]) == set(" abcdefghijklmnopqrstuvwxyz")
    assert vocab.tokens[4] == " "  # the most frequent character, as in d2l
    text = "".join(vocab.decode(ids.tolist()))
    assert text.startswith("the time machinean invention")  # lines joined as d2l joins them
    assert "gutenberg" not in text


@needs_book
def test_a_few_epochs_cut_perplexity_well_below_the_vocabulary_size():
    config = seed004.Seed004Config(epochs=8, log_every=4)
    lines = []
    before = torch.get_rng_state()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small RNN: one thread is as fast and immune to a busy machine
    try:
        result = seed004.run(config, log=lines.append, max_seconds=30)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.get_rng_state(), before)  # the script's seeding is undone
    ppl = result.perplexities
    assert ppl[0] > 15  # starts near the vocabulary size (31; uniform guessing)
    assert ppl[-1] < 15 and ppl[-1] < 0.6 * ppl[0]
    assert all(math.isfinite(p) for p in ppl)
    for prefix, text in result.predictions.items():
        assert text.startswith(prefix)
        assert len(text) == len(prefix) + 50
        assert set(text) <= set(" abcdefghijklmnopqrstuvwxyz")
    assert any("perplexity" in line for line in lines)


@needs_book
def test_script_runs_quick():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-3].startswith("perplexity ")
    assert float(lines[-3].split()[1]) < 15
    assert lines[-2].startswith("time traveller") and len(lines[-2]) == len("time traveller") + 50
    assert lines[-1].startswith("traveller") and len(lines[-1]) == len("traveller") + 50


def test_script_reports_a_missing_file_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--data", str(tmp_path / "nope.txt")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "nope.txt" in result.stderr
