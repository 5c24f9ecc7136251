"""SentencePiece vocabularies of GGUF files (`tokenizer.ggml.model` = llama) as a BPE tokenizer.

llama.cpp tokenizes these by joining, again and again, the adjacent pair whose joined piece has
the best score; a character no piece spells falls back to its bytes' `<0xNN>` tokens. GGUF keeps
the pieces and their scores but no merge list, so the merges are derived here: every way to cut a
piece into two pieces of the vocabulary is a merge, ranked by the whole piece's score. A
`tokenizers` BPE over those merges with byte fallback, spaces spelled as "▁" and one "▁" before
the text, gives the ids transformers builds from the same file (the reference in the tests).
"""

from collections.abc import Mapping, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from inferplane.sources.gguf_meta import GgufFile

SPACE = "\u2581"  # SentencePiece's spelling of a space inside a piece


def build_sentencepiece(gguf: GgufFile) -> Tokenizer:
    tokens: list[str] = [str(token) for token in gguf.require("tokenizer.ggml.tokens")]
    scores = [float(score) for score in gguf.require("tokenizer.ggml.scores")]
    vocab = {token: index for index, token in enumerate(tokens)}
    unknown = gguf.value("tokenizer.ggml.unknown_token_id")
    model = models.BPE(
        vocab=vocab,
        merges=derived_merges(dict(zip(tokens, scores, strict=True)), vocab),
        # Only reached when a byte has no <0xNN> token; byte fallback comes first.
        unk_token=None if unknown is None else tokens[int(unknown)],
        fuse_unk=True,
        byte_fallback=True,
    )
    tokenizer = Tokenizer(model)
    # Files written before the flag existed all add the prefix space.
    prefix = bool(gguf.value("tokenizer.ggml.add_space_prefix", True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=SPACE, prepend_scheme="first" if prefix else "never", split=False
    )
    steps = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix:  # the space the encoder put before the text is not part of it
        steps.append(decoders.Strip(" ", 1, 0))
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer


def derived_merges(scores: Mapping[str, float], vocab: Mapping[str, int]) -> list[tuple[str, str]]:
    """The merges a scored vocabulary implies, best first.

    A piece's cuts into two known pieces are listed by the pieces' ids; all of them are then
    ranked by the whole piece's score, a longer left part (then right part) first on a tie. The
    sort is stable, so what ties on all three keeps the vocabulary's order.
    """
    ranked: list[tuple[float, int, int, str, str]] = []
    for piece, score in scores.items():
        for left, right in _cuts(piece, vocab):
            ranked.append((-score, -len(left), -len(right), left, right))
    ranked.sort(key=lambda merge: merge[:3])
    return [(left, right) for *_, left, right in ranked]


def _cuts(piece: str, vocab: Mapping[str, int]) -> Sequence[tuple[str, str]]:
    cuts = [(piece[:at], piece[at:]) for at in range(1, len(piece))]
    known = [(left, right) for left, right in cuts if left in vocab and right in vocab]
    return sorted(known, key=lambda cut: (vocab[cut[0]], vocab[cut[1]]))
