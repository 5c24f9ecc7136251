from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import RunnerDefaults, SampledToken, StepBatch
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import ContextLengthExceededError, LLMEngine
from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.protocol import EngineTokenizer
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.tokenizer import Tokenizer
from tests.engine.echo_runner import PagedEchoRunner, reference


class ByteTokenizer:
    eos_token_ids = (0,)

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i).decode("utf-8", errors="replace")


def make_engine(
    num_blocks: int = 64, tokenizer: EngineTokenizer | None = None, **overrides: object
) -> tuple[LLMEngine, PagedEchoRunner]:
    settings: dict[str, object] = {"block_size": 4, "max_num_seqs": 8, **overrides}
    config = EngineConfig(model="test", **settings)  # type: ignore[arg-type]
    runner = PagedEchoRunner(num_blocks=num_blocks)
    return LLMEngine(config, runner, tokenizer or ByteTokenizer(), clock=lambda: 2.0), runner


def run(engine: LLMEngine, max_steps: int = 500) -> dict[str, list[RequestOutput]]:
    outputs: dict[str, list[RequestOutput]] = {}
    for _ in range(max_steps):
        if not engine.has_unfinished():
            return outputs
        for out in engine.step():
            outputs.setdefault(out.request_id, []).append(out)
    raise AssertionError("the engine did not finish in time")


def token_ids(updates: list[RequestOutput]) -> list[int]:
    return [t.token_id for u in updates for t in u.new_tokens]


def text(updates: list[RequestOutput]) -> str:
    return "".join(u.text for u in updates)


PROMPTS = {f"r{i}": list(b"the prompt number %d, " % i) * (1 + i % 3) for i in range(6)}


def test_outputs_match_the_uncached_reference() -> None:
    engine, _ = make_engine(max_num_batched_tokens=16)
    for rid, prompt in PROMPTS.items():
        engine.add_request(rid, prompt, SamplingParams(max_tokens=12, ignore_eos=True))
    outputs = run(engine)
    for rid, prompt in PROMPTS.items():
        assert token_ids(outputs[rid]) == reference(prompt, 12)
        assert text(outputs[rid]) == bytes(reference(prompt, 12)).decode()
        last = outputs[rid][-1]
        assert (last.finished, last.finish_reason) == (True, "length")
        assert [u.finished for u in outputs[rid]].count(True) == 1
        assert last.prompt_tokens == len(prompt)
        assert last.completion_tokens == 12
        assert last.first_token_time == 2.0
    assert engine.kv.usage == 0.0


def test_chunked_prefill_shares_steps_with_decodes() -> None:
    engine, runner = make_engine(max_num_batched_tokens=8)
    engine.add_request("short", list(b"abc"), SamplingParams(max_tokens=6, ignore_eos=True))
    engine.step()
    engine.add_request("long", list(b"x" * 20), SamplingParams(max_tokens=2, ignore_eos=True))
    run(engine)
    assert runner.steps[1] == {"short": 1, "long": 7}
    assert all(sum(step.values()) <= 8 for step in runner.steps)


def test_prefix_cache_hits_give_the_same_tokens() -> None:
    engine, runner = make_engine()
    shared = list(b"a long shared system prompt. ")
    engine.add_request("a", [*shared, 1], SamplingParams(max_tokens=5, ignore_eos=True))
    run(engine)
    engine.add_request("b", [*shared, 2], SamplingParams(max_tokens=5, ignore_eos=True))
    outputs = run(engine)
    assert token_ids(outputs["b"]) == reference([*shared, 2], 5)
    assert len(shared) == 29
    assert runner.steps[-5] == {"b": 2}  # 28 of 30 tokens came from the cache
    assert outputs["b"][-1].cached_prompt_tokens == 28
    stats = engine.stats()
    assert (stats.prefix_cache_queries, stats.prefix_cache_hits) == (60, 28)


def test_preemption_recomputes_and_still_matches() -> None:
    engine, _ = make_engine(num_blocks=20)
    for rid, prompt in PROMPTS.items():
        engine.add_request(rid, prompt, SamplingParams(max_tokens=10, ignore_eos=True))
    outputs = run(engine, max_steps=2000)
    assert engine.stats().num_preemptions > 0
    for rid, prompt in PROMPTS.items():
        assert token_ids(outputs[rid]) == reference(prompt, 10)


def test_stop_string_finishes_and_is_trimmed() -> None:
    prompt = list(b"hello there")
    full = bytes(reference(prompt, 20)).decode()
    stop = full[6:8]
    engine, _ = make_engine()
    engine.add_request("s", prompt, SamplingParams(max_tokens=20, stop=(stop,)))
    engine.add_request(
        "i", prompt, SamplingParams(max_tokens=20, stop=(stop,), include_stop_str_in_output=True)
    )
    outputs = run(engine)
    cut = full.index(stop)
    assert text(outputs["s"]) == full[:cut]
    assert text(outputs["i"]) == full[: cut + 2]
    last = outputs["s"][-1]
    assert (last.finish_reason, last.stop_reason) == ("stop", stop)
    assert last.completion_tokens == cut + 2
    assert engine.kv.usage == 0.0


def test_eos_and_stop_tokens() -> None:
    prompt = list(b"eos test")
    first = reference(prompt, 3)
    engine, _ = make_engine(
        tokenizer=type("Tok", (ByteTokenizer,), {"eos_token_ids": (first[1],)})()
    )
    engine.add_request("eos", prompt, SamplingParams(max_tokens=10))
    engine.add_request(
        "tok", prompt, SamplingParams(max_tokens=10, stop_token_ids=(first[2],), ignore_eos=True)
    )
    outputs = run(engine)
    assert token_ids(outputs["eos"]) == first[:2]
    assert text(outputs["eos"]) == chr(first[0])  # the EOS token's text is left out
    assert outputs["eos"][-1].stop_reason is None
    assert token_ids(outputs["tok"]) == first
    assert (outputs["tok"][-1].finish_reason, outputs["tok"][-1].stop_reason) == ("stop", first[2])


def test_abort_frees_blocks_and_reports() -> None:
    engine, _ = make_engine()
    engine.add_request("a", list(b"abort me please"), SamplingParams(max_tokens=50))
    engine.step()
    assert engine.kv.usage > 0
    final = engine.abort("a")
    assert final is not None and (final.finished, final.finish_reason) == (True, "abort")
    assert engine.abort("a") is None
    assert engine.kv.usage == 0.0
    assert not engine.has_unfinished()


def test_stream_interval_sends_the_first_token_alone_then_every_nth() -> None:
    engine, _ = make_engine(stream_interval=4, max_num_batched_tokens=16)
    for rid, prompt in PROMPTS.items():
        engine.add_request(rid, prompt, SamplingParams(max_tokens=11, ignore_eos=True))
    outputs = run(engine)
    for rid, prompt in PROMPTS.items():
        updates = outputs[rid]
        assert [len(u.new_tokens) for u in updates] == [1, 4, 4, 2]
        assert [u.completion_tokens for u in updates] == [1, 5, 9, 11]
        assert token_ids(updates) == reference(prompt, 11)
        assert text(updates) == bytes(reference(prompt, 11)).decode()
        assert [u.finished for u in updates] == [False, False, False, True]


def test_stream_interval_keeps_stop_strings_and_preemption_exact() -> None:
    prompt = list(b"hello there")
    full = bytes(reference(prompt, 20)).decode()
    stop = full[9:11]
    engine, _ = make_engine(num_blocks=20, stream_interval=3)
    engine.add_request("s", prompt, SamplingParams(max_tokens=20, stop=(stop,)))
    for rid, other in PROMPTS.items():
        engine.add_request(rid, other, SamplingParams(max_tokens=10, ignore_eos=True))
    outputs = run(engine, max_steps=2000)
    assert engine.stats().num_preemptions > 0
    assert text(outputs["s"]) == full[: full.index(stop)]
    assert outputs["s"][-1].stop_reason == stop
    for rid, other in PROMPTS.items():
        assert token_ids(outputs[rid]) == reference(other, 10)


def test_abort_hands_over_the_tokens_the_interval_held_back() -> None:
    prompt = list(b"abort me please")
    engine, _ = make_engine(stream_interval=8)
    engine.add_request("a", prompt, SamplingParams(max_tokens=50, ignore_eos=True))
    sent = [out for _ in range(5) for out in engine.step()]
    final = engine.abort("a")
    assert final is not None and final.finish_reason == "abort"
    assert token_ids([*sent, final]) == reference(prompt, 5)
    assert [len(u.new_tokens) for u in sent] == [1]


def test_stream_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stream_interval"):
        EngineConfig(model="test", stream_interval=0)


def test_context_length_and_empty_prompts_are_rejected() -> None:
    engine, _ = make_engine(max_model_len=16)
    with pytest.raises(ContextLengthExceededError, match="maximum context length is 16"):
        engine.add_request("x", [1] * 17, SamplingParams())
    with pytest.raises(ValueError, match="empty"):
        engine.add_request("x", [], SamplingParams())
    engine.add_request("fits", [97] * 14, SamplingParams(max_tokens=100, ignore_eos=True))
    outputs = run(engine)
    assert outputs["fits"][-1].completion_tokens == 2
    assert outputs["fits"][-1].finish_reason == "length"


def test_max_model_len_is_capped_by_the_kv_cache() -> None:
    engine, _ = make_engine(num_blocks=4)
    assert engine.max_model_len == 16


def test_sleep_requeues_and_wake_resumes() -> None:
    engine, runner = make_engine()
    prompt = list(b"sleepy prompt")
    engine.add_request("z", prompt, SamplingParams(max_tokens=8, ignore_eos=True))
    engine.step()
    engine.wake()  # awake already: nothing happens
    engine.sleep()
    engine.sleep()
    assert runner.asleep and engine.stats().sleeping
    assert engine.step() == []
    assert engine.kv.usage == 0.0
    engine.wake()
    outputs = run(engine)
    assert token_ids(outputs["z"]) == reference(prompt, 8)[1:]


def test_stats_count_tokens() -> None:
    engine, _ = make_engine()
    engine.add_request("a", [97] * 5, SamplingParams(max_tokens=3, ignore_eos=True))
    engine.add_request("b", [98] * 7, SamplingParams(max_tokens=3, ignore_eos=True))
    assert engine.stats().num_waiting == 2
    engine.step()
    assert engine.stats().num_running == 2
    run(engine)
    stats = engine.stats()
    assert (stats.prompt_tokens_total, stats.generation_tokens_total) == (12, 6)


def test_without_a_tokenizer_text_is_empty() -> None:
    config = EngineConfig(model="test", block_size=4)
    engine = LLMEngine(config, PagedEchoRunner(), None)
    engine.add_request("a", [97, 98], SamplingParams(max_tokens=2))
    outputs = run(engine)
    assert text(outputs["a"]) == ""
    assert token_ids(outputs["a"]) == reference([97, 98], 2)


class LetterRunner(RunnerDefaults):
    """Only the members a runner must have; `RunnerDefaults` gives the rest."""

    block_size = 4
    num_blocks = 16

    def __init__(self, eos_token_ids: tuple[int, ...] = ()) -> None:
        self.eos_token_ids = eos_token_ids

    def execute(self, batch: StepBatch) -> list[SampledToken]:
        return [SampledToken(c.request_id, 97) for c in batch.chunks if c.sample]


def test_a_runner_with_the_defaults_needs_the_configured_length_and_gives_its_eos() -> None:
    with pytest.raises(ValueError, match="max_model_len is unknown"):
        LLMEngine(EngineConfig(model="test", block_size=4), LetterRunner(), None)
    config = EngineConfig(model="test", block_size=4, max_model_len=32)
    engine = LLMEngine(config, LetterRunner(eos_token_ids=(97,)), None)
    assert engine.max_model_len == 32
    engine.sleep()  # the defaults release nothing, and wake takes nothing back
    engine.wake()
    engine.add_request("a", [98, 99], SamplingParams(max_tokens=5))
    assert run(engine)["a"][-1].finish_reason == "stop"  # the runner's EOS: no tokenizer's
    engine = LLMEngine(config, LetterRunner(eos_token_ids=(97,)), ByteTokenizer())
    engine.add_request("b", [98, 99], SamplingParams(max_tokens=5))
    assert run(engine)["b"][-1].finish_reason == "length"  # the tokenizer's EOS (0) wins


# --- with the real torch runner on the tiny demo model ---

BLOCK_BYTES = 16 * 2 * 4 * 4 * 32 * 4  # a 16-token block of demo:tiny in float32


def tiny_engine(model_dir: Path, num_blocks: int, **overrides: object) -> LLMEngine:
    settings: dict[str, object] = {
        "dtype": "float32",
        "device": "cpu",
        "kv_cache_bytes": num_blocks * BLOCK_BYTES,
        **overrides,
    }
    config = EngineConfig(model=str(model_dir), **settings)  # type: ignore[arg-type]
    return LLMEngine(config, TorchModelRunner.from_config(config), Tokenizer.from_dir(model_dir))


def test_real_runner_tokens_survive_chunking_prefix_hits_and_preemption(
    tiny_model_dir: Path,
) -> None:
    """Greedy tokens from a roomy engine (whole prompts in one step, no cache sharing) equal
    those from a cramped one (32-token steps, prefix hits, a preemption)."""
    tokenizer = Tokenizer.from_dir(tiny_model_dir)
    shared = tokenizer.encode("A shared system prompt that several requests begin with. " * 2)
    prompts = {f"r{i}": shared + tokenizer.encode(f"Question {i}: what next?") for i in range(3)}
    params = SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True)
    roomy = tiny_engine(tiny_model_dir, num_blocks=64, enable_prefix_caching=False)
    cramped = tiny_engine(tiny_model_dir, num_blocks=6, max_num_batched_tokens=32)
    results = []
    for engine in (roomy, cramped):
        for rid, prompt in prompts.items():
            engine.add_request(rid, prompt, params)
        results.append(run(engine))
    expected = {rid: token_ids(updates) for rid, updates in results[0].items()}
    assert {rid: token_ids(updates) for rid, updates in results[1].items()} == expected
    stats = cramped.stats()
    assert stats.prefix_cache_hits > 0
    assert stats.num_preemptions > 0
    assert stats.kv_usage == 0.0
    for rid, updates in results[1].items():
        # a character cut off by max_tokens is dropped, not sent as U+FFFD
        assert text(updates) == tokenizer.decode(expected[rid]).rstrip("\ufffd")


def test_real_runner_stops_on_a_string(tiny_model_dir: Path) -> None:
    tokenizer = Tokenizer.from_dir(tiny_model_dir)
    prompt = tokenizer.encode("Once upon a time")
    greedy = SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True)
    engine = tiny_engine(tiny_model_dir, num_blocks=16)
    engine.add_request("free", prompt, greedy)
    full = text(run(engine)["free"])
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    engine.add_request("stop", prompt, replace(greedy, stop=(stop,)))
    updates = run(engine)["stop"]
    assert text(updates) == full[: full.index(stop)]
    assert updates[-1].finish_reason == "stop"
