"""rnnkit.data: reading text, tokenizers, Vocab, one-hot and word vectors, LM batching, padding.

The batching tests run LMBatchStream over `torch.arange(N)`: there a token's id is its position
in the text, so every batch shows exactly which stretch of the corpus it holds.
"""

from __future__ import annotations

import itertools
import json
import re
import string

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pad_packed_sequence

from rnnkit.data import (
    SPECIALS,
    CharTokenizer,
    LMBatchStream,
    OneHot,
    Vocab,
    WordTokenizer,
    builtin_corpus,
    detach_state,
    load_word_vectors,
    make_tokenizer,
    pack,
    pad_sequences,
    read_text,
    split_train_val,
    write_text_atomic,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text in WordTokenizer's normal form: detokenize(tokenize(NORMAL_TEXT)) must give it back.
NORMAL_TEXT = (
    "First Citizen:\n"
    "Before we proceed any further, hear me speak.\n"
    "\n"
    'All: "Speak, speak!" (they cry) no; well-known 3.14 and/or 1,000... wait?\n'
    "'Tis o' the city; kings' crowns, don't you think?\n"
)
PROSE = "the time machine, by h. g. wells.\nthe time traveller (for so it will be convenient) "


def positions_stream(num_tokens, batch_size, seq_len, mode, seed=0):
    return LMBatchStream(torch.arange(num_tokens), batch_size, seq_len, mode=mode, seed=seed)


def take(stream, count):
    return [stream.next_batch() for _ in range(count)]


# ----------------------------------------------------------------------------------- read_text


def test_read_text_keeps_text_as_is_and_drops_a_utf8_bom(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffline one\r\nline two ünïcode\n".encode())
    assert read_text(path) == "line one\r\nline two ünïcode\n"
    assert read_text(str(path)) == read_text(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.txt", r"missing\.txt does not exist; check the path"),
        (lambda p: p, r"is a directory; pass a text file"),
        (lambda p: _write(p / "empty.txt", b""), r"empty\.txt is empty; pass a file"),
        (
            lambda p: _write(p / "b.bin", b"PK\x03\x04\x00\x01"),
            r"b\.bin looks binary \(NUL byte at byte offset 4\)",
        ),
    ],
    ids=["missing", "directory", "empty", "binary"],
)
def test_read_text_errors_name_the_path_and_the_fix(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=message) as info:
        read_text(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_read_text_reports_the_byte_offset_of_latin1_bytes_and_reads_them_with_encoding(tmp_path):
    path = _write(tmp_path / "latin.txt", "naïve café".encode("latin-1"))
    expected = (
        f"{path} is not valid utf-8 at byte offset 2; pass --encoding (e.g. --encoding latin-1)"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        read_text(path)
    assert read_text(path, encoding="latin-1") == "naïve café"


def test_read_text_rejects_an_unknown_encoding(tmp_path):
    path = _write(tmp_path / "a.txt", b"abc")
    with pytest.raises(ValueError, match="unknown encoding 'no-such-codec'"):
        read_text(path, encoding="no-such-codec")


def test_read_text_accepts_utf16_whose_nul_bytes_are_text(tmp_path):
    path = _write(tmp_path / "wide.txt", "hi there".encode("utf-16"))
    assert read_text(path, encoding="utf-16") == "hi there"


def test_write_text_atomic_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    write_text_atomic(path, "new ünïcode\n")
    assert path.read_text(encoding="utf-8") == "new ünïcode\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    with pytest.raises(ValueError, match="does not exist; create the directory"):
        write_text_atomic(tmp_path / "no" / "such.json", "x")


# ------------------------------------------------------------------------ corpus and splitting


def test_builtin_corpus_is_long_english_and_deterministic():
    from pydoc_data.topics import topics

    text = builtin_corpus()
    assert len(text) > 400_000
    assert text == builtin_corpus.__wrapped__()  # a fresh build, not the cached string
    first = sorted(topics)[0]
    assert text.startswith(topics[first].strip())
    assert " the " in text and "\x00" not in text


@pytest.mark.parametrize(("length", "fraction"), [(1000, 0.1), (10, 0.3), (7, 0.5), (12345, 0.01)])
def test_split_train_val_holds_out_exactly_the_last_fraction(length, fraction):
    text = "".join(string.ascii_letters[i % 52] for i in range(length))
    train, val = split_train_val(text, fraction)
    assert len(val) == round(length * fraction)
    assert train + val == text
    assert val == text[length - len(val) :]


@pytest.mark.parametrize(
    ("text", "fraction", "message"),
    [
        ("abcdef", 0.0, "strictly between 0 and 1"),
        ("abcdef", 1.0, "strictly between 0 and 1"),
        ("abcdef", True, "strictly between 0 and 1"),
        ("abcdef", 0.01, "leaves the validation part empty"),
        ("abcdef", 0.99, "leaves the training part empty"),
    ],
)
def test_split_train_val_refuses_an_empty_part(text, fraction, message):
    with pytest.raises(ValueError, match=message):
        split_train_val(text, fraction)


# --------------------------------------------------------------------------------- tokenizers


def test_char_tokenizer_round_trips_exactly():
    text = "Hello,\r\n\tworld ünïcode 🙂\n"
    tokenizer = make_tokenizer("char")
    assert isinstance(tokenizer, CharTokenizer) and tokenizer.kind == "char"
    assert tokenizer.tokenize(text) == list(text)
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


def test_word_tokenizer_splits_words_numbers_punctuation_and_newlines():
    tokenizer = make_tokenizer("word")
    assert isinstance(tokenizer, WordTokenizer) and tokenizer.kind == "word"
    assert tokenizer.tokenize("Don't stop,  3.14 (x)\r\nEnd.") == [
        "Don't", "stop", ",", "3.14", "(", "x", ")", "\n", "End", ".",
    ]  # fmt: skip


def test_word_tokenizer_reproduces_normalized_text():
    tokenizer = WordTokenizer()
    assert tokenizer.detokenize(tokenizer.tokenize(NORMAL_TEXT)) == NORMAL_TEXT
    messy = "  First   Citizen :\r\n\tBefore we proceed ,hear me .\n"
    assert tokenizer.detokenize(tokenizer.tokenize(messy)) == (
        "First Citizen:\nBefore we proceed, hear me.\n"
    )


# Pieces dense in the characters that could make detokenize glue two tokens into one.
TRICKY_PIECES = [*"ab1 2\n\t\r.,:;'\"()-/!?é_", "\u2019", "don't", "3.5", " 'tis"]
# and Chinese beside them: runs, CJK punctuation, a fullwidth letter (a word character)
TRICKY_PIECES += [*"北京爱，。「」ａ０", "天安门"]  # noqa: RUF001
TRICKY_TEXT = st.lists(st.sampled_from(TRICKY_PIECES), max_size=40).map("".join) | st.text(
    max_size=40
)


@SETTINGS
@given(TRICKY_TEXT)
# Cases a careless spacing rule merges: an apostrophe hugging both words ("so'tis" is one
# token), a closing mark between digits ("3.5"), and quotes across a newline.
@example("so 'tis true")
@example("kings' crowns o' the")
@example("3 .5 and 1 , 000")
@example('say "a\n" b')
def test_word_detokenize_then_tokenize_gives_the_same_tokens(text):
    # jieba may cut a run differently when it sees it whole (the segmenter tests cover it)
    for segmenter in ("char", "none"):
        _detokenize_then_tokenize(WordTokenizer(segmenter), text)


def _detokenize_then_tokenize(tokenizer, text):
    tokens = tokenizer.tokenize(text)
    normal = tokenizer.detokenize(tokens)
    assert tokenizer.tokenize(normal) == tokens
    assert tokenizer.detokenize(tokenizer.tokenize(normal)) == normal


def test_make_tokenizer_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of 'char', 'word'; got 'bpe'"):
        make_tokenizer("bpe")


# -------------------------------------------------------------------------------------- Vocab


def test_vocab_specials_are_ids_0_to_3():
    vocab = Vocab.build(list("hello"))
    assert vocab.tokens[:4] == list(SPECIALS) == ["<unk>", "<pad>", "<bos>", "<eos>"]
    assert (vocab.unk_id, vocab.pad_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert [vocab[s] for s in SPECIALS] == [0, 1, 2, 3]


def test_vocab_build_orders_by_frequency_then_first_appearance():
    tokens = list("zyxyzwv")  # z:2, y:2, then x, w, v once: first appearance, not alphabetical
    vocab = Vocab.build(tokens)
    assert vocab.tokens[4:] == ["z", "y", "x", "w", "v"]
    assert Vocab.build(tokens) == vocab  # deterministic


def test_vocab_build_max_size_counts_the_specials_and_min_freq_drops_rare_tokens():
    tokens = list("dbacabcbe")
    assert Vocab.build(tokens, max_size=6).tokens == [*SPECIALS, "b", "a"]
    assert Vocab.build(tokens, min_freq=2).tokens == [*SPECIALS, "b", "a", "c"]
    assert len(Vocab.build(tokens, max_size=4)) == 4
    assert Vocab.build([*tokens, "<unk>", "<eos>"]).tokens == Vocab.build(tokens).tokens


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": 3}, r"max_size \(--vocab-size\) must be None or an int >= 4"),
        ({"max_size": 10.0}, r"max_size \(--vocab-size\) must be None or an int >= 4"),
        ({"min_freq": 0}, r"min_freq \(--min-freq\) must be an int >= 1; got 0"),
    ],
)
def test_vocab_build_rejects_bad_limits(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Vocab.build(["a"], **kwargs)


def test_vocab_maps_unknown_tokens_to_unk_and_round_trips_known_ones():
    vocab = Vocab.build(list("hello world"))
    assert vocab["z"] == vocab.unk_id and "z" not in vocab and "h" in vocab
    ids = vocab.encode(list("hello zebra"))
    assert ids[6] == vocab.unk_id and ids[:5] == [vocab[c] for c in "hello"]
    assert "".join(vocab.decode(ids)) == "hello <unk>e<unk>r<unk>"
    assert vocab.decode(torch.tensor(ids)) == vocab.decode(ids)
    assert vocab.token(vocab["w"]) == "w"
    assert vocab.encode("hello") == vocab.encode(list("hello"))  # a str is its characters


def test_vocab_encode_tensor_equals_encode():
    text = "the time traveller\n🙂 ünseen"
    vocab = Vocab.build(list("the time traveller\n"))
    ids = vocab.encode_tensor(text)
    assert ids.dtype == torch.long and ids.tolist() == vocab.encode(text)
    words = text.split()
    assert vocab.encode_tensor(words).tolist() == vocab.encode(words) == [0] * 5
    assert vocab.encode_tensor("").shape == (0,)


def test_vocab_decode_and_token_reject_out_of_range_ids():
    vocab = Vocab.build(list("ab"))
    with pytest.raises(ValueError, match="id 6 is out of range for a vocabulary of 6"):
        vocab.decode([0, 6])
    with pytest.raises(ValueError, match="id -1 is out of range"):
        vocab.token(-1)
    with pytest.raises(TypeError, match="ids must be ints; got str 'a'"):
        vocab.decode([0, "a"])


@SETTINGS
@given(st.lists(st.text(min_size=1, max_size=3), max_size=40))
def test_vocab_decode_inverts_encode_for_known_tokens(tokens):
    vocab = Vocab.build(tokens)
    decoded = vocab.decode(vocab.encode(tokens))
    assert decoded == [t if t in vocab else "<unk>" for t in tokens]
    assert all(t in vocab for t in tokens if t not in SPECIALS)


def test_vocab_json_round_trip(tmp_path):
    vocab = Vocab.build(WordTokenizer().tokenize(PROSE + "ünïcode «quotes»"), max_size=20)
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocab.load(path) == vocab
    assert Vocab.load(path).tokens == vocab.tokens
    assert json.loads(path.read_text(encoding="utf-8"))["tokens"] == vocab.tokens
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temp file left
    assert Vocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab


def test_vocab_load_names_the_file_for_bad_json(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text('{"tokens": [')
    with pytest.raises(ValueError, match=r"vocab\.json is not valid JSON \(line 1"):
        Vocab.load(path)
    path.write_text('{"tokens": ["a"]}')
    invalid = r"vocab\.json is not a valid vocabulary \(Vocab\.from_dict: expected"
    with pytest.raises(ValueError, match=invalid):
        Vocab.load(path)
    with pytest.raises(ValueError, match="tokens must start with the specials"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="'x' appears twice"):
        Vocab([*SPECIALS, "x", "x"])


# --------------------------------------------------------------------------------- embeddings


def test_one_hot_shape_and_values():
    ids = torch.tensor([[0, 3, 1], [2, 2, 4]])
    out = OneHot(5)(ids)
    assert out.shape == (2, 3, 5) and out.dtype == torch.float32
    assert torch.equal(out, torch.eye(5)[ids])
    assert OneHot(5, dtype=torch.float64)(ids).dtype == torch.float64
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 5\); got values in \[0, 5\]"):
        OneHot(5)(torch.tensor([0, 5]))
    with pytest.raises(TypeError, match="ids must be an integer"):
        OneHot(5)(torch.zeros(2))


GLOVE = "the 0.1 0.2 0.3\ncat -1 2.5 3e-1\n, 0 0 1\nzebra 9 9 9\n"


def test_load_word_vectors_reads_glove(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(GLOVE, encoding="utf-8")
    vocab = Vocab.build(["The", "the", "cat", ",", "dog", "dog"])
    vectors, found = load_word_vectors(path, vocab)
    assert vectors.shape == (len(vocab), 3) and vectors.dtype == torch.float32
    assert found == 4  # the, The (from "the"), cat, ","
    assert torch.equal(vectors[vocab["the"]], torch.tensor([0.1, 0.2, 0.3]))
    assert torch.equal(vectors[vocab["The"]], vectors[vocab["the"]])
    assert torch.equal(vectors[vocab["cat"]], torch.tensor([-1.0, 2.5, 0.3]))
    assert torch.equal(vectors[vocab[","]], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.equal(vectors[vocab.pad_id], torch.zeros(3))
    assert vectors[vocab["dog"]].abs().sum() > 0  # a random row, not zeros
    again, _ = load_word_vectors(path, vocab, dim=3)
    assert torch.equal(again, vectors)  # seeded


def test_load_word_vectors_reads_word2vec_text_and_prefers_an_exact_match(tmp_path):
    path = tmp_path / "vectors.vec"
    path.write_text("3 2\nthe 1 2\nThe 3 4\ncat 5 6\n", encoding="utf-8")
    vocab = Vocab.build(["The", "the", "cat", "dog"])
    vectors, found = load_word_vectors(path, vocab)
    assert vectors.shape == (8, 2) and found == 3
    assert vectors[vocab["the"]].tolist() == [1, 2]
    assert vectors[vocab["The"]].tolist() == [3, 4]
    assert vectors[vocab["cat"]].tolist() == [5, 6]


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("the 1 2 3\ncat 1 2\n", {}, r"glove\.txt:2: expected a word and 3 numbers, got 2 numbers"),
        ("2 3\nthe 1 2 3\ncat 1 2 3 4\n", {}, r"glove\.txt:3: expected a word and 3 numbers"),
        ("the 1 2 3\ncat 1 x 3\n", {}, r"glove\.txt:2: 'x' is not a number"),
        ("the 1 2 3\n", {"dim": 4}, r"holds 3-dimensional vectors but dim=4 was asked"),
        ("3 2\nthe 1 2\ncat 3 4\n", {}, r"the header says 3 vectors but the file has 2"),
        ("\n", {}, r"glove\.txt:1: empty first line"),
    ],
)
def test_load_word_vectors_errors_name_file_and_line(tmp_path, content, kwargs, message):
    path = tmp_path / "glove.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_word_vectors(path, Vocab.build(["the", "cat"]), **kwargs)


def test_load_word_vectors_rejects_binary_and_missing_files(tmp_path):
    path = _write(tmp_path / "vectors.bin", b"2 3\nthe \xff\xfe\x00\x01")
    with pytest.raises(ValueError, match="is not UTF-8 text; binary word2vec"):
        load_word_vectors(path, Vocab.build(["the"]))
    with pytest.raises(ValueError, match="does not exist"):
        load_word_vectors(tmp_path / "nope.txt", Vocab.build(["the"]))


# ----------------------------------------------------------------------------- LMBatchStream


@pytest.mark.parametrize("mode", ["sequential", "random"])
def test_targets_are_the_inputs_shifted_by_one_token_of_the_corpus(mode):
    text = PROSE * 4
    vocab = Vocab.build(text)
    ids = vocab.encode_tensor(text)
    stream = LMBatchStream(ids, batch_size=3, seq_len=7, mode=mode, seed=5)
    positions = LMBatchStream(torch.arange(len(ids)), 3, 7, mode=mode, seed=5)
    for _ in range(2 * stream.batches_per_epoch):
        x, y, _ = stream.next_batch()
        where, _, _ = positions.next_batch()
        assert x.shape == y.shape == (3, 7) and x.dtype == y.dtype == torch.long
        assert torch.equal(x, ids[where]) and torch.equal(y, ids[where + 1])
        assert torch.equal(x[:, 1:], y[:, :-1])


def test_sequential_rows_continue_across_consecutive_batches():
    stream = positions_stream(1000, batch_size=4, seq_len=9, mode="sequential", seed=1)
    K = stream.batches_per_epoch
    batches = take(stream, K)
    offset = int(batches[0][0][0, 0])
    assert 0 <= offset < 9 and K == (1000 - 1 - 8) // (4 * 9)
    for b in range(4):  # row b is one contiguous stretch of K·T tokens
        assert int(batches[0][0][b, 0]) == offset + b * K * 9
    for (x, y, _), (x_next, _, _) in itertools.pairwise(batches):
        assert torch.equal(x_next[:, 0], x[:, -1] + 1)
        assert torch.equal(y[:, -1], x_next[:, 0])
    assert [new for _, _, new in batches] == [True] + [False] * (K - 1)


def test_random_mode_visits_disjoint_aligned_subsequences():
    stream = positions_stream(500, batch_size=3, seq_len=8, mode="random", seed=2)
    K = stream.batches_per_epoch
    starts = torch.cat([x[:, 0] for x, _, _ in take(stream, K)])
    assert len(set(starts.tolist())) == K * 3  # every row a different subsequence
    assert len(set((starts % 8).tolist())) == 1  # all on one offset's grid: no overlaps
    other_seed = positions_stream(500, batch_size=3, seq_len=8, mode="random", seed=0)
    other_starts = torch.cat([x[:, 0] for x, _, _ in take(other_seed, K)])
    assert not torch.equal(starts.sort().values, starts)  # shuffled, not in text order
    assert not torch.equal(starts, other_starts)  # the seed matters


@pytest.mark.parametrize("mode", ["sequential", "random"])
@pytest.mark.parametrize("stop", [3, 10, 11, 12])  # K = 11 batches per epoch: mid, end, next
def test_resuming_from_state_dict_gives_identical_batches(mode, stop):
    def fresh():
        return positions_stream(210, batch_size=2, seq_len=9, mode=mode, seed=7)

    stream = fresh()
    assert stream.batches_per_epoch == 11
    take(stream, stop)
    state = json.loads(json.dumps(stream.state_dict()))  # what a checkpoint stores
    expected = take(stream, 30)
    resumed = fresh()
    resumed.load_state_dict(state)
    for (x, y, new), (rx, ry, rnew) in zip(expected, take(resumed, 30), strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry) and new == rnew


@pytest.mark.parametrize("mode", ["sequential", "random"])
def test_each_epoch_draws_a_new_offset(mode):
    stream = positions_stream(300, batch_size=2, seq_len=10, mode=mode, seed=3)
    K = stream.batches_per_epoch
    offsets = []
    for _ in range(6):
        epoch = take(stream, K)
        assert epoch[0][2] and not any(new for _, _, new in epoch[1:])
        offsets.append(int(epoch[0][0][0, 0]) % 10)
    assert len(set(offsets)) > 1


@pytest.mark.parametrize("mode", ["sequential", "random"])
def test_batches_are_copies_that_callers_may_overwrite(mode):
    ids = torch.arange(50)
    stream = LMBatchStream(ids, batch_size=1, seq_len=4, mode=mode)
    expected = take(LMBatchStream(ids.clone(), batch_size=1, seq_len=4, mode=mode), 24)
    ids.fill_(-1)  # the stream keeps its own copy of the text
    for x_expected, _, _ in expected:
        x, y, _ = stream.next_batch()
        assert torch.equal(x, x_expected)
        x.fill_(-1)
        y.fill_(-1)


def test_a_corpus_of_exactly_one_batch_works_and_a_shorter_one_is_refused():
    stream = positions_stream(2 * 5 + 1, batch_size=2, seq_len=5, mode="sequential")
    x, _, _ = stream.next_batch()
    assert stream.batches_per_epoch == 1 and x.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    message = "text has 10 tokens; at least 11 needed for --batch-size 2 --seq-len 5"
    with pytest.raises(ValueError, match=message):
        positions_stream(10, batch_size=2, seq_len=5, mode="random")


def test_lm_batch_stream_rejects_bad_arguments_and_foreign_states():
    with pytest.raises(ValueError, match=r"mode \(--batching\) must be one of"):
        positions_stream(100, 2, 5, mode="shuffled")
    with pytest.raises(ValueError, match=r"batch_size \(--batch-size\) must be a positive int"):
        positions_stream(100, 0, 5, mode="random")
    with pytest.raises(TypeError, match="ids must be an integer tensor"):
        LMBatchStream(torch.zeros(100), 2, 5)
    with pytest.raises(ValueError, match=r"ids must be 1-D \(N,\)"):
        LMBatchStream(torch.zeros(10, 10, dtype=torch.long), 2, 5)
    state = positions_stream(100, 2, 5, "random").state_dict()
    with pytest.raises(ValueError, match="the saved stream had seq_len=5, this one has 4"):
        positions_stream(100, 2, 4, "random").load_state_dict(state)
    with pytest.raises(ValueError, match="expected a dict with 'epoch' and 'index'"):
        positions_stream(100, 2, 5, "random").load_state_dict({"epoch": 0})


@SETTINGS
@given(
    num_tokens=st.integers(2, 400),
    batch_size=st.integers(1, 6),
    seq_len=st.integers(1, 12),
    mode=st.sampled_from(["sequential", "random"]),
    seed=st.integers(0, 2**32),
)
def test_stream_shapes_shift_and_bounds_hold_for_any_size(
    num_tokens, batch_size, seq_len, mode, seed
):
    if num_tokens < batch_size * seq_len + 1:
        with pytest.raises(ValueError, match=f"text has {num_tokens} tokens"):
            positions_stream(num_tokens, batch_size, seq_len, mode, seed)
        return
    stream = positions_stream(num_tokens, batch_size, seq_len, mode, seed)
    K = stream.batches_per_epoch
    assert K >= 1
    for _ in range(2):
        epoch = take(stream, K)
        xs = torch.stack([x for x, _, _ in epoch])  # (K, B, T)
        assert xs.shape == (K, batch_size, seq_len)
        assert torch.equal(torch.stack([y for _, y, _ in epoch]), xs + 1)
        assert xs.min() >= 0 and xs.max() + 1 < num_tokens
        assert torch.equal(xs[..., 1:], xs[..., :-1] + 1)  # rows are contiguous text
        assert len(set(xs.flatten().tolist())) == xs.numel()  # no token twice in an epoch
        if mode == "sequential":
            assert torch.equal(xs[1:, :, 0], xs[:-1, :, -1] + 1)


# ----------------------------------------------------------------- state, padding and packing


def test_detach_state_cuts_the_graph_of_tensors_and_tuples():
    h = torch.ones(2, 3, requires_grad=True) * 2
    c = torch.zeros(2, 3, requires_grad=True) + 1
    assert not detach_state(h).requires_grad and torch.equal(detach_state(h), h)
    hc = detach_state((h, c))
    assert isinstance(hc, tuple) and not any(t.requires_grad for t in hc)
    nested = detach_state([(h, c), h])
    assert isinstance(nested, list) and not nested[0][1].requires_grad
    assert detach_state(None) is None
    with pytest.raises(TypeError, match="state must be a tensor or a tuple of tensors; got str"):
        detach_state("h")


@pytest.mark.parametrize("batch_first", [True, False])
def test_pad_sequences_and_pack_round_trip(batch_first):
    seqs = [torch.tensor([5, 6]), torch.tensor([7, 8, 9, 10]), torch.tensor([11])]
    padded, lengths = pad_sequences(seqs, pad_id=1, batch_first=batch_first)
    assert lengths.tolist() == [2, 4, 1] and lengths.dtype == torch.long
    rows = padded if batch_first else padded.T
    assert rows.tolist() == [[5, 6, 1, 1], [7, 8, 9, 10], [11, 1, 1, 1]]
    packed = pack(padded.float(), lengths, batch_first=batch_first)  # unsorted lengths are fine
    unpacked, unpacked_lengths = pad_packed_sequence(
        packed, batch_first=batch_first, padding_value=1
    )
    assert torch.equal(unpacked.long(), padded) and unpacked_lengths.tolist() == [2, 4, 1]


def test_pad_sequences_and_pack_reject_bad_input():
    with pytest.raises(ValueError, match="seqs must be a non-empty list of tensors"):
        pad_sequences([], pad_id=0)
    with pytest.raises(ValueError, match="same trailing shape"):
        pad_sequences([torch.zeros(2, 3), torch.zeros(2, 4)], pad_id=0)
    padded, lengths = pad_sequences([torch.ones(3), torch.ones(0)], pad_id=0)
    with pytest.raises(ValueError, match=r"every length must be in 1\.\.3.*drop empty sequences"):
        pack(padded, lengths)
    with pytest.raises(ValueError, match=r"lengths must be \(B,\) with B = 2"):
        pack(padded, torch.tensor([3]))


def test_one_hot_follows_the_models_dtype():
    """model.double() must reach the one-hot inputs, as it reaches an embedding's weight."""
    layer = OneHot(4)
    ids = torch.tensor([[0, 3], [2, 1]])
    assert layer(ids).dtype == torch.float32
    layer.double()
    assert layer(ids).dtype == torch.float64
    assert layer.state_dict() == {}  # nothing new is saved in checkpoints
