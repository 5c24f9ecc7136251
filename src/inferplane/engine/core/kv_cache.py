"""The paged KV cache's bookkeeping: a block pool with prefix caching. No torch.

The runner owns the tensors; this module owns which block holds what. A block is `block_size`
token slots. Full blocks get a chained content hash, hash(parent_hash, tokens), so two
requests sharing a prompt prefix share blocks. Blocks nobody references sit in a free queue;
those still carrying a hash stay findable there until they are taken for new data (eviction
from the front of the queue: least recently freed first).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from inferplane.engine.core.request import Request

ROOT_HASH = 0x1F2E3D4C  # parent of a request's first block


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


class BlockPool:
    """Every block's reference count and hash, the hash -> cached block map, and the free queue.

    Blocks are ids 0..num_blocks-1 with their state in parallel lists, not one object each: a
    fleet of simulated replicas holds millions of blocks, and per-block objects cost memory
    and cache misses on every take and release. The id objects themselves are made once, in
    the queue, and passed around from there (tables, the map's values), never made again.

    The free queue (least recently freed first) is kept in two parts, which together give the
    order a doubly linked list would: `_front`, a stack whose end is the queue's head, holds
    the blocks released without a hash (reused first); `_queue` from `_head` on holds the rest
    in arrival order (the pool's first blocks, then blocks released with a hash, evicted
    last). A cached block revived by a prefix hit is always in `_queue` (blocks without a hash
    are never hits), and is left there: `_stale` counts, per block, its entries in `_queue`
    that no longer stand for a free block, which are always its oldest ones, so taking skips
    them. With nothing stale, taking from `_queue` is one slice.
    """

    def __init__(self, num_blocks: int, enable_caching: bool = True) -> None:
        if num_blocks < 1:
            raise ValueError(f"the KV cache needs at least one block, got {num_blocks}")
        self.num_blocks = num_blocks
        self.ref_counts: list[int] = [0] * num_blocks
        self.hashes: list[int | None] = [None] * num_blocks  # the hash a cached block holds
        self.cached: dict[int, int] = {}  # hash -> the block id holding it
        self.enable_caching = enable_caching
        self.evictions = 0
        self.num_free = num_blocks
        self._front: list[int] = []
        self._queue: list[int] = list(range(num_blocks))
        self._head = 0
        self._stale: dict[int, int] = {}

    def take(self, count: int) -> list[int]:
        """Take `count` free blocks for new data, evicting the cached content they held."""
        if count > self.num_free:
            raise IndexError(f"{count} blocks asked for, {self.num_free} free")
        front = self._front
        if count == 1:  # a decode stepping into a new block: most calls take one
            taken = [front.pop() if front else self._take_queued(1)[0]]
        elif count <= len(front):
            taken = front[: -count - 1 : -1]  # the last `count`, from the head on
            del front[len(front) - count :]  # not front[-count:]: count may be 0
        else:
            taken = front[::-1]
            front.clear()
            taken += self._take_queued(count - len(taken))
        self.num_free -= count
        refs, hashes, cached, evicted = self.ref_counts, self.hashes, self.cached, 0
        for block in taken:
            block_hash = hashes[block]
            if block_hash is not None:  # evicted: forget it (the map holds this block for it)
                del cached[block_hash]
                hashes[block] = None
                evicted += 1
            refs[block] = 1
        if evicted:
            self.evictions += evicted
        return taken

    def _take_queued(self, count: int) -> list[int]:
        queue, head, stale = self._queue, self._head, self._stale
        if not stale:
            taken = queue[head : head + count]
            head += count
        else:
            taken = []
            keep = taken.append
            while len(taken) < count:
                block = queue[head]
                head += 1
                skip = stale.get(block)
                if skip is None:
                    keep(block)
                elif skip == 1:
                    del stale[block]
                else:
                    stale[block] = skip - 1
        if head > 4096 and head * 2 > len(queue):  # drop the consumed entries now and then
            del queue[:head]
            head = 0
        self._head = head
        return taken

    def touch(self, blocks: Sequence[int]) -> None:
        """Add a reference to cached blocks (a prefix hit), reviving those in the free queue."""
        refs, stale = self.ref_counts, self._stale
        for block in blocks:
            count = refs[block]
            if not count:  # its entry in the queue no longer stands for a free block
                stale[block] = stale.get(block, 0) + 1
                self.num_free -= 1
            refs[block] = count + 1

    def release(self, blocks: Sequence[int]) -> None:
        """Drop a reference; unreferenced cached blocks go to the tail (evicted last), others
        to the front (reused first), so cached content lives as long as possible."""
        refs, hashes, front, back = self.ref_counts, self.hashes, self._front, self._queue
        before = len(front) + len(back)
        to_front, to_back = front.append, back.append
        for block in reversed(blocks):  # a prefix's deeper blocks are evicted before its root
            count = refs[block] - 1
            refs[block] = count
            if not count:
                if hashes[block] is None:
                    to_front(block)
                else:
                    to_back(block)
        self.num_free += len(front) + len(back) - before

    def free_block_ids(self) -> list[int]:
        """The free queue from its head: the order blocks will be taken in."""
        order = self._front[::-1]
        stale = dict(self._stale)
        for block in self._queue[self._head :]:
            skip = stale.get(block, 0)
            if skip:
                stale[block] = skip - 1
            else:
                order.append(block)
        return order

    def lookup(self, block_hash: int) -> int | None:
        return self.cached.get(block_hash)

    def register(self, block: int, block_hash: int) -> None:
        """Make a just-filled block findable by its hash (first writer wins on duplicates)."""
        if self.enable_caching and block_hash not in self.cached:
            self.hashes[block] = block_hash
            self.cached[block_hash] = block

    def reset_cache(self) -> None:
        """Forget every cached hash, e.g. after the KV tensors were freed (sleep)."""
        self.hashes[:] = [None] * self.num_blocks
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
    """Block tables (lists of block ids) keyed by request id, on top of a `BlockPool`."""

    def __init__(self, num_blocks: int, block_size: int = 16, enable_caching: bool = True) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.block_size = block_size
        self.pool = BlockPool(num_blocks, enable_caching)
        self._tables: dict[str, list[int]] = {}
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
        """The request's block table (the runner's view): it grows in place until the request
        is freed. Do not mutate."""
        return self._tables.get(request_id) or []

    def get_computed_blocks(self, request: Request) -> tuple[list[int], int]:
        """The longest run of cached full blocks at the start of the request's tokens, and the
        number of tokens they cover; never all of them (the last token must run to give
        logits)."""
        if not self.pool.enable_caching:
            return [], 0
        size = self.block_size
        hashes = block_hashes(request.all_token_ids, size, request.block_hashes)
        limit = (request.num_tokens - 1) // size
        hits: list[int] = []
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
        self, request: Request, num_new_tokens: int, computed: Sequence[int] = ()
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
        pool = self.pool
        refs = pool.ref_counts
        revived = sum(1 for block in computed if not refs[block])
        if need > pool.num_free - revived:
            return False
        if table is None:
            table = self._tables[rid] = []
            self._num_hashed[rid] = 0
        pool.touch(computed)
        table += computed
        if need > 0:
            table += pool.take(need)
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
        if need > pool.num_free:
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
        pool = self.pool
        if full <= done or not pool.enable_caching:
            return
        hashes = request.block_hashes  # extended only when it falls short: hashing is lazy
        if len(hashes) < full:
            hashes = block_hashes(request.all_token_ids, self.block_size, hashes)
        table, cached, held = self._tables[rid], pool.cached, pool.hashes
        self._num_hashed[rid] = full
        if full - done > 1:  # a prefill: most often none of its hashes is cached yet
            new, blocks = hashes[done:full], table[done:full]
            if cached.keys().isdisjoint(new):  # then the map takes them all, in one C call
                cached.update(zip(new, blocks, strict=True))
                for block, block_hash in zip(blocks, new, strict=True):
                    held[block] = block_hash
                return
        for index in range(done, full):  # pool.register, inlined
            block_hash = hashes[index]
            if block_hash not in cached:  # the first writer wins on duplicates
                block = table[index]
                held[block] = block_hash
                cached[block_hash] = block

    def free(self, request_id: str) -> None:
        """Release the request's blocks at once; cached ones stay findable until evicted."""
        table = self._tables.pop(request_id, None)
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
