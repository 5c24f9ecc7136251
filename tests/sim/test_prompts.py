"""Prompts built from a trace's block ids (sim/prompts.py)."""

from inferplane.engine.core.kv_cache import KVCacheManager, block_hashes
from inferplane.engine.core.request import Request
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.sim.prompts import Prompts
from inferplane.sim.records import RequestRecord

PROMPTS = Prompts(block_tokens=512, kv_block_size=16)


def _prompt(index: int, tokens: int, ids: tuple[int, ...] = ()) -> list[int]:
    return PROMPTS.token_ids(PROMPTS.runs(RequestRecord(index, 0.0, tokens, 1, ids)))


def test_equal_block_ids_give_equal_tokens_and_the_last_block_is_cut() -> None:
    first, second = _prompt(0, 1300, (7, 8, 9)), _prompt(1, 1100, (7, 8, 4))
    assert len(first) == 1300 and len(second) == 1100
    assert first[:1024] == second[:1024] and first[1024] != second[1024]
    assert set(_prompt(2, 100)).isdisjoint(_prompt(3, 100))  # no ids: nothing shared
    assert len(_prompt(4, 600, (7,))) == 600  # more tokens than the ids cover: its own tail


def test_block_hashes_are_what_the_engines_cache_computes() -> None:
    for record in (RequestRecord(0, 0.0, 1300, 1, (7, 8, 9)), RequestRecord(1, 0.0, 37, 1)):
        runs = PROMPTS.runs(record)
        tokens = PROMPTS.token_ids(runs)
        assert PROMPTS.kv_hashes(runs, tokens) == block_hashes(tokens, 16, [])


def test_the_engines_cache_finds_the_shared_blocks() -> None:
    kv = KVCacheManager(num_blocks=512, block_size=16)
    earlier = Request("a", _prompt(0, 1300, (7, 8, 9)), SamplingParams())
    kv.allocate_slots(earlier, earlier.num_tokens)
    earlier.num_computed_tokens = earlier.num_tokens
    kv.cache_full_blocks(earlier)
    later = Request("b", _prompt(1, 1100, (7, 8, 4)), SamplingParams())
    assert kv.get_computed_blocks(later)[1] == 1024  # two whole 512-token blocks


def test_the_gateway_sees_the_shared_opening_only() -> None:
    def hashes(index: int, ids: tuple[int, ...]) -> tuple[int, ...]:
        return PROMPTS.route_hashes(PROMPTS.runs(RequestRecord(index, 0.0, 2000, 1, ids)))

    assert len(hashes(0, (7, 8, 9, 10))) == 32  # 2 KB of text: the first 512 tokens
    assert hashes(0, (7, 8, 9, 10)) == hashes(1, (7, 5, 5, 5))
    assert hashes(0, (7, 8, 9, 10))[0] != hashes(2, (6, 8, 9, 10))[0]
    assert hashes(3, ())[0] != hashes(4, ())[0]
