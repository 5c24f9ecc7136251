"""Text to train the demo tokenizer on: a short shipped passage plus seeded synthetic prose.

The synthetic part is a made-up language of pseudo-words drawn with Zipf-like frequencies,
so a byte-level BPE trainer finds enough distinct pieces to fill a 32k vocabulary. A few
accented, CJK and emoji characters make multi-byte UTF-8 tokens part of the vocabulary, which
the engine's incremental detokenizer must handle.
"""

import random

SHIPPED_TEXT = """\
An inference platform turns a trained model into answers. A request arrives with a prompt;
the gateway checks the key, picks a pool by its rules and a replica by its load, and the
engine schedules the prompt into a batch. The scheduler gives each step a budget of tokens,
so long prompts are prefilled in chunks while other requests keep decoding. The key-value
cache is paged in blocks of sixteen tokens; blocks whose content was seen before are shared,
which makes a repeated system prompt nearly free. When demand rises, the controller adds
replicas; when it falls, replicas drain and stop, and an idle model sleeps in host memory.
Every request is priced: its share of the GPU's busy time, at the hour's rate.
The quick brown fox jumps over the lazy dog. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2026.
Punctuation: ( ) [ ] { } < > , . ; : ! ? ' " - _ + = * / \\ | @ # $ % ^ & ~ `
user assistant system tool function json yaml http https model token prompt reply
Café, naïve, über, señor, smörgåsbord. 日本語のテキスト。中文文本。 Emoji: 🚀 🎉 ✅ 🤖
"""

_ONSETS = [
    "",
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "j",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "w",
    "z",
    "br",
    "ch",
    "cl",
    "dr",
    "fl",
    "gr",
    "pl",
    "pr",
    "sh",
    "sl",
    "st",
    "th",
    "tr",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y"]
_CODAS = ["", "", "", "n", "r", "s", "l", "m", "nd", "st", "x", "ck"]
_PUNCTUATION = [".", ".", ",", ",", ",", "?", "!", ";", ":"]
_EXTRAS = ["é", "ü", "ñ", "ø", "日本", "中文", "🚀", "✅", "42", "2026", "3.14", "(x)", '"ok"']


def _pseudo_word(rng: random.Random) -> str:
    syllables = rng.choice([1, 1, 2, 2, 2, 3, 3, 4])
    parts = [
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    ]
    return "".join(parts)


def _lexicon(rng: random.Random, size: int) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < size:
        words[_pseudo_word(rng)] = None
    return list(words)


def synthetic_text(seed: int, num_words: int = 400_000, lexicon_size: int = 60_000) -> str:
    """Seeded prose in a made-up language; the same seed gives the same text."""
    rng = random.Random(seed)
    lexicon = _lexicon(rng, lexicon_size)
    weights = [1.0 / (rank + 10) for rank in range(len(lexicon))]
    words = rng.choices(lexicon, weights=weights, k=num_words)
    out = [_decorate(word, index, rng) for index, word in enumerate(words)]
    return " ".join(out)


def _decorate(word: str, index: int, rng: random.Random) -> str:
    """Sprinkle in sentence starts, punctuation, line breaks and non-ASCII pieces."""
    if rng.random() < 0.02:
        word = rng.choice(_EXTRAS)
    if index % 12 == 0:
        word = word.capitalize()
    if rng.random() < 0.1:
        word += rng.choice(_PUNCTUATION)
    if rng.random() < 0.01:
        word += "\n"
    return word


def training_corpus(seed: int) -> list[str]:
    """The full corpus as a list of documents (the shipped passage weighs more)."""
    return [SHIPPED_TEXT] * 50 + synthetic_text(seed).split("\n")
