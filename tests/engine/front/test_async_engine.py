"""The one engine front over both links: each behaviour proven with the core on a thread of this
process and in a child process (the echo runner's engine, built in the child from a pickle)."""

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

import pytest

from inferplane.engine.core.batch import SampledToken, StepBatch
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import ContextLengthExceededError, LLMEngine
from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.protocol import EngineClient, EngineShutdownError, QueueFullError
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.front.async_engine import AsyncLLMEngine, LinkKind
from inferplane.engine.front.link import EngineLink
from inferplane.engine.front.process_link import ProcessLink
from inferplane.engine.front.thread_link import ThreadLink
from tests.engine.echo_runner import PagedEchoRunner, reference

pytestmark = pytest.mark.timeout(30)
LINKS: tuple[LinkKind, ...] = ("thread", "process")
Make = Callable[..., AsyncLLMEngine]


class ByteTokenizer:
    eos_token_ids = ()
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def encode_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        return self.encode("".join(message["content"] for message in messages))


@pytest.fixture(params=LINKS)
def link(request: pytest.FixtureRequest) -> LinkKind:
    kind: LinkKind = request.param
    return kind


@pytest.fixture
async def make(link: LinkKind) -> AsyncIterator[Make]:
    """Fronts over `link` of an echo engine; any left running are shut down after the test."""
    made: list[AsyncLLMEngine] = []

    def factory(runner: PagedEchoRunner | None = None, **overrides: object) -> AsyncLLMEngine:
        settings: dict[str, object] = {"block_size": 4, "max_num_seqs": 16, **overrides}
        config = EngineConfig(model="test", **settings)  # type: ignore[arg-type]
        # a long context, so streams that tests stop by hand never end on their own first
        runner = runner or PagedEchoRunner(num_blocks=4096, max_model_len=16384, step_seconds=0.001)
        build = functools.partial(LLMEngine, config, runner, ByteTokenizer())
        engine_link: EngineLink = (
            ThreadLink(build()) if link == "thread" else ProcessLink.spawn(build)
        )
        made.append(AsyncLLMEngine(engine_link, "echo", ByteTokenizer(), config.max_waiting))
        return made[-1]

    yield factory
    for client in made:
        await client.shutdown()


async def collect(client: AsyncLLMEngine, rid: str, prompt: list[int], n: int) -> list[int]:
    params = SamplingParams(max_tokens=n, ignore_eos=True)
    return [
        t.token_id async for out in client.generate(prompt, params, rid) for t in out.new_tokens
    ]


async def test_many_concurrent_streams_complete(make: Make) -> None:
    client = make()
    prompts = {f"r{i}": list(b"prompt %d says " % i) for i in range(20)}
    results = await asyncio.gather(*(collect(client, rid, p, 8) for rid, p in prompts.items()))
    for (rid, prompt), tokens in zip(prompts.items(), results, strict=True):
        assert tokens == reference(prompt, 8), rid
    stats = client.stats()
    assert (stats.num_running, stats.num_waiting, stats.kv_usage) == (0, 0, 0.0)
    assert stats.generation_tokens_total == 160
    await client.shutdown()


async def test_early_close_frees_blocks(make: Make) -> None:
    client = make()
    stream = client.generate(
        list(b"a long story"), SamplingParams(max_tokens=100_000, ignore_eos=True), "x"
    )
    first = await anext(stream)
    assert not first.finished
    assert client.stats().kv_usage > 0
    await stream.aclose()
    await wait_for(lambda: client.stats().kv_usage == 0.0 and client.stats().num_running == 0)
    await client.shutdown()


async def test_cancelling_the_consumer_aborts(make: Make) -> None:
    client = make()
    started = asyncio.Event()

    async def consume() -> None:
        params = SamplingParams(max_tokens=100_000, ignore_eos=True)
        async for _ in client.generate(list(b"forever"), params, "c"):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await wait_for(lambda: client.stats().num_running + client.stats().num_waiting == 0)
    assert client.stats().kv_usage == 0.0
    await client.shutdown()


async def test_updates_that_pile_up_arrive_merged_with_every_token(make: Make) -> None:
    client = make()
    params = SamplingParams(max_tokens=40, ignore_eos=True)
    prompt = list(b"a slow reader")
    stream = client.generate(prompt, params, "slow-reader")
    first = await anext(stream)
    await asyncio.sleep(0.3)  # a busy consumer: the rest is generated meanwhile
    rest = [out async for out in stream]
    assert len(rest) < params.max_tokens - 1
    ids = [t.token_id for out in (first, *rest) for t in out.new_tokens]
    assert ids == reference(prompt, params.max_tokens) and rest[-1].completion_tokens == 40
    await client.shutdown()


async def test_abort_ends_the_stream(make: Make) -> None:
    client = make()
    params = SamplingParams(max_tokens=100_000, ignore_eos=True)
    outputs: list[RequestOutput] = []
    async for out in client.generate(list(b"abort me"), params, "a"):
        outputs.append(out)
        if len(outputs) == 3:
            await client.abort("a")
    assert outputs[-1].finished and outputs[-1].finish_reason == "abort"
    assert client.stats().kv_usage == 0.0
    await client.abort("unknown")
    await client.shutdown()


async def test_queue_full_and_validation_errors(make: Make) -> None:
    client = make(max_waiting=2, max_num_seqs=1)
    params = SamplingParams(max_tokens=100_000, ignore_eos=True)
    streams = [client.generate([97, 98], params, f"s{i}") for i in range(3)]
    await anext(streams[0])  # running
    # started (queued) but not yet running: they count as waiting
    pending = [asyncio.ensure_future(anext(stream)) for stream in streams[1:]]
    await wait_for(lambda: client.stats().num_waiting == 2)
    with pytest.raises(QueueFullError):
        await anext(client.generate([97], params, "overflow"))
    with pytest.raises(ContextLengthExceededError):
        await anext(client.generate([97] * 16385, params, "too-long"))
    with pytest.raises(ValueError, match="empty"):
        await anext(client.generate([], params, "empty"))
    with pytest.raises(ValueError, match="already in use"):
        await anext(client.generate([97], params, "s0"))
    await client.shutdown()
    assert [(await task).finish_reason for task in pending] == ["abort", "abort"]
    assert client.stats().kv_usage == 0.0
    with pytest.raises(EngineShutdownError):
        await anext(client.generate([97], params, "late"))


async def test_shutdown_aborts_streams_in_flight(make: Make) -> None:
    client = make()
    stream = client.generate([97, 98], SamplingParams(max_tokens=100_000, ignore_eos=True), "z")
    await anext(stream)
    await client.shutdown()
    rest = [out async for out in stream]
    assert rest[-1].finish_reason == "abort"


async def test_sleep_pauses_and_wake_resumes(make: Make, link: LinkKind) -> None:
    runner = PagedEchoRunner(num_blocks=256)
    client = make(runner)
    await client.sleep()
    assert client.stats().sleeping
    assert runner.asleep or link == "process"  # there the runner is the child's copy
    task = asyncio.create_task(collect(client, "w", list(b"wake up"), 4))
    await asyncio.sleep(0.05)
    assert not task.done()
    await client.wake()
    assert not client.stats().sleeping
    assert await task == reference(list(b"wake up"), 4)
    await client.shutdown()


class FailingRunner(PagedEchoRunner):
    def execute(self, batch: StepBatch) -> list[SampledToken]:
        if any(len(c.token_ids) > 1 and c.token_ids[0] == 33 for c in batch.chunks):
            raise RuntimeError("model exploded")
        return super().execute(batch)


async def test_a_failing_step_fails_its_requests_and_the_engine_keeps_serving(make: Make) -> None:
    client = make(FailingRunner(num_blocks=256))
    with pytest.raises(RuntimeError, match="exploded"):
        await collect(client, "bad", [33, 34], 3)
    assert await collect(client, "good", [97, 98], 3) == reference([97, 98], 3)
    assert client.stats().kv_usage == 0.0
    await client.shutdown()


async def test_it_is_an_engine_client(make: Make) -> None:
    client: EngineClient = make()
    assert client.model_name == "echo"
    assert client.max_model_len == 16384
    assert client.tokenizer.decode([104, 105]) == "hi"


def test_a_front_without_a_tokenizer_says_so() -> None:
    bare = LLMEngine(EngineConfig(model="test", block_size=4), PagedEchoRunner(), None)
    with pytest.raises(RuntimeError, match="without a tokenizer"):
        _ = AsyncLLMEngine.on_thread(bare, "x").tokenizer


async def drain(stream: AsyncIterator[RequestOutput]) -> list[RequestOutput]:
    return [out async for out in stream]


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.mark.timeout(60)
async def test_from_config_serves_the_tiny_model(tiny_model_dir: Path, link: LinkKind) -> None:
    config = EngineConfig(
        model=str(tiny_model_dir), dtype="float32", device="cpu", kv_cache_bytes=1 << 21
    )
    client = AsyncLLMEngine.from_config(config, model_name="tiny", link=link)
    assert client.model_name == "tiny"
    prompt = client.tokenizer.encode("Once upon a time")
    params = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)
    streams = [client.generate(prompt, params, f"t{i}") for i in range(3)]
    results = await asyncio.gather(*(drain(stream) for stream in streams))
    texts = {"".join(out.text for out in outputs) for outputs in results}
    assert len(texts) == 1  # greedy: the same prompt gives the same text
    assert all(outputs[-1].completion_tokens == 6 for outputs in results)
    assert client.stats().prefix_cache_hits == 0  # a 4-token prompt has no full block
    await client.shutdown()
