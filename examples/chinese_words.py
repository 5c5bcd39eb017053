"""Chinese word tokens: what each `--segmenter` makes of a Chinese text.

Chinese writes no spaces between words, so a word tokenizer that splits at spaces and
punctuation sees a whole phrase as one "word": 我爱北京天安门 is one token, seen once. jieba
cuts it into 我 / 爱 / 北京 / 天安门, words that recur, which is what a word-level model needs.

    python examples/chinese_words.py                         # the sentences below
    python examples/chinese_words.py --data ../shared/seeds/001_11904d87ed08ab05.txt

For each segmenter it prints how many tokens the text has, the vocabulary size, the share of the
vocabulary seen only once (words a model cannot learn), and the first line cut into tokens.
"""

from __future__ import annotations

import argparse
from collections import Counter

from rnnkit.data import WordTokenizer, read_text
from rnnkit.data.segment import SEGMENTERS

SENTENCES = """我爱北京天安门。
循环神经网络是一种用于处理序列数据的神经网络。
长短期记忆网络通过门控机制缓解了梯度消失问题。
门控循环单元的结构比长短期记忆网络更简单。
语言模型根据前面的词预测下一个词。
"""


def statistics(text: str, segmenter: str) -> dict:
    tokens = [t for t in WordTokenizer(segmenter).tokenize(text) if t != "\n"]
    counts = Counter(tokens)
    once = sum(1 for c in counts.values() if c == 1)
    first = WordTokenizer(segmenter).tokenize(text.strip().split("\n")[0])
    return {
        "segmenter": segmenter,
        "tokens": len(tokens),
        "vocabulary": len(counts),
        "seen once": once / len(counts) if counts else 0.0,
        "first line": " / ".join(first),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="a UTF-8 Chinese text (default: five sentences)")
    args = parser.parse_args(argv)
    text = read_text(args.data) if args.data else SENTENCES
    rows = [statistics(text, s) for s in SEGMENTERS]
    for row in rows:
        print(
            f"{row['segmenter']:>5}: {row['tokens']:6d} tokens, vocabulary {row['vocabulary']:5d}, "
            f"{row['seen once']:.0%} of it seen once"
        )
        print(f"       {row['first line'][:120]}")
    return rows


if __name__ == "__main__":
    main()
