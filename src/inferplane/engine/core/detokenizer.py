"""Token ids -> text, one token at a time, safe for multi-byte UTF-8, with stop strings.

Decoding each new token alone is wrong: byte-level tokens may carry part of a UTF-8 character,
and some tokenizers drop or add spaces depending on the neighbours. So each step decodes a
short window twice (with and without the new tokens) and emits the difference, holding text
back while it ends in U+FFFD (a character still incomplete).

Stop strings may span tokens: the text that could still become the start of a stop string is
held back until it either completes one (the request stops; the stop string is trimmed unless
asked for) or turns out not to.
"""

from collections.abc import Callable, Sequence
from typing import Protocol

Decode = Callable[[Sequence[int]], str]
REPLACEMENT = "\ufffd"
CONTEXT_TOKENS = 5  # prompt tokens decoded with the first outputs, for spacing rules


class HasDecode(Protocol):
    def decode(self, ids: list[int], /) -> str: ...


def as_decode(tokenizer: HasDecode | Decode) -> Decode:
    """A decode callable from a `tokenizers.Tokenizer`, the engine's tokenizer, or a callable.
    Special tokens are skipped where the tokenizer's decode does so by default."""
    decode = getattr(tokenizer, "decode", None)
    if decode is None and callable(tokenizer):
        return tokenizer
    if decode is None:
        raise TypeError("a tokenizer needs a decode(ids) method")
    return lambda ids: str(decode(list(ids)))


class IncrementalDetokenizer:
    """The output text of one request. `add(token)` returns the text now safe to emit."""

    def __init__(
        self,
        decode: Decode,
        prompt_token_ids: Sequence[int] = (),
        stop: Sequence[str] = (),
        include_stop_str_in_output: bool = False,
    ) -> None:
        self._decode = decode
        self._ids = list(prompt_token_ids[-CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._stop = tuple(stop)
        self._max_stop = max((len(s) for s in self._stop), default=0)
        self._include_stop = include_stop_str_in_output
        self.text = ""  # everything decoded so far (cut at a stop string once found)
        self._emitted = 0  # characters of `text` already handed out
        self.stop_reason: str | None = None

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def add(self, token_id: int) -> str:
        """Take one generated token; returns the newly releasable text (often empty)."""
        if self.stop_reason is not None:
            return ""
        self._ids.append(token_id)
        piece = self._next_piece()
        if piece:
            return self._extend(piece, hold=True)
        return ""

    def flush(self) -> str:
        """The request ended for another reason: release what was held back. A character left
        incomplete by the last token is dropped rather than sent as U+FFFD."""
        if self.stop_reason is not None:
            return ""
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        tail = self._decode(self._ids[self._prefix_offset :])[len(prefix) :].rstrip(REPLACEMENT)
        self._prefix_offset = self._read_offset = len(self._ids)
        return self._extend(tail, hold=False)

    def _next_piece(self) -> str:
        ids, start, read = self._ids, self._prefix_offset, self._read_offset
        prefix = self._decode(ids[start:read])
        full = self._decode(ids[start:])
        if len(full) <= len(prefix) or full.endswith(REPLACEMENT):
            return ""  # nothing new yet, or a character still incomplete
        self._prefix_offset, self._read_offset = read, len(ids)
        return full[len(prefix) :]

    def _extend(self, piece: str, hold: bool) -> str:
        before = len(self.text)
        self.text += piece
        bound = len(self.text)
        if self._stop:
            bound = self._find_stop(before)
            if self.stop_reason is None and hold:
                bound -= self._held_back()
        released = self.text[self._emitted : bound]
        self._emitted = max(self._emitted, bound)
        return released

    def _find_stop(self, before: int) -> int:
        """Cut the text at the earliest stop string that ends in the new piece; returns the
        end of the text that may be released."""
        start = max(0, before - self._max_stop + 1)
        found = [(i, s) for s in self._stop if (i := self.text.find(s, start)) != -1]
        if not found:
            return len(self.text)
        index, stop = min(found)
        self.text = self.text[: index + len(stop) if self._include_stop else index]
        self.stop_reason = stop
        return len(self.text)

    def _held_back(self) -> int:
        """Length of the longest end of the text that is the start of some stop string."""
        text, longest = self.text, 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
