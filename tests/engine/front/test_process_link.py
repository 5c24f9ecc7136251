"""The front over a ProcessLink: a real engine core process on the tiny demo model."""

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import ContextLengthExceededError
from inferplane.engine.core.protocol import EngineClient, EngineShutdownError
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.front.async_engine import AsyncLLMEngine
from inferplane.engine.front.process_link import ProcessLink

pytestmark = pytest.mark.timeout(60)
MAX_MODEL_LEN = 256
GREEDY = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)
LONG = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)


def tiny_config(model_dir: Path) -> EngineConfig:
    return EngineConfig(
        model=str(model_dir),
        max_model_len=MAX_MODEL_LEN,
        kv_cache_bytes=8 * 1024 * 1024,
        max_num_seqs=16,
        device="cpu",
    )


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[AsyncLLMEngine]:
    engine = AsyncLLMEngine.from_config(tiny_config(tiny_model_dir), "tiny", link="process")
    yield engine
    asyncio.run(engine.shutdown())


async def tokens(client: EngineClient, prompt: list[int], rid: str) -> list[int]:
    stream = client.generate(prompt, GREEDY, rid)
    return [token.token_id async for out in stream for token in out.new_tokens]


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def child_pid(engine: AsyncLLMEngine) -> int:
    assert isinstance(engine.link, ProcessLink) and engine.link.pid is not None
    return engine.link.pid


def prompts(engine: AsyncLLMEngine) -> list[list[int]]:
    texts = ["Once upon a time", "The cat sat on the mat", "1 2 3 4 5 6 7 8 9 10 11 12"]
    return [engine.tokenizer.encode(text) for text in texts]


async def test_greedy_output_matches_the_in_process_engine(
    engine: AsyncLLMEngine, tiny_model_dir: Path
) -> None:
    local = AsyncLLMEngine.from_config(tiny_config(tiny_model_dir), "tiny", link="thread")
    try:
        for i, prompt in enumerate(prompts(engine)):
            assert await tokens(engine, prompt, f"p{i}") == await tokens(local, prompt, f"l{i}")
    finally:
        await local.shutdown()
    assert engine.max_model_len == local.max_model_len == MAX_MODEL_LEN


async def test_sixteen_concurrent_streams_complete(engine: AsyncLLMEngine) -> None:
    prompt = prompts(engine)[0]
    results = await asyncio.gather(*(tokens(engine, prompt, f"c{i}") for i in range(16)))
    assert all(result == results[0] for result in results)
    assert len(results[0]) == GREEDY.max_tokens
    assert engine.stats().generation_tokens_total >= 16 * GREEDY.max_tokens


async def test_updates_that_pile_up_arrive_merged_with_every_token(engine: AsyncLLMEngine) -> None:
    prompt = prompts(engine)[2]
    params = SamplingParams(max_tokens=40, temperature=0.0, ignore_eos=True)
    stream = engine.generate(prompt, params, "slow-reader")
    first = await anext(stream)
    await asyncio.sleep(0.5)  # a busy consumer: the rest is generated meanwhile
    rest = [out async for out in stream]
    assert len(rest) < params.max_tokens - 1
    ids = [t.token_id for out in (first, *rest) for t in out.new_tokens]
    assert len(ids) == rest[-1].completion_tokens == params.max_tokens
    fresh = engine.generate(prompt, params, "fast-reader")
    assert ids == [t.token_id async for out in fresh for t in out.new_tokens]


async def test_leaving_early_frees_the_blocks(engine: AsyncLLMEngine) -> None:
    stream = engine.generate(prompts(engine)[1], LONG, "early")
    assert not (await anext(stream)).finished
    assert engine.stats().kv_usage > 0
    await stream.aclose()
    await wait_for(lambda: engine.stats().kv_usage == 0 and engine.stats().num_running == 0)


async def test_abort_ends_the_stream_with_abort(engine: AsyncLLMEngine) -> None:
    stream = engine.generate(prompts(engine)[1], LONG, "aborted")
    await anext(stream)
    await engine.abort("aborted")
    rest = [out async for out in stream]
    assert rest[-1].finished
    assert rest[-1].finish_reason == "abort"
    assert engine.stats().kv_usage == 0


async def test_bad_prompts_fail_fast_with_the_engine_errors(engine: AsyncLLMEngine) -> None:
    with pytest.raises(ValueError, match="empty"):
        await anext(engine.generate([], GREEDY, "empty"))
    with pytest.raises(ContextLengthExceededError):
        await anext(engine.generate([5] * (MAX_MODEL_LEN + 1), GREEDY, "long"))


async def test_a_failing_step_fails_its_requests_and_the_engine_serves_on(
    engine: AsyncLLMEngine,
) -> None:
    with pytest.raises(Exception, match="index"):  # a token id the model has no row for
        await tokens(engine, [10**7], "broken")
    assert len(await tokens(engine, prompts(engine)[0], "after")) == GREEDY.max_tokens


async def test_sleep_and_wake_show_in_the_stats(engine: AsyncLLMEngine) -> None:
    await engine.sleep()
    assert engine.stats().sleeping
    await engine.wake()
    assert not engine.stats().sleeping
    assert len(await tokens(engine, prompts(engine)[0], "woken")) == GREEDY.max_tokens


async def test_a_killed_engine_fails_streams_at_once_and_refuses_new_ones(
    tiny_model_dir: Path,
) -> None:
    engine = AsyncLLMEngine.from_config(tiny_config(tiny_model_dir), "doomed", link="process")
    exits: list[bool] = []
    engine.on_exit(lambda: exits.append(True))
    stream = engine.generate(engine.tokenizer.encode("Once upon a time"), LONG, "in-flight")
    await anext(stream)
    pid = child_pid(engine)
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(EngineShutdownError, match="exited unexpectedly"):
        async for _ in stream:
            pass
    assert time.monotonic() - started < 2.0
    with pytest.raises(EngineShutdownError):
        await anext(engine.generate([5, 6], GREEDY, "late"))
    assert exits == [True]
    await engine.shutdown()  # still safe, and quick


async def test_shutdown_aborts_in_flight_and_leaves_no_child(tiny_model_dir: Path) -> None:
    engine = AsyncLLMEngine.from_config(tiny_config(tiny_model_dir), "short-lived", link="process")
    stream = engine.generate(engine.tokenizer.encode("Once upon a time"), LONG, "cut")
    await anext(stream)
    pid = child_pid(engine)
    await engine.shutdown()
    assert [out.finish_reason async for out in stream][-1] == "abort"
    assert not Path(f"/proc/{pid}").exists()  # exited and reaped: no zombie
    with pytest.raises(EngineShutdownError):
        await anext(engine.generate([5, 6], GREEDY, "after-shutdown"))
