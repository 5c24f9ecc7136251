"""Prompts for trace requests: token ids, the engine's block hashes, the gateway's prefix hashes.

A trace with content ids (Mooncake's `hash_ids`, one per block of `block_tokens` tokens) gets
prompts that share exactly what the trace says they share: block id `h` is `block_tokens`
copies of token `h + 2` (0 and 1 are never a prompt's token), the last block cut to the
prompt's length. Equal leading ids give equal leading tokens, so the engine's real KV cache
finds the shared blocks and the gateway's real prefix hashing sees the shared opening. A
trace without ids gives each request one token of its own, repeated: nothing is shared.

Block hashes: the engine hashes full KV blocks in a chain (kv_cache.hash_block) lazily, the
first time a request is looked up. The simulator fills `Request.block_hashes` in advance with
the same function over the same tokens (a test checks they are equal), memoized per trace
block id, since a 100,000-token prompt would otherwise rehash its shared opening at every
turn.

Prefix hashes: the gateway hashes the opening of a prompt's text (transport/prefix.py: 64-byte
blocks, at most 32). A prompt's text is its tokens rendered at 4 ASCII characters each (about
what English averages), so the gateway sees the first 512 tokens as a client's text would show
them.
"""

from collections.abc import Sequence

from inferplane.engine.core.kv_cache import ROOT_HASH, block_hashes
from inferplane.gateway.transport.prefix import prefix_hashes
from inferplane.sim.records import RequestRecord

FIRST_TOKEN = 2  # ids 0 and 1 are never a prompt's token
UNSHARED = 1 << 40  # unshared prompts use ids from here up: no trace block id reaches them
TEXT_BYTES_PER_TOKEN = 4
_TEXT_TOKENS = 512  # the gateway hashes at most 32 x 64 bytes of text
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_MEMO_LIMIT = 200_000  # trace blocks whose KV hashes are kept (a few MB)

Run = tuple[int, int]  # (token id, how many times)


class Prompts:
    """Builds each record's prompt; one per simulated pool (the memo is per block size)."""

    def __init__(self, block_tokens: int, kv_block_size: int) -> None:
        if kv_block_size < 1:
            raise ValueError(f"the KV block size must be positive, got {kv_block_size}")
        self.block_tokens = block_tokens
        self.kv_block_size = kv_block_size
        self._memo: dict[tuple[int, int, int], tuple[int, ...]] = {}

    def runs(self, record: RequestRecord) -> list[Run]:
        """The prompt as runs of one repeated token id."""
        if not record.hash_ids or self.block_tokens < 1:
            return [(UNSHARED + record.index, record.prompt_tokens)]
        size, left, found = self.block_tokens, record.prompt_tokens, []
        for block_id in record.hash_ids:
            if left <= 0:
                break
            found.append((FIRST_TOKEN + block_id, min(size, left)))
            left -= size
        if left > 0:  # more tokens than the ids cover: the rest is the request's own
            found.append((UNSHARED + record.index, left))
        return found

    def token_ids(self, runs: Sequence[Run]) -> list[int]:
        if len(runs) == 1:  # an unshared prompt: one run, one list
            token, count = runs[0]
            return [token] * count
        tokens: list[int] = []
        for token, count in runs:
            tokens += [token] * count
        return tokens

    def kv_hashes(self, runs: Sequence[Run], tokens: list[int]) -> list[int]:
        """The engine's chained hashes of the prompt's full KV blocks, as its cache makes them."""
        size = self.kv_block_size
        if any(count % size for _, count in runs[:-1]):
            return block_hashes(tokens, size, [])  # runs not block-aligned: hash it all
        hashes: list[int] = []
        parent = ROOT_HASH
        for token, count in runs:
            if token >= UNSHARED:  # the request's own tokens: nobody asks for them again
                found = _run_hashes(parent, token, count // size, size)
            else:
                found = self._shared(parent, token, count)
            if found:
                parent = found[-1]
                hashes += found
            if count % size:
                break  # a partial block ends what can be hashed
        return hashes

    def _shared(self, parent: int, token: int, count: int) -> tuple[int, ...]:
        key = (parent, token, count)
        found = self._memo.get(key)
        if found is None:
            found = _run_hashes(parent, token, count // self.kv_block_size, self.kv_block_size)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()  # a cache, not state: recomputing gives the same values
            self._memo[key] = found
        return found

    def route_hashes(self, runs: Sequence[Run]) -> tuple[int, ...]:
        """The gateway's prefix hashes of the prompt's text (its opening tokens rendered)."""
        parts, left = [], _TEXT_TOKENS
        for token, count in runs:
            take = min(count, left)
            parts.append(_render(token) * take)
            left -= take
            if not left:
                break
        return prefix_hashes("".join(parts))


def _run_hashes(parent: int, token: int, blocks: int, size: int) -> tuple[int, ...]:
    block = (token,) * size  # every block of the run holds the same tokens: one tuple serves
    found: list[int] = []
    append = found.append
    for _ in range(blocks):
        parent = hash((parent, block))  # hash_block(parent, block), inlined: block is a tuple
        append(parent)
    return tuple(found)


def _render(token: int) -> str:
    """Four ASCII characters standing for one token (distinct for ids below 64**4)."""
    return "".join(_ALPHABET[(token >> shift) & 63] for shift in (18, 12, 6, 0))
