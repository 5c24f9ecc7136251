import random

import pytest

from inferplane.engine.core.kv_cache import (
    BlockPool,
    KVCacheManager,
    block_hashes,
    hash_block,
    num_blocks_for_budget,
)
from inferplane.engine.core.request import Request
from inferplane.engine.core.sampling_params import SamplingParams

BS = 4
TINY = {"layers": 4, "kv_heads": 4, "head_dim": 32, "dtype_bytes": 4}


def make(request_id: str, tokens: list[int]) -> Request:
    return Request(request_id, tokens, SamplingParams())


def admit(kv: KVCacheManager, request: Request) -> bool:
    """What the scheduler does for a waiting request: prefix hits, then the rest."""
    hits, num_hit = kv.get_computed_blocks(request)
    if not kv.allocate_slots(request, request.num_tokens - num_hit, hits):
        return False
    request.num_computed_tokens = request.num_tokens  # the step ran
    request.num_cached_tokens = num_hit
    kv.cache_full_blocks(request)
    return True


def cached_pool(num_blocks: int, cached: list[int]) -> BlockPool:
    """A pool whose blocks `cached` hold a hash each and are free, freed in that order."""
    pool = BlockPool(num_blocks)
    taken = pool.take(num_blocks)
    for block in cached:
        pool.register(block, 1000 + block)
    pool.release([b for b in taken if b not in cached])  # to the front, in id order
    for block in cached:
        pool.release([block])
    return pool


def test_free_queue_is_fifo_with_removal_from_the_middle() -> None:
    pool = cached_pool(4, [0, 1, 2, 3])
    pool.touch([2])  # a prefix hit revives a block from the middle of the queue
    assert pool.free_block_ids() == [0, 1, 3] and pool.num_free == 3
    assert pool.take(1) == [0]
    pool.release([0])  # its hash was evicted: to the front
    pool.release([2])  # holds its hash: to the tail
    assert pool.free_block_ids() == [0, 1, 3, 2]
    assert pool.num_free == 4


def test_empty_queue_take_raises() -> None:
    pool = BlockPool(1)
    pool.take(1)
    with pytest.raises(IndexError):
        pool.take(1)


def test_chained_hashes_depend_on_the_prefix() -> None:
    first = block_hashes([1, 2, 3, 4, 5, 6, 7, 8, 9], BS, [])
    assert len(first) == 2
    other = block_hashes([0, 2, 3, 4, 5, 6, 7, 8], BS, [])
    assert first[1] != other[1]  # same tokens in block 2, different parent
    assert first[1] == hash_block(first[0], [5, 6, 7, 8])
    known = first[:1]
    assert block_hashes([1, 2, 3, 4, 5, 6, 7, 8], BS, known) == first


def test_num_blocks_for_budget() -> None:
    # 2 x 4 layers x 4 kv heads x 32 dims x 4 bytes = 4096 bytes per token
    assert num_blocks_for_budget(4096 * 16 * 10, 16, **TINY) == 10
    assert num_blocks_for_budget(4096 * 16 * 10 - 1, 16, **TINY) == 9
    with pytest.raises(ValueError, match="positive"):
        num_blocks_for_budget(1 << 20, 16, **{**TINY, "layers": 0})


def test_allocate_grows_one_block_at_a_time() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=BS)
    request = make("r", [1, 2, 3])
    assert kv.allocate_slots(request, 3)
    assert len(kv.block_ids("r")) == 1
    request.num_computed_tokens = 3
    assert kv.allocate_slots(request, 1)  # slot 4 fits in block 0
    assert len(kv.block_ids("r")) == 1
    request.num_computed_tokens = 4
    assert kv.allocate_slots(request, 1)
    assert len(kv.block_ids("r")) == 2
    assert kv.usage == 0.5


def test_allocation_failure_changes_nothing() -> None:
    kv = KVCacheManager(num_blocks=2, block_size=BS)
    assert kv.allocate_slots(make("a", [1] * 8), 8)
    assert not kv.allocate_slots(make("b", [1]), 1)
    assert kv.block_ids("b") == []
    assert kv.stats().num_free_blocks == 0


def test_free_returns_blocks_at_once() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=BS)
    assert admit(kv, make("a", list(range(10))))
    assert kv.usage == 0.75
    kv.free("a")
    assert kv.usage == 0.0
    assert kv.block_ids("a") == []
    kv.free("a")  # idempotent


def test_prefix_hit_shares_full_blocks_and_recomputes_the_rest() -> None:
    kv = KVCacheManager(num_blocks=8, block_size=BS)
    first = make("a", list(range(10)))
    assert admit(kv, first)
    second = make("b", [*range(8), 99, 98])
    hits, num_hit = kv.get_computed_blocks(second)
    assert num_hit == 8
    assert hits == kv.block_ids("a")[:2]
    assert kv.allocate_slots(second, 2, hits)
    assert kv.block_ids("b")[:2] == kv.block_ids("a")[:2]
    assert kv.block_ids("b")[2] != kv.block_ids("a")[2]
    assert [kv.pool.ref_counts[i] for i in kv.block_ids("a")] == [2, 2, 1]


def test_never_a_hit_on_every_token() -> None:
    kv = KVCacheManager(num_blocks=8, block_size=BS)
    assert admit(kv, make("a", list(range(8))))
    same = make("b", list(range(8)))
    hits, num_hit = kv.get_computed_blocks(same)
    assert num_hit == 4  # the second block must run again to give logits
    assert kv.allocate_slots(same, 4, hits)
    # the recomputed copy is private: writes never land in a shared cached block
    assert kv.block_ids("b")[1] != kv.block_ids("a")[1]


def test_freed_cached_blocks_are_revived_by_a_hit() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=BS)
    assert admit(kv, make("a", list(range(9))))
    cached = kv.block_ids("a")[:2]
    kv.free("a")
    assert kv.usage == 0.0
    again = make("b", list(range(9)))
    assert admit(kv, again)
    assert kv.block_ids("b")[:2] == cached
    assert again.num_cached_tokens == 8
    stats = kv.stats()
    assert (stats.prefix_queries, stats.prefix_hits) == (0, 0)  # the scheduler records queries
    kv.record_prefix_query(9, 8)
    assert kv.stats().hit_rate == pytest.approx(8 / 9)


def test_uncached_free_blocks_are_reused_before_cached_ones() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=BS)
    assert admit(kv, make("a", list(range(6))))  # one full cached block + one partial
    kv.free("a")
    assert admit(kv, make("b", [50, 51]))
    assert kv.stats().evictions == 0
    assert kv.get_computed_blocks(make("c", list(range(6))))[1] == 4


def test_lru_eviction_drops_the_oldest_cached_blocks() -> None:
    kv = KVCacheManager(num_blocks=3, block_size=BS)
    assert admit(kv, make("old", [1, 1, 1, 1, 1]))
    kv.free("old")
    assert admit(kv, make("new", [2, 2, 2, 2, 2]))
    kv.free("new")
    assert kv.stats().evictions == 0
    # two blocks needed: the uncached one, then the least recently freed cached one ("old")
    assert admit(kv, make("x", [3, 3, 3, 3, 3]))
    assert kv.stats().evictions == 1
    assert kv.get_computed_blocks(make("o", [1, 1, 1, 1, 1]))[1] == 0
    assert kv.get_computed_blocks(make("n", [2, 2, 2, 2, 2]))[1] == 4


def test_revived_blocks_count_against_free_space() -> None:
    kv = KVCacheManager(num_blocks=2, block_size=BS)
    assert admit(kv, make("a", [1, 1, 1, 1, 1]))
    kv.free("a")
    longer = make("b", [1, 1, 1, 1, 2, 2, 2, 2, 3])
    hits, _ = kv.get_computed_blocks(longer)
    assert len(hits) == 1
    assert not kv.allocate_slots(longer, 5, hits)  # 1 revived + 2 new > 2 blocks
    assert kv.usage == 0.0
    assert kv.pool.ref_counts[hits[0]] == 0


def test_disabled_caching_never_hits() -> None:
    kv = KVCacheManager(num_blocks=8, block_size=BS, enable_caching=False)
    assert admit(kv, make("a", list(range(9))))
    assert kv.get_computed_blocks(make("b", list(range(9)))) == ([], 0)
    assert not kv.pool.cached


def test_reset_prefix_cache_forgets_hashes() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=BS)
    assert admit(kv, make("a", list(range(9))))
    kv.free("a")
    kv.reset_prefix_cache()
    assert kv.get_computed_blocks(make("b", list(range(9))))[1] == 0


def test_pool_rejects_empty() -> None:
    with pytest.raises(ValueError, match="at least one block"):
        BlockPool(0)
    with pytest.raises(ValueError, match="block_size"):
        KVCacheManager(4, block_size=0)


def test_taking_many_is_taking_one_at_a_time() -> None:
    pool = cached_pool(6, [0, 1, 3, 4, 5])  # order: 2 (no hash), 0, 1, 3, 4, 5
    pool.touch([1])
    pool.touch([4])
    pool.release([4])  # back at the tail: 2, 0, 3, 5, 4
    assert pool.take(3) == [2, 0, 3]
    assert pool.free_block_ids() == [5, 4] and pool.num_free == 2
    assert pool.evictions == 2  # 0 and 3 held hashes
    pool.release([0])  # released without its hash now: to the front
    assert pool.free_block_ids() == [0, 5, 4]
    with pytest.raises(IndexError):
        pool.take(4)
    assert pool.take(0) == [] and pool.free_block_ids() == [0, 5, 4]
    assert pool.take(3) == [0, 5, 4] and pool.num_free == 0


def test_release_links_a_run_as_single_releases_would() -> None:
    one_by_one, at_once = cached_pool(8, [5, 6, 7]), cached_pool(8, [5, 6, 7])
    taken = one_by_one.take(5)
    assert taken == [0, 1, 2, 3, 4] and at_once.take(5) == taken
    for pool in (one_by_one, at_once):
        pool.register(1, 2001)
        pool.register(3, 2003)
    for block in reversed(taken):
        one_by_one.release([block])
    at_once.release(taken)
    expected = [0, 2, 4, 5, 6, 7, 3, 1]  # no hash: the front; a hash: the tail
    assert at_once.free_block_ids() == one_by_one.free_block_ids() == expected
    assert at_once.take(8) == one_by_one.take(8)


def test_the_queue_keeps_its_order_past_many_reuses() -> None:
    """Enough takes that consumed queue entries are dropped, with revived blocks among them."""
    pool = cached_pool(64, list(range(64)))
    expected = list(range(64))
    for round_ in range(3000):
        block = expected[(round_ * 7) % 64]
        pool.touch([block])  # revived from the middle, then freed to the tail
        expected.remove(block)
        pool.release([block])
        expected.append(block)
        head = pool.take(2)
        assert head == expected[:2]
        for taken in head:
            pool.register(taken, 5000 + round_ * 2 + head.index(taken))
        pool.release(head[::-1])  # released in table order [1], [0]: both to the tail
        expected = expected[2:] + head
    assert pool.free_block_ids() == expected


def test_block_ids_follow_the_table_as_it_grows_between_reads() -> None:
    kv = KVCacheManager(num_blocks=16, block_size=BS)
    first = make("a", list(range(9)))
    assert admit(kv, first)
    ids = kv.block_ids("a")
    assert len(ids) == 3
    for _ in range(8):  # decodes: two more blocks taken before the next read
        first.append_output(1)
        assert kv.allocate_slots(first, 1)
        first.num_computed_tokens += 1
    assert kv.block_ids("a") is ids  # the same list, grown in place
    assert len(ids) == 5 and len(set(ids)) == 5
    second = make("b", list(range(9)))  # shares the first two blocks, then one of its own
    assert admit(kv, second)
    assert kv.block_ids("b")[:2] == ids[:2] and len(kv.block_ids("b")) == 3
    kv.free("a")
    assert kv.block_ids("a") == []


class PlainQueue:
    """The free queue as one list, and the hashes the pool should hold, beside a real pool."""

    def __init__(self, pool: BlockPool) -> None:
        self.pool, self.order = pool, list(range(pool.num_blocks))
        self.hashes: dict[int, int] = {}  # block -> its hash
        self.held: list[list[int]] = []

    def take(self, count: int, rng: random.Random, step: int) -> None:
        taken = self.pool.take(count)
        assert taken == self.order[:count]  # from the head
        del self.order[:count]
        for index, block in enumerate(taken):
            self.hashes.pop(block, None)  # evicted
            if rng.random() < 0.6:  # a full block: registered
                self.pool.register(block, step * 10 + index)
                self.hashes[block] = step * 10 + index
        self.held.append(taken)

    def release(self, table: list[int]) -> None:
        self.pool.release(table)
        for block in reversed(table):
            if self.pool.ref_counts[block] == 0:  # with a hash to the tail, else to the head
                self.order.insert(len(self.order) if block in self.hashes else 0, block)

    def hit(self, block: int) -> None:
        if self.pool.ref_counts[block] == 0:
            self.order.remove(block)  # unlinked from the middle
        self.pool.touch([block])
        self.held.append([block])


def test_the_queue_keeps_a_plain_list_s_order_under_random_use() -> None:
    rng = random.Random(3)
    plain = PlainQueue(BlockPool(40))
    pool = plain.pool
    for step in range(3000):
        action = rng.random()
        if action < 0.4 and pool.num_free:
            plain.take(rng.randint(1, min(6, pool.num_free)), rng, step)
        elif action < 0.7 and plain.held:
            plain.release(plain.held.pop(rng.randrange(len(plain.held))))
        elif plain.hashes:
            plain.hit(rng.choice(sorted(plain.hashes)))
        assert pool.free_block_ids() == plain.order and pool.num_free == len(plain.order)
        assert {b: h for b, h in enumerate(pool.hashes) if h is not None} == plain.hashes
        assert pool.cached == {h: b for b, h in plain.hashes.items()}
