import pytest

from inferplane.engine.core.kv_cache import (
    BlockPool,
    FreeBlockQueue,
    KVBlock,
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


def test_free_queue_is_fifo_with_removal_from_the_middle() -> None:
    blocks = [KVBlock(i) for i in range(4)]
    queue = FreeBlockQueue(blocks)
    queue.remove(blocks[2])
    assert queue.block_ids() == [0, 1, 3]
    assert queue.popleft() is blocks[0]
    queue.appendleft(blocks[2])
    queue.append(blocks[0])
    assert queue.block_ids() == [2, 1, 3, 0]
    assert len(queue) == 4
    with pytest.raises(ValueError, match="not in the free queue"):
        queue.remove(KVBlock(9))


def test_empty_queue_pop_raises() -> None:
    with pytest.raises(IndexError):
        FreeBlockQueue([]).popleft()


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
    assert [b.block_id for b in hits] == kv.block_ids("a")[:2]
    assert kv.allocate_slots(second, 2, hits)
    assert kv.block_ids("b")[:2] == kv.block_ids("a")[:2]
    assert kv.block_ids("b")[2] != kv.block_ids("a")[2]
    assert [kv.pool.blocks[i].ref_count for i in kv.block_ids("a")] == [2, 2, 1]


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
    assert kv.pool.blocks[hits[0].block_id].ref_count == 0


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


def test_popleft_many_is_popleft_repeated() -> None:
    blocks = [KVBlock(i) for i in range(6)]
    queue = FreeBlockQueue(blocks)
    queue.remove(blocks[2])
    queue.appendleft(blocks[2])  # order: 2, 0, 1, 3, 4, 5
    assert [b.block_id for b in queue.popleft_many(3)] == [2, 0, 1]
    assert queue.block_ids() == [3, 4, 5] and len(queue) == 3
    assert blocks[0].prev is None and blocks[0].next is None
    queue.append(blocks[0])
    assert queue.block_ids() == [3, 4, 5, 0]
    with pytest.raises(IndexError):
        queue.popleft_many(5)
    assert [b.block_id for b in queue.popleft_many(4)] == [3, 4, 5, 0] and len(queue) == 0


def test_extend_links_a_run_as_appends_would() -> None:
    blocks = [KVBlock(i) for i in range(8)]
    one_by_one, at_once = FreeBlockQueue(blocks[:2]), FreeBlockQueue([])
    for block in blocks[2:5]:
        one_by_one.appendleft(block)
    for block in blocks[5:]:
        one_by_one.append(block)
    expected = one_by_one.block_ids()
    copies = [KVBlock(i) for i in range(8)]
    at_once = FreeBlockQueue(copies[:2])
    at_once.extend(copies[2:5], left=True)
    at_once.extend(copies[5:])
    at_once.extend([])
    assert at_once.block_ids() == expected == [4, 3, 2, 0, 1, 5, 6, 7]
    assert len(at_once) == 8 and [b.block_id for b in at_once.popleft_many(8)] == expected


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
    assert kv.block_ids("a") is ids  # the same list, brought up to date
    assert ids == [block.block_id for block in kv._tables["a"]] and len(ids) == 5
    second = make("b", list(range(9)))  # shares the first two blocks, then one of its own
    assert admit(kv, second)
    assert kv.block_ids("b")[:2] == ids[:2] and len(kv.block_ids("b")) == 3
    kv.free("a")
    assert kv.block_ids("a") == []
