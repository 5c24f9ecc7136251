"""The paged KV cache's bookkeeping: a block pool with prefix caching. No torch.

The runner owns the tensors; this module owns which block holds what. A block is `block_size`
token slots. Full blocks get a chained content hash, hash(parent_hash, tokens), so two
requests sharing a prompt prefix share blocks. Blocks nobody references sit in a free queue;
those still carrying a hash stay findable there until they are taken for new data (eviction
from the front of the queue: least recently freed first).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

from inferplane.engine.core.request import Request

ROOT_HASH = 0x1F2E3D4C  # parent of a request's first block
_BLOCK_ID = attrgetter("block_id")


def hash_block(parent_hash: int, token_ids: Sequence[int]) -> int:
    """Chained content hash of one full block; ints and tuples hash the same in every process."""
    return hash((parent_hash, tuple(token_ids)))


def block_hashes(token_ids: Sequence[int], block_size: int, known: list[int]) -> list[int]:
    """Extend `known` (hashes of the first blocks) to every full block of `token_ids`."""
    parent = known[-1] if known else ROOT_HASH
    first = len(known) * block_size
    if len(token_ids) - first < block_size:
        return known
    tokens = tuple(token_ids[first:])  # one copy; its slices are tuples hash_block takes as is
    append = known.append
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hash((parent, tokens[start : start + block_size]))  # hash_block, inlined
        append(parent)
    return known


def num_blocks_for_budget(
    kv_cache_bytes: int,
    block_size: int,
    *,
    layers: int,
    kv_heads: int,
    head_dim: int,
    dtype_bytes: int,
) -> int:
    """How many blocks fit in a byte budget: bytes per token = 2 x layers x kv_heads x head_dim
    x dtype bytes (keys and values)."""
    per_token = 2 * layers * kv_heads * head_dim * dtype_bytes
    if per_token <= 0:
        raise ValueError("layers, kv_heads, head_dim and dtype_bytes must all be positive")
    return kv_cache_bytes // (per_token * block_size)


class KVBlock:
    """One block of the pool; prev/next link it into the free queue while unreferenced."""

    __slots__ = ("block_hash", "block_id", "next", "prev", "ref_count")

    def __init__(self, block_id: int) -> None:
        self.block_id = block_id
        self.ref_count = 0
        self.block_hash: int | None = None
        self.prev: KVBlock | None = None
        self.next: KVBlock | None = None

    def __repr__(self) -> str:
        return f"KVBlock({self.block_id}, ref={self.ref_count}, hash={self.block_hash})"


class FreeBlockQueue:
    """A doubly linked list of free blocks: O(1) pop from the front, push at either end and
    removal from the middle (a cached block revived by a prefix hit)."""

    def __init__(self, blocks: Sequence[KVBlock]) -> None:
        self._head = KVBlock(-1)  # sentinels: no None checks on the hot path
        self._tail = KVBlock(-1)
        self._head.next, self._tail.prev = self._tail, self._head
        self.size = 0
        # linked in one pass (a pool can hold tens of thousands of blocks): as append() would
        prev = self._head
        for block in blocks:
            block.prev, prev.next = prev, block
            prev = block
        prev.next, self._tail.prev = self._tail, prev
        self.size = len(blocks)

    def popleft(self) -> KVBlock:
        block = self._head.next
        if block is self._tail or block is None:
            raise IndexError("no free blocks")
        self.remove(block)
        return block

    def popleft_many(self, count: int) -> list[KVBlock]:
        """The first `count` blocks, unlinked as one run (popleft `count` times, in one go)."""
        if count > self.size:
            raise IndexError(f"{count} blocks asked for, {self.size} free")
        taken: list[KVBlock] = []
        keep = taken.append
        block = self._head.next
        for _ in range(count):
            if block is None:  # unreachable: size counts the linked blocks
                raise RuntimeError("free queue links are broken")
            keep(block)
            block.prev, block.next, block = None, None, block.next
        if block is None:  # unreachable: the tail sentinel ends the list
            raise RuntimeError("free queue links are broken")
        self._head.next, block.prev = block, self._head
        self.size -= count
        return taken

    def append(self, block: KVBlock) -> None:
        prev = self._tail.prev
        if prev is None:  # unreachable: the sentinels are always linked
            raise RuntimeError("free queue links are broken")
        block.prev, block.next = prev, self._tail
        prev.next = self._tail.prev = block
        self.size += 1

    def appendleft(self, block: KVBlock) -> None:
        nxt = self._head.next
        if nxt is None:  # unreachable: the sentinels are always linked
            raise RuntimeError("free queue links are broken")
        block.prev, block.next = self._head, nxt
        self._head.next = nxt.prev = block
        self.size += 1

    def extend(self, blocks: Sequence[KVBlock], *, left: bool = False) -> None:
        """append() each block in turn (or appendleft(), which leaves them reversed at the
        front), linked as one run."""
        if not blocks:
            return
        run = blocks[::-1] if left else blocks
        before, after = (self._head, self._head.next) if left else (self._tail.prev, self._tail)
        if before is None or after is None:  # unreachable: the sentinels are always linked
            raise RuntimeError("free queue links are broken")
        prev = before
        for block in run:
            block.prev, prev.next = prev, block
            prev = block
        prev.next, after.prev = after, prev
        self.size += len(run)

    def remove(self, block: KVBlock) -> None:
        prev, nxt = block.prev, block.next
        if prev is None or nxt is None:
            raise ValueError(f"block {block.block_id} is not in the free queue")
        prev.next, nxt.prev = nxt, prev
        block.prev = block.next = None
        self.size -= 1

    def __len__(self) -> int:
        return self.size

    def block_ids(self) -> list[int]:
        ids, block = [], self._head.next
        while block is not None and block is not self._tail:
            ids.append(block.block_id)
            block = block.next
        return ids


class BlockPool:
    """All blocks, their reference counts and the hash -> cached block map."""

    def __init__(self, num_blocks: int, enable_caching: bool = True) -> None:
        if num_blocks < 1:
            raise ValueError(f"the KV cache needs at least one block, got {num_blocks}")
        self.blocks = [KVBlock(i) for i in range(num_blocks)]
        self.free = FreeBlockQueue(self.blocks)
        self.cached: dict[int, KVBlock] = {}
        self.enable_caching = enable_caching
        self.evictions = 0

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free(self) -> int:
        return self.free.size

    def take(self, count: int) -> list[KVBlock]:
        """Take `count` free blocks for new data, evicting the cached content they held."""
        taken = self.free.popleft_many(count)
        cached, evicted = self.cached, 0
        for block in taken:
            block_hash = block.block_hash
            if block_hash is not None:  # evicted: forget it (unless a duplicate holds the hash)
                if cached.get(block_hash) is block:
                    del cached[block_hash]
                block.block_hash = None
                evicted += 1
            block.ref_count = 1
        self.evictions += evicted
        return taken

    def touch(self, blocks: Sequence[KVBlock]) -> None:
        """Add a reference to cached blocks (a prefix hit), reviving those in the free queue."""
        for block in blocks:
            if block.ref_count == 0:
                self.free.remove(block)
            block.ref_count += 1

    def release(self, blocks: Sequence[KVBlock]) -> None:
        """Drop a reference; unreferenced cached blocks go to the tail (evicted last), others
        to the front (reused first), so cached content lives as long as possible."""
        front: list[KVBlock] = []
        back: list[KVBlock] = []
        to_front, to_back = front.append, back.append
        for block in reversed(blocks):  # a prefix's deeper blocks are evicted before its root
            count = block.ref_count - 1
            block.ref_count = count
            if not count:
                if block.block_hash is None:
                    to_front(block)
                else:
                    to_back(block)
        self.free.extend(front, left=True)  # as appendleft / append block by block would
        self.free.extend(back)

    def lookup(self, block_hash: int) -> KVBlock | None:
        return self.cached.get(block_hash)

    def register(self, block: KVBlock, block_hash: int) -> None:
        """Make a just-filled block findable by its hash (first writer wins on duplicates)."""
        if self.enable_caching and block_hash not in self.cached:
            block.block_hash = block_hash
            self.cached[block_hash] = block

    def reset_cache(self) -> None:
        """Forget every cached hash, e.g. after the KV tensors were freed (sleep)."""
        for block in self.blocks:
            block.block_hash = None
        self.cached.clear()


@dataclass(frozen=True)
class KVCacheStats:
    num_blocks: int
    num_free_blocks: int
    usage: float  # fraction of blocks referenced by some request
    prefix_queries: int  # prompt tokens looked up, total
    prefix_hits: int  # of which found cached, total
    evictions: int

    @property
    def hit_rate(self) -> float:
        return self.prefix_hits / self.prefix_queries if self.prefix_queries else 0.0


class KVCacheManager:
    """Block tables keyed by request id, on top of a `BlockPool`."""

    def __init__(self, num_blocks: int, block_size: int = 16, enable_caching: bool = True) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.block_size = block_size
        self.pool = BlockPool(num_blocks, enable_caching)
        self._tables: dict[str, list[KVBlock]] = {}
        self._ids: dict[str, list[int]] = {}
        self._num_hashed: dict[str, int] = {}
        # token slots each request's blocks hold (blocks x block_size): lets the scheduler see
        # that a decode fits without a call. Read it, never write it.
        self.slots: dict[str, int] = {}
        self.prefix_queries = 0
        self.prefix_hits = 0

    @property
    def num_blocks(self) -> int:
        return self.pool.num_blocks

    @property
    def usage(self) -> float:
        return 1.0 - self.pool.num_free / self.pool.num_blocks

    def block_ids(self, request_id: str) -> list[int]:
        """The request's block table as block ids (the runner's view). Do not mutate.

        Tables only grow until freed, so the ids are brought up to date here, when asked for,
        not each time a table grows: the simulator never asks."""
        table = self._tables.get(request_id)
        if table is None:
            return []
        ids = self._ids.get(request_id)
        if ids is None:
            ids = self._ids[request_id] = []
        if len(ids) < len(table):
            ids += map(_BLOCK_ID, table[len(ids) :])
        return ids

    def get_computed_blocks(self, request: Request) -> tuple[list[KVBlock], int]:
        """The longest run of cached full blocks at the start of the request's tokens, and the
        number of tokens they cover; never all of them (the last token must run to give
        logits)."""
        if not self.pool.enable_caching:
            return [], 0
        size = self.block_size
        hashes = block_hashes(request.all_token_ids, size, request.block_hashes)
        limit = (request.num_tokens - 1) // size
        hits: list[KVBlock] = []
        lookup = self.pool.cached.get  # pool.lookup, bound once: a long prompt asks per block
        for block_hash in hashes[:limit]:
            block = lookup(block_hash)
            if block is None:
                break
            hits.append(block)
        return hits, len(hits) * size

    def record_prefix_query(self, num_tokens: int, num_hit: int) -> None:
        self.prefix_queries += num_tokens
        self.prefix_hits += num_hit

    def allocate_slots(
        self, request: Request, num_new_tokens: int, computed: Sequence[KVBlock] = ()
    ) -> bool:
        """Make room for `num_new_tokens` more tokens after the request's computed ones (and
        after the `computed` prefix hits, which join its table). False, changing nothing, when
        the pool has too few free blocks."""
        rid, size = request.request_id, self.block_size
        if not computed:
            return self._grow(rid, request.num_computed_tokens + num_new_tokens)
        table = self._tables.get(rid)
        have = len(table) if table is not None else 0
        total = request.num_computed_tokens + len(computed) * size + num_new_tokens
        need = -(-total // size) - have - len(computed)
        revived = sum(1 for block in computed if block.ref_count == 0)
        if need > self.pool.free.size - revived:
            return False
        if table is None:
            table = self._tables[rid] = []
            self._num_hashed[rid] = 0
        self.pool.touch(computed)
        new = [*computed, *self.pool.take(need)] if need > 0 else list(computed)
        table.extend(new)
        self._num_hashed[rid] += len(computed)
        self.slots[rid] = len(table) * size
        return True

    def _grow(self, rid: str, total: int) -> bool:
        """allocate_slots without prefix hits: blocks for `total` tokens in all (most calls
        are a decode stepping into a new block, so this path is kept short)."""
        slots = self.slots
        held = slots.get(rid, 0)
        if total <= held:
            return True
        size = self.block_size
        need = -(-(total - held) // size)  # held is whole blocks: the blocks still missing
        pool = self.pool
        if need > pool.free.size:
            return False
        new = pool.take(need)
        table = self._tables.get(rid)
        if table is None:
            self._tables[rid] = new
            self._num_hashed[rid] = 0
        else:
            table += new
        slots[rid] = held + need * size
        return True

    def cache_full_blocks(self, request: Request) -> None:
        """Register the blocks whose every slot is now computed, so later requests can share
        them. Called after a step ran, so a hit never points at KV not yet written."""
        rid = request.request_id
        done = self._num_hashed.get(rid, 0)
        full = request.num_computed_tokens // self.block_size
        if full <= done or not self.pool.enable_caching:
            return
        hashes = request.block_hashes  # extended only when it falls short: hashing is lazy
        if len(hashes) < full:
            hashes = block_hashes(request.all_token_ids, self.block_size, hashes)
        table, cached = self._tables[rid], self.pool.cached
        for index in range(done, full):  # pool.register, inlined: a prefill fills hundreds
            block_hash = hashes[index]
            if block_hash not in cached:  # the first writer wins on duplicates
                block = table[index]
                block.block_hash = block_hash
                cached[block_hash] = block
        self._num_hashed[rid] = full

    def free(self, request_id: str) -> None:
        """Release the request's blocks at once; cached ones stay findable until evicted."""
        table = self._tables.pop(request_id, None)
        self._ids.pop(request_id, None)
        self._num_hashed.pop(request_id, None)
        self.slots.pop(request_id, None)
        if table:
            self.pool.release(table)

    def reset_prefix_cache(self) -> None:
        self.pool.reset_cache()

    def stats(self) -> KVCacheStats:
        return KVCacheStats(
            num_blocks=self.pool.num_blocks,
            num_free_blocks=self.pool.num_free,
            usage=self.usage,
            prefix_queries=self.prefix_queries,
            prefix_hits=self.prefix_hits,
            evictions=self.pool.evictions,
        )
