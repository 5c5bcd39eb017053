"""A trained task model as an ONNX whole-sequence graph: the network from encoded inputs to its
outputs, with dynamic batch and time dimensions, for onnxruntime.

What goes in and out, by task (B batch, T steps; the inputs are what `Task.collate` makes):

  classify    ids (B, T) int64 (or values (B, T, F) float for --tokens numbers), lengths (B,),
              and with the n-gram path ngram_ids (N,), ngram_offsets (B,), ngram_weights (N,)
              -> logits (B, C)
  tag         ids (B, T), lengths (B,), and with character features chars (B, T, C),
              char_lengths (B, T) -> emissions (B, T, K); with a CRF, model.json holds its
              start, end and transition scores for Viterbi decoding
  transcribe  features (B, T, F) float (log-mel, normalized as the run does), lengths (B,)
              -> log_probs (B, T', V), out_lengths (B,); blank is id 0
  forecast    windows (B, W, C) standardized -> next (B,) standardized
  seq2seq     two graphs: the encoder (source (B, S), lengths (B,) -> values, keys, mask, the
              decoder's initial h (and c)) and one decoder step in X.decoder.onnx (ids (B, 1),
              h (c), values, keys, mask -> logits (B, V), h_out (c_out))
  condlm      ids (B, T) int64 (<bos> first), condition (B,) int64 category ids or (B, F)
              float vectors -> logits (B, T, V) from the condition's initial state (a
              sampler feeds the text so far; a step graph with the state is not built yet)

The recurrent encoders run as one torch kernel per layer and direction on the padded batch
(rnnkit.export.padded): torch's exporter gets packed sequences wrong. Beside model.onnx,
model.json holds the task's fitted state (vocabularies, labels, scalers: Task.state_dict), the
input and output names, and the CRF's scores. Preprocessing (tokenizing, the n-gram hashing,
audio features) and decoding stay outside the graph, as in rnnkit's own predict.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from .. import _atomic as atomic
from .padded import exportable_copy
from .traced import exported_onnx, traced_onnx

__all__ = ["EXPORTABLE_TASKS", "FORMAT", "export_task_model"]

FORMAT = "rnnkit.onnx_task"
VERSION = 1
EXPORTABLE_TASKS = ("classify", "tag", "transcribe", "forecast", "condlm", "seq2seq")


def _is_sweep_layer(module: nn.Module) -> bool:
    """An rnnkit layer of a cell torch has no kernel for: it runs as rnnkit::sweep operators
    under export (alone, or inside a PaddedEncoder's sweeps)."""
    from ..layers.recurrent import Recurrent

    return isinstance(module, Recurrent) and not module.traces_as_torch_kernel


def _summary(error: Exception) -> str:
    """The exporter's own reason, in a few words: the first line of its exception summary."""
    text = str(error)
    marker = "## Exception summary"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:200]


class _Graph(nn.Module):
    """The model's call with its inputs as separate tensors, as the exporter wants them."""

    def __init__(self, model: nn.Module, call) -> None:
        super().__init__()
        self.model = model
        self.call = call

    def forward(self, *inputs):
        return self.call(self.model, *inputs)


def _example_tokens(vocab, n: int) -> list[str]:
    """n words (or characters) of a vocabulary, for an example input."""
    words = [t for t in vocab.tokens if not (t.startswith("<") and t.endswith(">"))]
    words = words or list(vocab.tokens)
    return [words[i % len(words)] for i in range(n)]


def _classify(task, model):
    from ..tasks.classify import Example

    if task.numeric:
        width = len(task.mean)
        examples = [Example([[0.5] * width] * n, None) for n in (3, 2)]
    else:
        examples = [Example(_example_tokens(task.vocab, n), None) for n in (3, 2)]
    t = task.collate([task.encode(e) for e in examples]).tensors
    names = ["ids", "lengths"]
    inputs = [t["inputs"], t["lengths"]]
    axes = {"ids": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}}
    if "ngram_ids" in t:
        names += ["ngram_ids", "ngram_offsets", "ngram_weights"]
        inputs += [t["ngram_ids"], t["ngram_offsets"], t["ngram_weights"]]
        axes |= {"ngram_ids": {0: "ngrams"}, "ngram_offsets": {0: "batch"}}
        axes |= {"ngram_weights": {0: "ngrams"}}

        def call(m, ids, lengths, *bag):
            return m(ids, lengths, tuple(bag))
    else:

        def call(m, ids, lengths):
            return m(ids, lengths)

    axes["logits"] = {0: "batch"}
    return call, names, inputs, ["logits"], axes, {"labels": list(task.labels)}


def _tag(task, model):
    from ..tasks.tag import Sentence

    items = [task.encode(Sentence(_example_tokens(task.vocab, n), None)) for n in (3, 2)]
    t = task.collate(items).tensors
    names, inputs = ["ids", "lengths"], [t["ids"], t["lengths"]]
    axes = {"ids": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}}
    if "chars" in t:
        names += ["chars", "char_lengths"]
        inputs += [t["chars"], t["char_lengths"]]
        axes |= {"chars": {0: "batch", 1: "steps", 2: "characters"}}
        axes |= {"char_lengths": {0: "batch", 1: "steps"}}
    if "feature_ids" in t:
        names += ["feature_ids", "feature_offsets"]
        inputs += [t["feature_ids"], t["feature_offsets"]]
        axes |= {"feature_ids": {0: "features"}, "feature_offsets": {0: "positions"}}
    axes["emissions"] = {0: "batch", 1: "steps"}

    def call(m, *given):
        named = dict(zip(names, given, strict=True))
        return m(
            named["ids"],
            named["lengths"],
            named.get("chars"),
            named.get("char_lengths"),
            named.get("feature_ids"),
            named.get("feature_offsets"),
        )

    extra = {"tags": list(task.tags)}
    if model.crf is not None:
        extra["crf"] = {
            "start": model.crf.start.tolist(),
            "end": model.crf.end.tolist(),
            "transitions": model.crf.transitions.tolist(),  # [from, to]
        }
    return call, names, inputs, ["emissions"], axes, extra


def _transcribe(task, model):
    F = model.config.num_features
    features = torch.zeros(2, 7, F)
    lengths = torch.tensor([7, 5])
    axes = {"features": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}}
    axes |= {"log_probs": {0: "batch", 1: "steps"}, "out_lengths": {0: "batch"}}

    def call(m, features, lengths):
        return m(features, lengths)

    names, outputs = ["features", "lengths"], ["log_probs", "out_lengths"]
    return call, names, [features, lengths], outputs, axes, {"blank": 0}


def _condlm(task, model):
    config = model.config
    if config.num_conditions:
        condition = torch.tensor([0, min(1, config.num_conditions - 1)])
    else:
        condition = torch.zeros(2, config.condition_size)
    ids = torch.full((2, 3), task.vocab.bos_id, dtype=torch.long)
    axes = {"ids": {0: "batch", 1: "steps"}, "condition": {0: "batch"}}
    axes["logits"] = {0: "batch", 1: "steps"}

    def call(m, ids, condition):
        return m(ids, condition)[0]

    return call, ["ids", "condition"], [ids, condition], ["logits"], axes, {}


def _forecast(task, model):
    windows = torch.zeros(2, task.window, 1 + model.config.n_exogenous)
    axes = {"windows": {0: "batch", 1: "steps"}, "next": {0: "batch"}}

    def call(m, windows):
        return m(windows)

    return call, ["windows"], [windows], ["next"], axes, {}


def _preprocessing(task) -> dict:
    """How text becomes the graph's inputs, for a reimplementation outside rnnkit (the
    tokenizer, the vocabulary lookup, classify's hashed n-grams); examples/onnx_classify.py
    follows it with the standard library and onnxruntime alone."""
    from ..data.segment import HAN_CHARACTERS, HAN_RUN
    from ..data.vocab import _WORD_PATTERN

    tokens = task.config.tokens
    spec: dict = {"tokens": tokens}
    if tokens == "word":
        spec["word_pattern"] = _WORD_PATTERN.pattern
        spec["word_rule"] = (
            "re.findall(word_pattern, text) after turning \\r\\n and \\r into \\n; case is "
            "kept; a run of Chinese characters is further cut by the segmenter"
        )
        spec["segmenter"] = getattr(task, "segmenter", "none")
        spec["han_run"] = HAN_RUN.pattern
        spec["han_rule"] = (
            "each match of han_run inside a token is cut by the segmenter (jieba: "
            "jieba.Tokenizer().lcut(run, HMM=True); char: its characters; none: kept whole), "
            "what is beside it tokenized again with word_pattern"
        )
    elif tokens == "char":
        spec["char_rule"] = "one token per character"
    vocab = getattr(task, "vocab", None)
    if vocab is not None and tokens != "numbers":
        spec |= {"pad_id": vocab.pad_id, "unk_id": vocab.unk_id}
        spec["lookup"] = "the token's index in task_state's vocab tokens, else unk_id"
    if getattr(task, "ngram_buckets", 0):
        from ..data.ngrams import CHAR_RANGE, WORD_N

        han_runs = bool(getattr(task, "ngram_han_runs", False))
        spec["ngrams"] = {
            "buckets": task.ngram_buckets,
            "words": "the tokens" if tokens == "word" else "''.join(tokens).split()",
            "lowercase": True,
            "word_n": WORD_N,
            "char_range": list(CHAR_RANGE),
            "grams": "w{n}:<n consecutive words joined by a space> for n in 1..word_n, then "
            "c{n}:<n consecutive characters of ' ' + chunk + ' '> for each chunk and n in "
            "char_range",
            "chunks": "the words, each run of consecutive words wholly of Han characters "
            f"(the regular expression [{HAN_CHARACTERS}]+) joined into one "
            "(rnnkit.data.ngrams.character_chunks)"
            if han_runs
            else "the words",
            "han_runs": han_runs,
            "han_run": HAN_RUN.pattern,
            "hash": "zlib.crc32(gram.encode('utf-8')) % buckets",
            "ids": "the distinct hashes, ascending",
            "weights": "each id's count divided by the L2 norm of the counts",
            "offsets": "each text's first position in the concatenated ids",
        }
    if getattr(task, "feature_buckets", 0):
        from ..data.token_features import AFFIX_CONTEXT, AFFIXES, CONTEXT, SHAPE_CHARS

        spec["token_features"] = {
            "buckets": task.feature_buckets,
            "features": "for token i and each j = i-k (k = -context..context): 'k:pad' past "
            "the sentence, else 'k:lower=<word j lower-cased>', 'k:title' / 'k:upper' / "
            "'k:digit' when str.istitle / isupper / isdigit holds, and for |k| <= "
            "affix_context 'k:pre{n}=<first n chars>' and 'k:suf{n}=<last n chars>' for n in "
            "affixes and 'k:shape=<first shape_chars chars: upper X, lower x, digit d, others "
            "kept>'; plus 'bias'",
            "context": CONTEXT,
            "affix_context": AFFIX_CONTEXT,
            "affixes": list(AFFIXES),
            "shape_chars": SHAPE_CHARS,
            "hash": "zlib.crc32(feature.encode('utf-8')) % buckets",
            "ids": "each token's distinct hashes, ascending, tokens in order",
            "offsets": "for every position of the (batch, steps) grid, row by row, its first "
            "index in the concatenated ids (positions past a sentence's end: empty bags)",
        }
    return spec


GRAPHS = {
    "classify": _classify,
    "tag": _tag,
    "transcribe": _transcribe,
    "forecast": _forecast,
    "condlm": _condlm,
}


class _Seq2SeqEncoder(nn.Module):
    """(source (B, S), lengths (B,)) -> (values, keys, mask, *decoder state): the encoder run on
    the padded source, its recurrent nodes then given the lengths in ONNX (`_give_lengths`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, source, lengths):
        m = self.model
        outputs, final = m.encoder(m.source_embedding(source))
        (values, keys, mask), state = m.memory_and_state(outputs, final, lengths)
        return (values, keys, mask, *(state if isinstance(state, tuple) else (state,)))


class _Seq2SeqStep(nn.Module):
    """(previous ids (B, 1), *state, values, keys, mask) -> (logits (B, V), *state)."""

    def __init__(self, model: nn.Module, num_states: int) -> None:
        super().__init__()
        self.model, self.num_states = model, num_states

    def forward(self, ids, *rest):
        state, memory = rest[: self.num_states], tuple(rest[self.num_states :])
        logits, state, _ = self.model.decode(ids, state if len(state) > 1 else state[0], memory)
        return (logits[:, -1], *(state if isinstance(state, tuple) else (state,)))


def _give_lengths(graph_bytes: bytes, lengths: str) -> bytes:
    """The recurrent nodes of a graph exported from a padded batch, given each sequence's
    length (ONNX's sequence_lens): outputs past it are zero and the final states those of its
    own last step, the reverse direction starting there, which is what packing computes."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(graph_bytes)
    graph = model.graph
    if lengths not in {i.name for i in graph.input}:  # the exporter drops an unused input
        graph.input.append(helper.make_tensor_value_info(lengths, TensorProto.INT64, ["batch"]))
    cast = f"{lengths}_int32"
    graph.node.insert(0, helper.make_node("Cast", [lengths], [cast], to=TensorProto.INT32))
    for node in graph.node:
        if node.op_type in ("LSTM", "GRU", "RNN"):
            while len(node.input) < 5:
                node.input.append("")
            node.input[4] = cast
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _export_seq2seq(task, model, out: Path) -> dict:
    """Two graphs: the encoder (out) and one decoder step (out with .decoder.onnx)."""
    if model.config.cell not in ("lstm", "gru", "rnn"):
        raise NotImplementedError(
            f"a seq2seq model of --cell {model.config.cell} cannot be exported yet (lstm, gru "
            "and rnn can)"
        )
    items = [task.encode(_pair(task, n)) for n in (3, 2)]
    t = task.collate(items).tensors
    source, lengths = t["source"], t["lengths"]
    with torch.no_grad():
        memory, state = model.encode(source, lengths)
    states = state if isinstance(state, tuple) else (state,)
    state_names = ["h", "c"][: len(states)]
    encoder = _give_lengths(
        traced_onnx(
            _Seq2SeqEncoder(model),
            [source, lengths],
            ["source", "lengths"],
            ["values", "keys", "mask", *state_names],
            {
                "source": {0: "batch", 1: "steps"},
                "lengths": {0: "batch"},
                "values": {0: "batch", 1: "steps"},
                "keys": {0: "batch", 1: "steps"},
                "mask": {0: "batch", 1: "steps"},
                **{n: {1: "batch"} for n in state_names},
            },
        ),
        "lengths",
    )
    ids = torch.full((2, 1), task.target_vocab.bos_id, dtype=torch.long)
    memory_names = ["values", "keys", "mask"]
    step = traced_onnx(
        _Seq2SeqStep(model, len(states)),
        [ids, *states, *memory],
        ["ids", *state_names, *memory_names],
        ["logits", *(f"{n}_out" for n in state_names)],
        {
            "ids": {0: "batch"},
            **{n: {1: "batch"} for n in state_names},
            **{n: {0: "batch", 1: "steps"} for n in memory_names},
            "logits": {0: "batch"},
            **{f"{n}_out": {1: "batch"} for n in state_names},
        },
    )
    decoder = out.with_suffix(".decoder.onnx")
    atomic.write_bytes(out, encoder)
    atomic.write_bytes(decoder, step)
    from ..models.seq2seq import BOS_ID, EOS_ID, NEVER_GENERATED

    return {
        "inputs": ["source", "lengths"],
        "outputs": ["values", "keys", "mask", *state_names],
        "decoder": decoder.name,
        "decoder_inputs": ["ids", *state_names, *memory_names],
        "decoder_outputs": ["logits", *(f"{n}_out" for n in state_names)],
        "bos": BOS_ID,
        "eos": EOS_ID,
        "never_generate": sorted(NEVER_GENERATED),
        "input_dtypes": {"source": "int64", "lengths": "int64"},
    }


def _pair(task, n: int):
    from ..tasks.seq2seq import Pair

    return Pair(" ".join(_example_tokens(task.source_vocab, n)), "")


def export_task_model(loaded, out: Path) -> dict:
    """Write `out` (model.onnx) and model.json beside it for a loaded task checkpoint
    (rnnkit.train.load_task_checkpoint); returns the description."""
    name = loaded.config.task
    if name == "seq2seq":
        task, model = loaded.task, loaded.model.float().eval()
        description = {"format": FORMAT, "version": VERSION, "task": name, "model": out.name}
        description |= _export_seq2seq(task, model, out)
        description["task_state"] = task.state_dict()
        description["preprocessing"] = _preprocessing(task)
        atomic.write_json(out.with_suffix(".json"), description)
        return description
    if name not in GRAPHS:
        raise NotImplementedError(
            f"a {name} model cannot be exported yet: rnnkit export writes language models and "
            f"{', '.join(EXPORTABLE_TASKS)} models"
        )
    task, model = loaded.task, loaded.model.float().eval()
    graph_model = exportable_copy(model)
    call, names, inputs, outputs, axes, extra = GRAPHS[name](task, graph_model)
    # layers of cells torch has no kernel for go as rnnkit::sweep operators, which only torch's
    # default exporter writes (rnnkit.export.onnx_sweep); the others trace as torch's kernels
    operators = [m for m in graph_model.modules() if _is_sweep_layer(m)]
    try:
        write = exported_onnx if operators else traced_onnx
        graph = write(_Graph(graph_model, call), inputs, names, outputs, axes)
    except Exception as error:  # the exporters raise their own types
        if not operators:
            detail = " ".join(str(error).split())
            raise NotImplementedError(
                f"the {name} model cannot be exported to ONNX yet ({detail})"
            ) from None
        cell = type(operators[0]).__name__
        raise NotImplementedError(
            f"a task model of {cell} layers cannot be exported to ONNX yet: torch.export "
            f"failed on the {name} graph ({_summary(error)}); lstm, gru and rnn encoders export"
        ) from None
    description = {
        "format": FORMAT,
        "version": VERSION,
        "task": name,
        "model": out.name,
        "inputs": names,
        "outputs": outputs,
        "input_dtypes": {
            n: str(t.dtype).removeprefix("torch.") for n, t in zip(names, inputs, strict=True)
        },
        "task_state": task.state_dict(),
        **extra,
    }
    if name in ("classify", "tag", "condlm"):
        description["preprocessing"] = _preprocessing(task)
    atomic.write_bytes(out, graph)
    atomic.write_json(out.with_suffix(".json"), description)
    return description


def run_graph(path: str | Path, tensors: dict[str, Tensor]) -> list:
    """The exported graph's outputs on `tensors` (named as model.json's inputs), by
    onnxruntime: how a user feeds it (used by the tests and the example)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v.numpy() for k, v in tensors.items() if k in wanted})
