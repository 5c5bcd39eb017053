"""Hashed n-gram bags and the classifier's linear n-gram path: the features, their weights,
hashing that a saved model can rely on, and the path's place in the model and the task."""

import math
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.feature_ratios import log_count_ratios
from rnnkit.data.ngrams import character_chunks, hashed_bag, ngrams
from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier
from rnnkit.tasks import TextClassifier, task_config
from rnnkit.tasks.classify import ClassifyTask

FAST = {"backend": "native", "threads": 1}


def test_ngrams_are_word_and_framed_character_grams():
    grams = ngrams(["New", "York"], word_n=2, chars=(2, 3))
    words = ["w1:new", "w1:york", "w2:new york"]
    chars_new = ["c2: n", "c2:ne", "c2:ew", "c2:w ", "c3: ne", "c3:new", "c3:ew "]
    chars_york = ["c2: y", "c2:yo", "c2:or", "c2:rk", "c2:k ", "c3: yo", "c3:yor", "c3:ork"]
    chars_york.append("c3:rk ")
    assert sorted(grams) == sorted(words + chars_new + chars_york)
    assert ngrams([], word_n=2) == []


def test_a_run_of_han_words_is_one_chunk_of_characters():
    comma = "\uff0c"  # the full-width comma: not Han, so it ends a run
    words = ["我", "爱", "北京", "天安门", comma, "and", "QQ", "中文", "字"]
    assert character_chunks(words) == ["我爱北京天安门", comma, "and", "QQ", "中文字"]
    assert character_chunks(["New", "York"]) == ["New", "York"]
    assert character_chunks([]) == []


def test_character_grams_span_the_segmenters_cuts_only_with_han_runs():
    spanning = ngrams(["我", "爱", "北京"], word_n=1, chars=(2, 2))
    inside = ngrams(["我", "爱", "北京"], word_n=1, chars=(2, 2), han_runs=False)
    chars = ["c2: 我", "c2:我爱", "c2:爱北", "c2:北京", "c2:京 "]
    assert sorted(spanning) == sorted(["w1:我", "w1:爱", "w1:北京", *chars])
    assert "c2:爱北" not in inside and "c2: 爱" in inside
    # words of other scripts are framed one by one either way
    assert ngrams(["New", "York"]) == ngrams(["New", "York"], han_runs=False)


def test_bag_weights_have_unit_norm_and_collisions_add():
    ids, weights = hashed_bag(["the", "film", "the", "end"], buckets=1000)
    assert ids == sorted(set(ids)) and all(0 <= i < 1000 for i in ids)
    assert math.isclose(sum(w * w for w in weights), 1.0)
    # one bucket: every n-gram collides, so the bag is a single feature of weight 1
    ids, weights = hashed_bag(["the", "film"], buckets=1)
    assert ids == [0] and weights == [1.0]
    assert hashed_bag([], buckets=10) == ([], [])
    with pytest.raises(ValueError, match="buckets must be >= 1"):
        hashed_bag(["a"], buckets=0)


def test_hashing_does_not_depend_on_the_process():
    """Python's hash() is salted per process; a saved model needs the same ids in every one."""
    code = "from rnnkit.data.ngrams import hashed_bag; print(hashed_bag(['good','film'], 4093)[0])"
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        outputs.add(run.stdout)
    assert len(outputs) == 1 and outputs != {""}


def test_the_path_adds_a_linear_bag_model_to_the_logits():
    torch.manual_seed(0)
    config = ClassifierConfig(num_classes=3, vocab_size=20, hidden_size=8, ngram_buckets=50)
    model = SequenceClassifier(config).eval()
    plain = SequenceClassifier(ClassifierConfig(num_classes=3, vocab_size=20, hidden_size=8))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if "ngrams" not in k})
    plain.eval()
    inputs, lengths = torch.randint(4, 20, (2, 5)), torch.tensor([5, 3])
    bag = (torch.tensor([3, 7, 7, 9]), torch.tensor([0, 2]), torch.tensor([0.6, 0.8, 0.5, 2.0]))
    # the path starts at zero: the model begins as the recurrent one alone
    assert torch.equal(model(inputs, lengths, bag), plain(inputs, lengths))
    with torch.no_grad():
        model.ngrams.weight.normal_()
    w = model.ngrams.weight
    expected = plain(inputs, lengths) + torch.stack(
        [0.6 * w[3] + 0.8 * w[7], 0.5 * w[7] + 2 * w[9]]
    )
    assert torch.allclose(model(inputs, lengths, bag), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"ngrams=.* must be given"):
        model(inputs, lengths)
    with pytest.raises(ValueError, match=r"ngrams=.* must be given"):
        plain(inputs, lengths, bag)
    with pytest.raises(ValueError, match="needs token input"):
        ClassifierConfig(num_classes=2, input_size=3, ngram_buckets=10)


def test_task_batches_carry_each_texts_bag():
    task = ClassifyTask(task_config("classify", ngram_buckets=97))
    examples = task.examples_from_python(["good film", "a dull plot indeed"], ["pos", "neg"])
    task.fit(examples)
    batch = task.collate([task.encode(e) for e in examples]).tensors
    first = hashed_bag(["good", "film"], 97)
    second = hashed_bag(["a", "dull", "plot", "indeed"], 97)
    assert batch["ngram_ids"].tolist() == first[0] + second[0]
    assert batch["ngram_offsets"].tolist() == [0, len(first[0])]
    assert torch.allclose(batch["ngram_weights"], torch.tensor(first[1] + second[1]))
    assert task.build_model().config.ngram_buckets == 97
    off = ClassifyTask(task_config("classify", ngram_buckets=0))
    off.fit(examples)
    assert "ngram_ids" not in off.collate([off.encode(e) for e in examples]).tensors
    assert off.build_model().ngrams is None


def test_character_input_bags_the_words_it_spells():
    task = ClassifyTask(task_config("classify", tokens="char", ngram_buckets=97))
    examples = task.examples_from_python(["good film"], ["pos"])
    task.fit(examples)
    _, _, bag = task.encode(examples[0])
    assert bag == hashed_bag(["good", "film"], 97)


def test_a_run_saved_before_the_path_loads_without_it():
    task = ClassifyTask(task_config("classify"))
    examples = task.examples_from_python(["good film"], ["pos"])
    task.fit(examples)
    state = task.state_dict()
    del state["ngram_buckets"]
    again = ClassifyTask(task_config("classify"))
    again.load_state_dict(state)
    assert again.ngram_buckets == 0 and again.build_model().ngrams is None


def test_chinese_bags_span_the_cuts_and_older_runs_keep_their_grams():
    """A run saved before the Han-run chunks must hash the grams it was trained on."""
    task = ClassifyTask(task_config("classify", ngram_buckets=4093))
    examples = task.examples_from_python(["我爱北京天安门"], ["pos"])
    task.fit(examples)
    words = examples[0].tokens
    assert words == ["我", "爱", "北京", "天安门"]
    assert task.encode(examples[0])[2] == hashed_bag(words, 4093, han_runs=True)
    state = task.state_dict()
    assert state["ngram_han_runs"] is True
    del state["ngram_han_runs"]
    older = ClassifyTask(task_config("classify", ngram_buckets=4093))
    older.load_state_dict(state)
    assert older.encode(examples[0])[2] == hashed_bag(words, 4093, han_runs=False)
    assert older.encode(examples[0])[2] != task.encode(examples[0])[2]


def test_the_path_learns_beside_a_tiny_recurrent_one(one_thread):
    """Cue words decide the label; the bag's weights move from zero and the model gets it."""
    pos, neg = ["good", "great", "fine"], ["bad", "awful", "dull"]
    filler = ["the", "movie", "was", "plot", "quite"]
    g = torch.Generator().manual_seed(0)
    texts, labels = [], []
    for i in range(240):
        cue = (pos if i % 2 else neg)[int(torch.randint(3, (1,), generator=g))]
        words = [filler[int(j)] for j in torch.randint(5, (4,), generator=g)] + [cue]
        texts.append(" ".join(words))
        labels.append("pos" if i % 2 else "neg")
    clf = TextClassifier(max_steps=80, eval_every=40, hidden_size=4, lr=1e-2, **FAST)
    clf.fit(texts, labels)
    weights = clf.model.ngrams.effective_weight().detach()
    great = hashed_bag(["great"], weights.shape[0])[0]
    # the bag of "great" alone points to pos
    assert float(weights[great].sum(0)[1] - weights[great].sum(0)[0]) > 0
    assert clf.evaluate(["the plot was great", "quite dull movie"], ["pos", "neg"])["accuracy"] == 1


def test_log_count_ratios_by_hand():
    # bucket 0 in both pos texts and one neg text, bucket 1 in one pos text, bucket 2 in none;
    # the unlabelled text (-1) does not count
    bags, labels = [[0, 1], [0], [0], [2, 1]], [1, 1, 0, -1]
    r = log_count_ratios(bags, labels, buckets=3, classes=2, alpha=1.0)
    pos = torch.tensor([1 + 2, 1 + 1, 1 + 0], dtype=torch.float64)
    neg = torch.tensor([1 + 1, 1 + 0, 1 + 0], dtype=torch.float64)
    expected = (pos / pos.sum()).log() - (neg / neg.sum()).log()
    assert r.shape == (3, 2) and r.dtype == torch.float32
    assert torch.allclose(r[:, 1], expected.float()) and torch.allclose(r[:, 0], -expected.float())
    assert r[1, 1] > 0 > r[1, 0]  # the bucket only positive texts hold points to pos
    with pytest.raises(ValueError, match="buckets and classes"):
        log_count_ratios([], [], buckets=0, classes=2)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda classes: st.tuples(
            st.just(classes),
            st.lists(
                st.tuples(st.sets(st.integers(0, 9), max_size=6), st.integers(-1, classes - 1)),
                max_size=12,
            ),
        )
    )
)
def test_log_count_ratios_count_each_class_against_the_rest(case):
    classes, texts = case
    bags = [sorted(ids) for ids, _ in texts]
    labels = [label for _, label in texts]
    r = log_count_ratios(bags, labels, buckets=10, classes=classes, alpha=0.5).double()
    for c in range(classes):
        held = torch.zeros(10, dtype=torch.float64)
        rest = torch.zeros(10, dtype=torch.float64)
        for ids, label in zip(bags, labels, strict=True):
            for i in ids:
                if label == c:
                    held[i] += 1
                elif label >= 0:
                    rest[i] += 1
        p, q = held + 0.5, rest + 0.5
        expected = (p / p.sum()).log() - (q / q.sum()).log()
        assert torch.allclose(r[:, c], expected, atol=1e-6)
    if classes == 2:
        assert torch.allclose(r[:, 0], -r[:, 1], atol=1e-6)


def test_the_ratios_scale_each_features_weight_per_class():
    torch.manual_seed(0)
    config = ClassifierConfig(
        num_classes=2, vocab_size=20, hidden_size=8, ngram_buckets=12, ngram_ratios=True
    )
    model = SequenceClassifier(config).eval()
    with torch.no_grad():
        model.ngrams.weight.normal_()
        model.ngrams.ratios.normal_()
    plain = SequenceClassifier(ClassifierConfig(num_classes=2, vocab_size=20, hidden_size=8))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if "ngram" not in k})
    plain.eval()
    inputs, lengths = torch.randint(4, 20, (2, 5)), torch.tensor([5, 3])
    bag = (torch.tensor([3, 7, 7, 9]), torch.tensor([0, 2]), torch.tensor([0.6, 0.8, 0.5, 2.0]))
    w = model.ngrams.weight * model.ngrams.ratios
    expected = plain(inputs, lengths) + torch.stack(
        [0.6 * w[3] + 0.8 * w[7], 0.5 * w[7] + 2 * w[9]]
    )
    assert torch.allclose(model(inputs, lengths, bag), expected, atol=1e-6)
    # the ratios are the training texts' and travel with the weights; the optimizer leaves them
    assert "ngrams.ratios" in model.state_dict()
    assert all(p is not model.ngrams.ratios for p in model.parameters())
    with pytest.raises(ValueError, match="set ngram_buckets > 0"):
        ClassifierConfig(num_classes=2, vocab_size=5, ngram_ratios=True)


def test_the_task_fills_the_ratios_from_its_training_texts():
    from rnnkit.tasks.base import TaskData

    task = ClassifyTask(task_config("classify", ngram_buckets=97))
    examples = task.examples_from_python(["good film", "dull film", "good plot"], ["p", "n", "p"])
    task.fit(examples)
    model = task.build_model()
    assert model.config.ngram_ratios  # the default
    task.init_model(model, TaskData(train=examples, val=[], source={}))
    bags = [task.encode(e)[2][0] for e in examples]
    expected = log_count_ratios(bags, [1, 0, 1], 97, 2)
    assert torch.equal(model.ngrams.ratios, expected)
    off = ClassifyTask(task_config("classify", ngram_buckets=97, ngram_scaling="none"))
    off.fit(examples)
    assert not off.build_model().config.ngram_ratios


def test_a_linear_bag_loads_an_embedding_bags_weights():
    """Models saved before the ratios held a plain nn.EmbeddingBag: the same state dict."""
    from rnnkit.models.linear_bag import LinearBag

    old = torch.nn.EmbeddingBag(10, 3, mode="sum")
    bag = LinearBag(10, 3)
    bag.load_state_dict(old.state_dict())
    ids, offsets = torch.tensor([1, 4, 4, 9]), torch.tensor([0, 3])
    assert torch.equal(bag(ids, offsets), old(ids, offsets))
    assert list(LinearBag(10, 3, ratios=True).state_dict()) == ["weight", "ratios"]


def test_the_scaled_bag_reads_the_product_of_weights_and_ratios_with_its_gradient():
    """Values and gradients are those of an EmbeddingBag over the product weight * ratios;
    rows no text holds get no gradient."""
    from rnnkit.models.linear_bag import LinearBag

    torch.manual_seed(0)
    bag = LinearBag(40, 3, ratios=True)
    torch.nn.init.normal_(bag.weight)
    torch.nn.init.normal_(bag.ratios)
    ids, offsets = torch.randint(0, 40, (30,)), torch.tensor([0, 4, 4, 17])
    weights = torch.rand(30)
    (got_grad,) = torch.autograd.grad((bag(ids, offsets, weights) ** 2).sum(), bag.weight)
    full = torch.nn.functional.embedding_bag(
        ids, bag.weight * bag.ratios, offsets, mode="sum", per_sample_weights=weights
    )
    (want_grad,) = torch.autograd.grad((full**2).sum(), bag.weight)
    assert torch.equal(bag(ids, offsets, weights), full)
    torch.testing.assert_close(got_grad, want_grad)
    unread = sorted(set(range(40)) - set(ids.tolist()))
    assert torch.equal(got_grad[unread], torch.zeros(len(unread), 3))  # rows no text holds


def product_model(combination: str, weight: float = 0.5) -> SequenceClassifier:
    torch.manual_seed(0)
    config = ClassifierConfig(
        num_classes=3,
        vocab_size=20,
        hidden_size=8,
        ngram_buckets=12,
        ngram_ratios=True,
        ngram_combination=combination,
        ngram_weight=weight,
        dropout=0.0,
    )
    model = SequenceClassifier(config)
    with torch.no_grad():
        model.ngrams.weight.normal_()
        model.ngrams.ratios.uniform_(0.5, 2)
    return model


def test_the_product_of_experts_multiplies_the_two_paths_probabilities():
    """'product' with weight w: softmax(output) is p_rnn^(1-w) p_bag^w normalized; 'sum' adds
    the logits. The same weights each way."""
    inputs, lengths = torch.randint(4, 20, (2, 5)), torch.tensor([5, 3])
    bag = (torch.tensor([3, 7, 7, 9]), torch.tensor([0, 2]), torch.tensor([0.6, 0.8, 0.5, 2.0]))
    state = product_model("product").state_dict()
    for w in (0.25, 0.5, 0.75):
        product = product_model("product", w).eval()
        product.load_state_dict(state)
        rnn, linear = product.path_logits(inputs, lengths, bag)
        joint = rnn.softmax(-1) ** (1 - w) * linear.softmax(-1) ** w
        got = product(inputs, lengths, bag).softmax(-1)
        assert torch.allclose(got, joint / joint.sum(-1, True), atol=1e-6)
    summed = product_model("sum").eval()
    summed.load_state_dict(state)
    assert torch.allclose(summed(inputs, lengths, bag), rnn + linear, atol=1e-6)
    with pytest.raises(ValueError, match="ngram_combination must be one of sum, product"):
        ClassifierConfig(num_classes=2, vocab_size=5, ngram_combination="mean")
    with pytest.raises(ValueError, match=r"ngram_weight must be in \(0, 1\)"):
        ClassifierConfig(num_classes=2, vocab_size=5, ngram_weight=1.0)
    with pytest.raises(ValueError, match="--ngram-weight"):
        task_config("classify", ngram_weight=0.0)


def test_each_expert_learns_from_its_own_loss():
    """With 'product' the task's loss is the two paths' cross-entropies added: the bag's
    gradient is that of its own loss, whatever the recurrent weights are."""
    from rnnkit.tasks.base import TaskData

    task = ClassifyTask(task_config("classify", ngram_buckets=12, dropout=0.0, hidden_size=8))
    examples = task.examples_from_python(["good film", "dull film", "fine plot"], ["p", "n", "m"])
    task.fit(examples)
    model = task.build_model()
    assert model.config.ngram_combination == "product"  # the default
    assert model.config.ngram_weight == 0.75
    task.init_model(model, TaskData(train=examples, val=[], source={}))
    model.eval()  # no word dropout: the same recurrent logits on every call
    batch = task.collate([task.encode(e) for e in examples])
    t = batch.tensors
    bag_args = (t["ngram_ids"], t["ngram_offsets"], t["ngram_weights"])
    rnn, linear = model.path_logits(t["inputs"], t["lengths"], bag_args)
    loss = task.loss(model, batch)
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(loss, ce(rnn, t["labels"]) + ce(linear, t["labels"]))

    def bag_gradient():
        model.zero_grad()
        task.loss(model, batch).backward()
        return model.ngrams.weight.grad.clone()

    before = bag_gradient()
    assert before.abs().sum() > 0
    with torch.no_grad():
        model.head.weight.normal_()  # another recurrent path: the bag's gradient stays
    assert torch.allclose(bag_gradient(), before)


def test_a_model_saved_before_the_choice_adds_its_paths():
    data = ClassifierConfig(num_classes=2, vocab_size=5, ngram_buckets=4).to_dict()
    del data["ngram_combination"]
    assert ClassifierConfig.from_dict(data).ngram_combination == "sum"
