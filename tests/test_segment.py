"""Chinese word segmentation behind `--tokens word`: the segmenters, the tokenizer round trip on
Chinese, the choice saved with a run, and runs through the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.cli import main
from rnnkit.data import WordTokenizer, make_tokenizer
from rnnkit.data.segment import is_han, segment_han
from rnnkit.tasks.lm import LanguageModelTask
from rnnkit.train import TrainConfig

SENTENCE = "我爱北京天安门"

# A small Chinese text: sentences about recurrent networks, as the seeds write them.
LINES = [
    "循环神经网络可以处理序列数据。",
    "我爱北京天安门，天安门上太阳升。",
    "长短期记忆网络通过门控机制缓解梯度消失问题。",
    "门控循环单元比长短期记忆网络更简单。",
    "语言模型根据前面的词预测下一个词。",
    "我们用反向传播算法训练循环神经网络。",
]
TEXT = "\n".join(LINES * 30) + "\n"


def test_jieba_cuts_the_classic_sentence():
    assert make_tokenizer("word").tokenize(SENTENCE) == ["我", "爱", "北京", "天安门"]
    assert segment_han(SENTENCE, "jieba") == ["我", "爱", "北京", "天安门"]


def test_char_and_none_segmenters():
    assert WordTokenizer("char").tokenize(SENTENCE) == list(SENTENCE)
    assert WordTokenizer("none").tokenize(SENTENCE) == [SENTENCE]  # the old behaviour


def test_chinese_beside_other_scripts_and_punctuation():
    tokenizer = WordTokenizer()
    tokens = tokenizer.tokenize("我爱Python编程，你呢？3.14 是圆周率。")
    assert tokens == [
        "我", "爱", "Python", "编程", "，", "你", "呢", "？", "3.14", "是", "圆周率", "。",
    ]  # fmt: skip
    # no spaces between Chinese words or around CJK punctuation; one beside other scripts
    assert tokenizer.detokenize(tokens) == "我爱 Python 编程，你呢？3.14 是圆周率。"
    # Chinese typed with ASCII marks keeps them unspaced between Chinese words
    assert tokenizer.detokenize(tokenizer.tokenize("大家好,我是学生.")) == "大家好,我是学生."


def test_a_chinese_text_comes_back_as_it_was():
    tokenizer = WordTokenizer()
    tokens = tokenizer.tokenize(TEXT)
    assert "循环" in tokens and "天安门" in tokens and "\n" in tokens
    assert tokenizer.detokenize(tokens) == TEXT


HAN = "我爱北京天安门循环神经网络语言模型的是了在有和人这中大为上个国不以"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([*HAN, "，", "。", "\n"]), max_size=40).map("".join))
def test_chinese_without_spaces_round_trips_through_jieba(text):
    """Chinese written as it is, without spaces, comes back exactly: jieba's words of a run
    are the run cut into pieces, and detokenize writes no space between Chinese words."""
    tokenizer = WordTokenizer("jieba")
    tokens = tokenizer.tokenize(text)
    assert all(t in "，。\n" or is_han(t) for t in tokens)
    assert tokenizer.detokenize(tokens) == text.replace("\r", "")
    assert tokenizer.tokenize(tokenizer.detokenize(tokens)) == tokens


def test_text_without_chinese_never_loads_jieba():
    code = (
        "import sys; from rnnkit.data import make_tokenizer; "
        "t = make_tokenizer('word'); t.detokenize(t.tokenize('Hello, world: 3.14 ünïcode.')); "
        "assert 'jieba' not in sys.modules, 'jieba loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_segmenter_is_refused():
    with pytest.raises(ValueError, match="unknown segmenter 'bpe': choose --segmenter from"):
        WordTokenizer("bpe")


def test_a_run_saved_before_segmenters_keeps_its_tokens():
    """A language-model state without a segmenter is from before them: runs of Chinese stay
    whole, as its vocabulary was built."""
    task = LanguageModelTask(TrainConfig(tokens="word"))
    task.fit(task.tokens_of(TEXT))
    state = task.state_dict()
    assert state["segmenter"] == "jieba"
    del state["segmenter"]
    old = LanguageModelTask(TrainConfig(tokens="word"))
    old.load_state_dict(state)
    assert old.tokenizer.tokenize(SENTENCE) == [SENTENCE]


TINY = ["--hidden-size", "32", "--embedding-dim", "16", "--seq-len", "16", "--batch-size", "8"]


def test_a_chinese_word_model_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "zh.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), "--tokens", "word"]
    assert main([*argv, *TINY, "--max-steps", "60", "--threads", "1", "--quiet"]) == 0
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    words = vocab["tokens"]
    assert {"北京", "天安门", "循环", "神经网络"} <= set(words)
    assert SENTENCE not in words and "循环神经网络可以处理序列数据" not in words
    assert json.loads((out / "task.json").read_text())["state"]["segmenter"] == "jieba"
    capsys.readouterr()
    argv = ["generate", "--checkpoint", str(out), "--length", "30", "--seed", "1"]
    assert main([*argv, "--prefix", "我爱北京"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("我爱北京")
    assert not re.search("[\u4e00-\u9fff] [\u4e00-\u9fff]", sample)  # Chinese words unspaced


def test_a_chinese_classifier_from_the_command_line(tmp_path, capsys):
    rows = [f"pos\t{line}" if i % 2 else f"neg\t{line}" for i, line in enumerate(LINES * 10)]
    data = tmp_path / "zh.tsv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--task", "classify", "--data", str(data), "--out", str(out)]
    assert main([*argv, "--max-steps", "20", "--segmenter", "char", "--quiet"]) == 0
    state = json.loads((out / "task.json").read_text())["state"]
    assert state["segmenter"] == "char"
    assert {"北", "京"} <= set(state["vocab"]["tokens"])
    inputs = tmp_path / "in.txt"
    inputs.write_text("我爱北京天安门\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(out), "--data", str(inputs)]) == 0
    assert capsys.readouterr().out.strip() in {"pos", "neg"}


def test_the_example_shows_what_segmentation_is_worth():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "chinese_words.py"
    spec = importlib.util.spec_from_file_location("_example_chinese_words", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    rows = {row["segmenter"]: row for row in example.main([])}
    assert rows["jieba"]["first line"] == "我 / 爱 / 北京 / 天安门 / 。"
    assert rows["none"]["first line"] == "我爱北京天安门 / 。"
    # every phrase is its own word without a segmenter; jieba's words recur
    assert rows["none"]["seen once"] > rows["jieba"]["seen once"]
    assert rows["none"]["tokens"] < rows["jieba"]["tokens"] < rows["char"]["tokens"]
