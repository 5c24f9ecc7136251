"""Log-probabilities in OpenAI's two shapes: chat's `content` list and completions' columns."""

from collections.abc import Sequence
from typing import Any

from inferplane.engine.core.outputs import TokenInfo
from inferplane.engine.core.protocol import TextTokenizer


def _piece(tokenizer: TextTokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id])


def _entry(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def chat_logprobs(tokenizer: TextTokenizer, tokens: Sequence[TokenInfo]) -> dict[str, Any]:
    content = []
    for token in tokens:
        entry = _entry(_piece(tokenizer, token.token_id), _value(token.logprob))
        entry["top_logprobs"] = [
            _entry(_piece(tokenizer, alt.token_id), alt.logprob) for alt in token.top_logprobs
        ]
        content.append(entry)
    return {"content": content, "refusal": None}


def completion_logprobs(
    tokenizer: TextTokenizer, tokens: Sequence[TokenInfo], offset: int = 0
) -> dict[str, Any]:
    pieces = [_piece(tokenizer, token.token_id) for token in tokens]
    offsets = []
    for piece in pieces:
        offsets.append(offset)
        offset += len(piece)
    top = [
        {_piece(tokenizer, alt.token_id): alt.logprob for alt in token.top_logprobs}
        for token in tokens
    ]
    return {
        "tokens": pieces,
        "token_logprobs": [_value(token.logprob) for token in tokens],
        "top_logprobs": top,
        "text_offset": offsets,
    }


def _value(logprob: float | None) -> float:
    # The engine fills logprobs when asked; a missing one reads as certainty, never as NaN.
    return 0.0 if logprob is None else logprob
